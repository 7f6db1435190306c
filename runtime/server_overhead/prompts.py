"""Chat messages whose templated prompt has an exact number of tokens, unique per request.

Contract: `PromptMaker(tokenizer).messages(length, tag, seed)` returns one user message
whose chat-templated prompt (``apply_chat_template(..., add_generation_prompt=True)``, as
vLLM's chat endpoint builds it) is exactly `length` tokens. The text starts with `tag`
(make it unique per request: its first 32-token block then differs from every other
request's, so prefix caching serves no full block) and continues with words drawn from
`seed`: synthetic ``w123``/``s4567``-style words and English, like the workloads' text.
Raises ValueError if `length` is below the template's own tokens plus the tag.
"""

from __future__ import annotations

import random
from typing import Any

from runtime.tiny_model import ENGLISH_TEXT

FILLER = "a"  # one token with its leading space in the tiny tokenizer (checked below)


class PromptMaker:
    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.english = ENGLISH_TEXT.split()
        if len(self.tok.encode(" " + FILLER, add_special_tokens=False)) != 1:
            raise ValueError(f"PromptMaker: filler word {FILLER!r} is not one token here")

    def count(self, messages: list[dict[str, str]]) -> int:
        ids = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):  # some transformers versions return a BatchEncoding
            ids = ids["input_ids"]
        return len(ids)

    def messages(self, length: int, tag: str, seed: int) -> list[dict[str, str]]:
        rng = random.Random(seed)
        words = [tag]
        base = self.count([{"role": "user", "content": tag}])
        if base > length:
            raise ValueError(f"PromptMaker: {length} tokens is shorter than the template "
                             f"and tag {tag!r} ({base} tokens)")
        need = length - base
        while need > 0:  # additive: byte-level pre-tokens never cross a space
            w = (rng.choice(self.english) if rng.random() < 0.25
                 else f"{rng.choice('wso')}{rng.randrange(50_000)}")
            n = len(self.tok.encode(" " + w, add_special_tokens=False))
            if n > need:
                w, n = FILLER, 1
            words.append(w)
            need -= n
        msgs = [{"role": "user", "content": " ".join(words)}]
        for _ in range(64):  # in case the additivity assumption fails at an edge
            got = self.count(msgs)
            if got == length:
                return msgs
            if got > length:
                words.pop()
            else:
                words.append(FILLER)
            msgs = [{"role": "user", "content": " ".join(words)}]
        raise ValueError(f"PromptMaker: could not reach exactly {length} tokens (tag {tag!r})")
