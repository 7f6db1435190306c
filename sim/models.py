"""Transformer shapes of the models the paper uses, from their public Hugging Face configs.

Only what the cost model and the KV sizing need: dense decoder, GQA attention, SwiGLU MLP,
bf16 weights and KV. Parameter counts are derived from the shapes (Qwen3-8B: 8.19 B).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import SimError


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


MODELS: dict[str, ModelShape] = {
    m.name: m
    for m in (
        ModelShape("qwen3-8b", 36, 4096, 12288, 32, 8, 128, 151936, False, 40960, qk_norm=True),
        ModelShape("qwen3-14b", 40, 5120, 17408, 40, 8, 128, 151936, False, 40960, qk_norm=True),
        ModelShape("qwen3-32b", 64, 5120, 25600, 64, 8, 128, 151936, False, 40960, qk_norm=True),
        ModelShape("llama-3.1-8b", 32, 4096, 14336, 32, 8, 128, 128256, False, 131072),
    )
}


def get_model(name: str) -> ModelShape:
    """Look a model up by name (case-insensitive; 'Qwen3-8B' and 'qwen3-8b' both work)."""
    key = name.lower().split("/")[-1]
    if key not in MODELS:
        raise SimError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[key]
