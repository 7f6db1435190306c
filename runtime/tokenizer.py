"""The model's own Hugging Face tokenizer behind `helium_lab.tokenizer.Tokenizer`.

`encode` never adds BOS or other special tokens (the planner renders ChatML markers as
text, and the tokenizer maps `<|im_start|>`/`<|im_end|>` in that text to their special
ids); `decode` keeps special tokens, so decode-then-encode is stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any


class HFTokenizer:
    """Wraps a `transformers` tokenizer loaded from a local model folder."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf = hf_tokenizer
        self._encode_cached = lru_cache(maxsize=65_536)(self._encode)

    @classmethod
    def from_dir(cls, path: str | Path) -> HFTokenizer:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path)))

    def _encode(self, text: str) -> tuple[int, ...]:
        return tuple(self.hf.encode(text, add_special_tokens=False))

    def encode(self, text: str) -> list[int]:
        return list(self._encode_cached(text))

    def count(self, text: str) -> int:
        return len(self._encode_cached(text))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.hf.decode(list(ids), skip_special_tokens=False))
