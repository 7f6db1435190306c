"""A tiny constructed-weight Qwen3 model and its locally trained tokenizer, for CPU tests.

    python -m runtime.tiny_model OUT_DIR      # build into OUT_DIR (seconds, no downloads)

The model is Qwen3-shaped (hidden 128, 2 layers, 4 heads / 2 KV heads, head_dim 32,
vocabulary 2048 = 2^11, untied embeddings, bf16). Its weights are not random: they are
constructed so that greedy decoding computes a fixed function of the token ids with a wide
margin at every step, so its outputs do not depend on batch composition, chunking or
prefix caching (random bf16 weights give near-tied logits, and a different batch flips a
few of 200 debate queries). The construction, with every value in the residual a +-1 "bit":

- embedding of token t: its 11 id bits as +-1 (dims 0-10) and a constant 1 (dim 11);
- layer 0 attention: query head h attends to the token `offsets[h]` positions back and
  copies its 11 bits (dims 12-55). Keys and queries are constants (from dim 11), so the
  score depends only on the relative position d, through RoPE: sum over the 16 pairs of
  w_j cos((d - offset) theta_j). It peaks at d = offset, and every other d in
  0..max_position_embeddings scores at least 40 lower (`rope_gap`; the pair weights w_j
  come from a linear program): weight exp(-40) per position, a one-hot attention;
- layer 0 MLP: output bit k = product (XOR) of 3 input bits (a current-token bit and a bit
  from two heads), as a piecewise-linear parity of their sum from 3 SiLU units (SiLU of
  +-32 or more is ReLU to 1e-13); dims 56-66;
- layer 1 is inert (zero projections); lm_head row t = the bits of t (x lm_gain) on dims
  56-66, so logit(t) = sum_k bit_k(t) y_k and the argmax picks each bit by the sign of its
  y_k = +-1: the best token beats every other by 2 x lm_gain x (final-norm scale) ~ 11.

Every quantity is O(1) and well conditioned, so bf16 rounding (relative 2^-8 per step, a
few steps) moves a y_k by a few percent of its +-1, never its sign; the attention's gap is
40 against rounding noise under 2 (largest score 172). Any two batchings of the same call
therefore pick the same tokens: `next_token` is the function in exact arithmetic, and the
tests check vLLM against it. It holds for every position with at least max(offsets)
tokens before it, i.e. for calls whose prompt is longer than max(offsets) = 160 tokens
(all the workloads' prompts are longer); shorter prompts leave heads without a target
(their attention then spreads over near-tied positions, with no margin). The text is
varied: token i+1 mixes token i with the tokens 24, 48, 96 and 160 positions back, so
each answer depends on its prompt. The tokenizer is a byte-level BPE trained with the
`tokenizers` library on synthetic words generated here (shaped like the workloads'
synthetic text: a letter and a number, plus a few English words), with the ChatML specials
`<|im_start|>` and `<|im_end|>`.

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
from typing import Any

# Everything that decides what gets built; its hash names the cache folder (bump "builder"
# when the code below changes what it builds for the same spec).
TINY_SPEC: dict[str, Any] = {
    "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
    "vocab_size": 2048, "max_position_embeddings": 32768, "rope_theta": 10000.0,
    "tie_word_embeddings": False, "seed": 0, "corpus_words": 60_000, "builder": 2,
    # the construction (module docstring): one positional head per offset, each reading
    # the token that many positions back; RoPE pair weights (key) chosen by a linear
    # program to maximise the smallest score gap over 32k relative positions
    "offsets": [24, 48, 96, 160],
    "pair_weights": [8.0, 0.875, 0.875, 0.75, 0.5, 0.625, 0.375, 0.25, 0.5, 0.5, 0.625,
                     0.25, 0.25, 0.5, 0.625, 0.25],
    "q_gain": 64.0, "mlp_gain": 16.0, "lm_gain": 4.0,
}
TINY_VERSION = hashlib.sha256(json.dumps(TINY_SPEC, sort_keys=True).encode()).hexdigest()[:12]
BITS = int(TINY_SPEC["vocab_size"]).bit_length() - 1  # 11: a token id is 11 bits
HALF = int(TINY_SPEC["head_dim"]) // 2  # RoPE pairs per head
OFFSETS: tuple[int, ...] = tuple(TINY_SPEC["offsets"])
PAIR_WEIGHTS: tuple[float, ...] = tuple(TINY_SPEC["pair_weights"])
Q_GAIN, MLP_GAIN, LM_GAIN = (float(TINY_SPEC[k]) for k in ("q_gain", "mlp_gain", "lm_gain"))
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


def _bits(t: int) -> list[float]:
    """Token id -> its BITS bits as +-1 (bit k of the id)."""
    return [1.0 if t >> k & 1 else -1.0 for k in range(BITS)]


def _parity_inputs(k: int) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """Output bit k = current-token bit `c` x bit `i` of head `h` x bit `j` of head `g`."""
    heads = len(OFFSETS)
    return (k + 1) % BITS, (k % heads, k), ((k + 1) % heads, (k + 5) % BITS)


def next_token(ids: list[int] | tuple[int, ...]) -> int:
    """What the constructed model computes at the last position of `ids` (>= max(OFFSETS)
    + 1 tokens): the greedy next token, in exact arithmetic (tests compare vLLM to it)."""
    n = len(ids)
    if n <= max(OFFSETS):
        raise ValueError(f"the construction is defined for >= {max(OFFSETS) + 1} tokens")
    cur = _bits(ids[-1])
    heads = [_bits(ids[n - 1 - d]) for d in OFFSETS]
    t = 0
    for k in range(BITS):
        c, (h, i), (g, j) = _parity_inputs(k)
        if cur[c] * heads[h][i] * heads[g][j] > 0:
            t |= 1 << k
    return t


def rope_gap(n: int | None = None) -> tuple[float, float]:
    """(smallest score gap, largest score) of the positional heads in exact arithmetic,
    over every relative position 0..n (default max_position_embeddings), after the
    attention scale: the target position beats every other one by at least the gap."""
    import numpy as np

    n = int(TINY_SPEC["max_position_embeddings"]) if n is None else n
    w = np.array(PAIR_WEIGHTS, dtype=np.float64)
    theta = float(TINY_SPEC["rope_theta"]) ** (-np.arange(HALF) / HALF)
    x = np.arange(1, n + 1, dtype=np.float64)
    per_unit = _score_unit()
    gap = (1 - np.cos(np.outer(x, theta))) @ w
    return float(gap.min() * per_unit), float(w.sum() * per_unit)


def _score_unit() -> float:
    """Score of one unit of pair weight at the target (q_norm/k_norm/attention scale)."""
    import math

    head_dim = int(TINY_SPEC["head_dim"])
    rms_k = math.sqrt(sum(w * w for w in PAIR_WEIGHTS) / head_dim)
    # |q pair| = sqrt(2) * Q_GAIN (unit pair over rms 1/sqrt(2)), |k pair| = w / rms_k
    return math.sqrt(2) * Q_GAIN / rms_k / math.sqrt(head_dim)


def construct_weights() -> dict[str, Any]:
    """The state dict of the constructed model (float32; see the module docstring)."""
    import math

    import torch

    spec = TINY_SPEC
    d, inter = int(spec["hidden_size"]), int(spec["intermediate_size"])
    v, hd = int(spec["vocab_size"]), int(spec["head_dim"])
    nh, nkv = int(spec["num_attention_heads"]), int(spec["num_key_value_heads"])
    assert len(OFFSETS) == nh and hd == 2 * HALF and v == 1 << BITS
    bias, head0, out0 = BITS, BITS + 1, BITS + 1 + nh * BITS
    assert out0 + BITS <= d and inter >= 3 * BITS + 1
    codes = torch.tensor([_bits(t) for t in range(v)])
    sd: dict[str, Any] = {}
    emb = torch.zeros(v, d)
    emb[:, :BITS] = codes
    emb[:, bias] = 1.0
    sd["model.embed_tokens.weight"] = emb
    head = torch.zeros(v, d)
    head[:, out0:out0 + BITS] = codes * LM_GAIN
    sd["lm_head.weight"] = head
    sd["model.norm.weight"] = torch.ones(d)
    theta = float(spec["rope_theta"]) ** (-torch.arange(HALF, dtype=torch.float64) / HALF)
    for layer in range(int(spec["num_hidden_layers"])):
        pre = f"model.layers.{layer}."
        live = layer == 0
        # RMSNorm weights = the input's rms, so every +-1 entry comes out as ~+-1
        sd[pre + "input_layernorm.weight"] = torch.full((d,), math.sqrt((BITS + 1) / d)
                                                        if live else 1.0)
        sd[pre + "post_attention_layernorm.weight"] = torch.full(
            (d,), math.sqrt((BITS * (nh + 1) + 1) / d) if live else 1.0)
        q, k, val = torch.zeros(nh * hd, d), torch.zeros(nkv * hd, d), torch.zeros(nkv * hd, d)
        o = torch.zeros(d, nh * hd)
        gate, up, down = torch.zeros(inter, d), torch.zeros(inter, d), torch.zeros(d, inter)
        if live:
            for h, off in enumerate(OFFSETS):  # query: unit pairs at phase -off * theta
                q[h * hd:h * hd + HALF, bias] = torch.cos(-off * theta).float()
                q[h * hd + HALF:(h + 1) * hd, bias] = torch.sin(-off * theta).float()
                o[head0 + h * BITS:head0 + (h + 1) * BITS, h * hd:h * hd + BITS] = torch.eye(BITS)
            for g in range(nkv):  # key: real pair weights; value: the token's bits
                k[g * hd:g * hd + HALF, bias] = torch.tensor(PAIR_WEIGHTS)
                val[g * hd:g * hd + BITS, :BITS] = torch.eye(BITS)
            gate[0, bias], up[0, bias] = MLP_GAIN, 1.0  # the constant unit
            for b in range(BITS):
                c, (h, i), (g2, j) = _parity_inputs(b)
                for u, (thr, coef) in enumerate(((3.0, 1.0), (1.0, -2.0), (-1.0, 2.0))):
                    row = 1 + 3 * b + u
                    gate[row, c] = gate[row, head0 + h * BITS + i] = MLP_GAIN
                    gate[row, head0 + g2 * BITS + j] = MLP_GAIN
                    gate[row, bias] = MLP_GAIN * thr
                    up[row, bias] = 1.0
                    down[out0 + b, row] = coef / MLP_GAIN
                down[out0 + b, 0] = -1.0 / MLP_GAIN
        sd[pre + "self_attn.q_proj.weight"] = q
        sd[pre + "self_attn.k_proj.weight"] = k
        sd[pre + "self_attn.v_proj.weight"] = val
        sd[pre + "self_attn.o_proj.weight"] = o
        sd[pre + "self_attn.q_norm.weight"] = torch.full((hd,), Q_GAIN if live else 1.0)
        sd[pre + "self_attn.k_norm.weight"] = torch.ones(hd)
        sd[pre + "mlp.gate_proj.weight"] = gate
        sd[pre + "mlp.up_proj.weight"] = up
        sd[pre + "mlp.down_proj.weight"] = down
    return sd


def build_model(out_dir: Path, eos_id: int) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    spec = TINY_SPEC
    config = Qwen3Config(
        vocab_size=int(spec["vocab_size"]), hidden_size=int(spec["hidden_size"]),
        intermediate_size=int(spec["intermediate_size"]),
        num_hidden_layers=int(spec["num_hidden_layers"]),
        num_attention_heads=int(spec["num_attention_heads"]),
        num_key_value_heads=int(spec["num_key_value_heads"]), head_dim=int(spec["head_dim"]),
        max_position_embeddings=int(spec["max_position_embeddings"]),
        rope_parameters={"rope_type": "default", "rope_theta": float(spec["rope_theta"])},
        tie_word_embeddings=bool(spec["tie_word_embeddings"]),
        eos_token_id=eos_id, pad_token_id=eos_id, bos_token_id=None)
    model = Qwen3ForCausalLM(config)
    missing = set(model.state_dict()) - set(construct_weights())
    assert not missing, missing
    model.load_state_dict(construct_weights(), strict=True)
    model.to(torch.bfloat16)  # type: ignore[arg-type]  # stub bug
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
