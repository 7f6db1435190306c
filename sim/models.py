"""Transformer shapes of the models the paper uses, typed.

The numbers are data: the `shape:` block of `conf/model/<name>.yaml`, copied from each
model's public Hugging Face config.json. Only what the cost model and the KV sizing need:
dense decoder, GQA attention, SwiGLU MLP, bf16 weights and KV. Parameter counts are derived
from the shapes (Qwen3-8B: 8.19 B).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sim.errors import SimError

MODEL_CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


@dataclass(frozen=True)
class ModelShape:
    """A dense decoder-only transformer (config.json field names in comments)."""

    name: str
    num_layers: int  # num_hidden_layers
    hidden: int  # hidden_size
    intermediate: int  # intermediate_size
    num_heads: int  # num_attention_heads
    num_kv_heads: int  # num_key_value_heads
    head_dim: int  # head_dim
    vocab: int  # vocab_size
    tie_embeddings: bool  # tie_word_embeddings
    max_position_embeddings: int
    qk_norm: bool = False  # Qwen3 normalizes q and k per head
    dtype_bytes: int = 2  # bf16

    @staticmethod
    def from_dict(name: str, data: Mapping[str, Any], where: str = "model.shape") -> ModelShape:
        """A shape from a config block; a missing, unknown or non-positive field raises
        naming `where`.<field>."""
        known = [f.name for f in fields(ModelShape) if f.name != "name"]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SimError(f"{where}: unknown key(s) {unknown}; known: {known}")
        required = [f.name for f in fields(ModelShape) if f.name != "name" and f.default is MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise SimError(f"{where}: missing key(s) {missing}")
        shape = ModelShape(name, **dict(data))
        for f in fields(ModelShape):
            v = getattr(shape, f.name)
            if f.type in ("int", "bool") and not isinstance(v, int):
                raise SimError(f"{where}.{f.name} must be an integer, got {v!r}")
            if f.type == "int" and (isinstance(v, bool) or v < 1):
                raise SimError(f"{where}.{f.name} must be a positive integer, got {v!r}")
        return shape

    @property
    def layer_matmul_params(self) -> int:
        """Weights multiplied per token in one layer: q, k, v, o projections and the MLP."""
        q = self.hidden * self.num_heads * self.head_dim
        kv = 2 * self.hidden * self.num_kv_heads * self.head_dim
        o = self.num_heads * self.head_dim * self.hidden
        return q + kv + o + 3 * self.hidden * self.intermediate

    @property
    def num_params(self) -> int:
        norms = 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        per_layer = self.layer_matmul_params + norms
        embed = self.vocab * self.hidden * (1 if self.tie_embeddings else 2)
        return self.num_layers * per_layer + embed + self.hidden

    @property
    def weight_bytes(self) -> int:
        return self.num_params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of every layer for one token (Qwen3-8B: 144 KiB)."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes

    @property
    def body_matmul_params(self) -> int:
        """Matmul weights every token goes through (all layers; not embedding or LM head)."""
        return self.num_layers * self.layer_matmul_params

    @property
    def lm_head_params(self) -> int:
        return self.vocab * self.hidden


def known_models() -> list[str]:
    """Names of the models with a shape in conf/model/."""
    return sorted(p.stem for p in MODEL_CONF.glob("*.yaml")
                  if "shape" in (OmegaConf.load(p) or {}))


def get_model(name: str) -> ModelShape:
    """The shape of `conf/model/<name>.yaml` (case-insensitive, a Hugging Face id's last
    part works: 'Qwen/Qwen3-8B' and 'qwen3-8b' both do)."""
    key = name.lower().split("/")[-1]
    path = MODEL_CONF / f"{key}.yaml"
    data = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None
    if not isinstance(data, dict) or not isinstance(data.get("shape"), dict):
        raise SimError(f"unknown model {name!r}: no conf/model/{key}.yaml with a shape; "
                       f"known: {', '.join(known_models())}")
    return ModelShape.from_dict(key, data["shape"], f"conf/model/{key}.yaml: shape")
