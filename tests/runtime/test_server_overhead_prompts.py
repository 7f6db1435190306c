"""`runtime.server_overhead.prompts`: exact token lengths after the chat template, and no
full 32-token block shared between two requests (so prefix caching serves nothing)."""

from __future__ import annotations

import pytest

from runtime.server_overhead.prompts import PromptMaker
from runtime.tiny_model import tiny_model_dir


@pytest.fixture(scope="module")
def maker() -> PromptMaker:
    from transformers import AutoTokenizer

    return PromptMaker(AutoTokenizer.from_pretrained(str(tiny_model_dir())))


def _ids(maker: PromptMaker, msgs: list[dict[str, str]]) -> list[int]:
    ids = maker.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    return list(ids if isinstance(ids, list) else ids["input_ids"])


@pytest.mark.parametrize("length", [40, 256, 1000, 4096])
def test_prompts_have_exact_lengths(maker: PromptMaker, length: int) -> None:
    for i in range(3):
        assert len(_ids(maker, maker.messages(length, f"req{i}", seed=i))) == length


def test_prompts_share_no_full_block(maker: PromptMaker) -> None:
    firsts = {tuple(_ids(maker, maker.messages(512, f"r0p512q{i}", seed=7))[:32])
              for i in range(50)}
    assert len(firsts) == 50  # same seed, so only the tag makes them differ


def test_too_short_a_prompt_is_refused(maker: PromptMaker) -> None:
    with pytest.raises(ValueError, match="shorter than the template"):
        maker.messages(5, "a-rather-long-tag-1234567", seed=0)
