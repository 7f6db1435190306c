"""Which local folder a `ModelSettings` names, and what one KV token costs there."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from helium_lab.config import ModelSettings
from runtime.errors import ModelPathError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class ModelInfo:
    """A resolved model folder and the shapes that size its KV cache."""

    name: str
    path: Path
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: str
    max_position_embeddings: int

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of every layer for one token, as vLLM allocates them."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * DTYPE_BYTES[self.dtype]


def resolve_model(model: ModelSettings) -> ModelInfo:
    """The model folder of `model` (`tiny` without a path: built on first use), checked."""
    if model.path is None:
        if model.name != "tiny":
            raise ModelPathError(f"model {model.name!r} has no path (config key 'model.path'); "
                                 "only 'tiny' is built on demand")
        from runtime.tiny_model import tiny_model_dir

        path = tiny_model_dir()
    else:
        path = Path(model.path).expanduser()
    return read_model_info(model.name, path)


def read_model_info(name: str, path: Path) -> ModelInfo:
    if not path.is_dir():
        raise ModelPathError(f"model {name!r}: path {str(path)!r} is not a folder")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ModelPathError(f"model {name!r}: {str(path)!r} has no config.json, so it is "
                             "not a Hugging Face model folder")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise ModelPathError(f"model {name!r}: {str(path)!r} has no weights "
                             f"(none of {list(WEIGHT_FILES)})")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        heads = int(cfg["num_attention_heads"])
        head_dim = int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads)
        info = ModelInfo(name, path, int(cfg["num_hidden_layers"]),
                         int(cfg.get("num_key_value_heads") or heads), head_dim, "bfloat16",
                         int(cfg.get("max_position_embeddings") or 2048))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelPathError(f"model {name!r}: {str(cfg_file)!r} is not a usable model "
                             f"config ({e!r})") from None
    return info
