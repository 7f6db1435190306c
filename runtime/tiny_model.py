"""A tiny random-weight Qwen3 model and its locally trained tokenizer, for CPU tests.

    python -m runtime.tiny_model OUT_DIR      # build into OUT_DIR (≈5 s, no downloads)

The model is Qwen3-shaped (hidden 128, 2 layers, 4 heads / 2 KV heads, head_dim 32,
vocabulary 2048, tied embeddings, bf16) with weights drawn at init range 0.5, so greedy
decoding gives varied text (at the usual 0.02 it repeats one token). The tokenizer is a
byte-level BPE trained with the `tokenizers` library on synthetic words generated here
(shaped like the workloads' synthetic text: a letter and a number, plus a few English
words), with the ChatML specials `<|im_start|>` and `<|im_end|>`.

`tiny_model_dir()` is what `ModelSettings(name="tiny", path=None)` resolves to: a cache
folder keyed by `TINY_VERSION` (under `$HELIUM_LAB_CACHE`, default
`~/.cache/helium_lab`), built on first use into a temporary folder and renamed into place,
so concurrent first uses never see a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

# Bump when anything below changes what gets built: it names the cache folder.
TINY_SPEC = {
    "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
    "vocab_size": 2048, "max_position_embeddings": 32768, "initializer_range": 0.5,
    "tie_word_embeddings": True, "seed": 0, "corpus_words": 60_000, "builder": 1,
}
TINY_VERSION = hashlib.sha256(json.dumps(TINY_SPEC, sort_keys=True).encode()).hexdigest()[:12]
SPECIALS = ("<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
ENGLISH_TEXT = (
    "you are the an a of to and in is it for on as with answer question expert "
    "agent role system user assistant please review write report analyst revise "
    "your reasoning explain final best give summarize considering these answers "
    "other agents notes document market news trading debate round price stock "
    "company data context table chunk critic reflect")


def cache_root() -> Path:
    return Path(os.environ.get("HELIUM_LAB_CACHE", Path.home() / ".cache" / "helium_lab"))


def tiny_model_dir() -> Path:
    """The tiny model's cache folder, built on first use."""
    target = cache_root() / f"tiny-{TINY_VERSION}"
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tiny-{TINY_VERSION}-", dir=target.parent))
        try:
            build(tmp)
            try:
                os.rename(tmp, target)
            except OSError:  # another process won the race: keep its copy
                if not (target / "config.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _corpus(n_words: int, seed: int) -> list[str]:
    """Lines of synthetic words like the workloads' (`w123`, `s4567`, `o89`) and English."""
    rng = random.Random(seed)
    english = ENGLISH_TEXT.split()
    lines = []
    for _ in range(n_words // 20):
        words = []
        for _ in range(20):
            if rng.random() < 0.25:
                words.append(rng.choice(english))
            else:
                words.append(f"{rng.choice('wso')}{rng.randrange(50_000)}")
        sep = rng.choice([" ", " ", " ", "\n", ": ", ") "])
        lines.append(sep.join(words))
    return lines


def build_tokenizer(out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(TINY_SPEC["vocab_size"]),
                                  special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_corpus(int(TINY_SPEC["corpus_words"]), int(TINY_SPEC["seed"])),
                            trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=SPECIALS[1],
                                   pad_token=SPECIALS[1])
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))


def build_model(out_dir: Path, eos_id: int) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    spec = TINY_SPEC
    torch.manual_seed(int(spec["seed"]))
    config = Qwen3Config(
        vocab_size=int(spec["vocab_size"]), hidden_size=int(spec["hidden_size"]),
        intermediate_size=int(spec["intermediate_size"]),
        num_hidden_layers=int(spec["num_hidden_layers"]),
        num_attention_heads=int(spec["num_attention_heads"]),
        num_key_value_heads=int(spec["num_key_value_heads"]), head_dim=int(spec["head_dim"]),
        max_position_embeddings=int(spec["max_position_embeddings"]),
        initializer_range=float(spec["initializer_range"]),
        tie_word_embeddings=bool(spec["tie_word_embeddings"]),
        eos_token_id=eos_id, pad_token_id=eos_id, bos_token_id=None)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)  # type: ignore[arg-type]  # stub bug
    model.save_pretrained(str(out_dir))


def build(out_dir: str | Path) -> Path:
    """Write the tokenizer and the model into `out_dir` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    build_tokenizer(out)
    from transformers import AutoTokenizer

    eos_id = AutoTokenizer.from_pretrained(str(out)).convert_tokens_to_ids(SPECIALS[1])
    assert isinstance(eos_id, int), eos_id  # one token in, one id out
    build_model(out, eos_id)
    (out / "helium_tiny.json").write_text(json.dumps({"version": TINY_VERSION, **TINY_SPEC}),
                                          encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m runtime.tiny_model OUT_DIR", file=sys.stderr)
        return 2
    print(build(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
