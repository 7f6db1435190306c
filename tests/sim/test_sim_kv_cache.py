"""Block pool and KV cache manager: vLLM v1's prefix-caching rules, exact block by block."""

from __future__ import annotations

import random

import pytest

from sim.block_hash import BlockHasher
from sim.block_pool import BlockPool
from sim.kv_cache import KVCacheManager
from sim.request import SimRequest
from tests.sim.fakes import serve_alone


def req(rid: int, prompt: list[int] | range, out: int = 1) -> SimRequest:
    return SimRequest(rid, tuple(prompt), tuple(range(9000, 9000 + out)))


def run_alone(kv: KVCacheManager, r: SimRequest) -> int:
    """Admit `r`, prefill and decode it to the end, free it; return its prefix hit."""
    return serve_alone(kv, r).num_tokens


def test_hashes_cover_full_blocks_only_and_identify_the_prefix() -> None:
    h = BlockHasher(4)
    a = h.hashes([1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert len(a) == 2 and a == h.hashes([1, 2, 3, 4, 5, 6, 7, 8])
    b = h.hashes([9, 9, 9, 9, 5, 6, 7, 8])  # same tokens in block 1, other prefix
    assert a[0] != b[0] and a[1] != b[1]
    assert h.hashes([1, 2, 3]) == [] and h.hashes(()) == []
    big = [10**7, 5, 6, 7]  # ids beyond the precomputed table grow it
    assert h.hashes(big) == h.hashes(tuple(big)) != h.hashes([10**7, 5, 6, 8])
    with pytest.raises(ValueError, match="non-negative"):
        h.hashes([1, -2, 3, 4])


def _interned_chain(table: dict[tuple[int, tuple[int, ...]], int], tokens: list[int],
                    bs: int) -> list[int]:
    """Reference: vLLM's chaining, with each distinct (parent, block) pair interned."""
    out, parent = [], -1
    for lo in range(0, len(tokens) // bs * bs, bs):
        parent = table.setdefault((parent, tuple(tokens[lo:lo + bs])), len(table))
        out.append(parent)
    return out


def test_hashes_agree_with_chained_hashing_on_shared_prefixes() -> None:
    rng = random.Random(7)
    bs, h, table = 4, BlockHasher(4), {}
    seqs = [[rng.randrange(6) for _ in range(rng.randrange(40))] for _ in range(30)]
    seqs += [s[:k] + [rng.randrange(6) for _ in range(9)] for s in seqs for k in (3, 8, 13)]
    ours = {}
    for s in seqs:
        for mine, ref in zip(h.hashes(s), _interned_chain(table, s, bs), strict=True):
            assert ours.setdefault(mine, ref) == ref  # equal hashes <=> equal chains
    assert len(set(ours.values())) == len(ours)


def test_null_block_is_reserved() -> None:
    pool = BlockPool(4)
    assert pool.num_usable_blocks == 3 and pool.get_num_free_blocks() == 3
    assert [b.block_id for b in pool.get_new_blocks(3)] == [1, 2, 3]
    with pytest.raises(ValueError):
        pool.get_new_blocks(1)


def test_full_prompt_hit_recomputes_last_block() -> None:
    kv = KVCacheManager(num_gpu_blocks=16, block_size=4)
    assert run_alone(kv, req(0, range(8))) == 0
    assert run_alone(kv, req(1, range(8))) == 4  # (8 - 1) // 4 * 4
    assert run_alone(kv, req(2, range(9))) == 8
    assert run_alone(kv, req(3, range(3))) == 0
    assert run_alone(kv, req(4, [*range(4), 99, 99])) == 4  # stops at the first miss


def test_recomputed_block_is_cached_twice_and_lookup_takes_the_oldest() -> None:
    kv = KVCacheManager(num_gpu_blocks=16, block_size=4)
    run_alone(kv, req(0, range(8)))
    run_alone(kv, req(1, range(8)))
    second = kv.hasher.hashes(range(8))[1]
    # block 2 (first run), block 3 (rerun)
    assert [b.block_id for b in kv.pool.blocks_cached_under(second)] == [2, 3]
    assert kv.pool.get_cached_block(second).block_id == 2  # type: ignore[union-attr]


def test_output_blocks_are_cached() -> None:
    kv = KVCacheManager(num_gpu_blocks=16, block_size=4)
    first = req(0, range(6), out=4)  # KV of 6 + 3 tokens: two full blocks
    run_alone(kv, first)
    follow_up = req(1, [*range(6), 9000, 9001, 9002, 9003, 7])
    assert run_alone(kv, follow_up) == 8


def test_eviction_takes_unhashed_then_least_recent_tail_first() -> None:
    kv = KVCacheManager(num_gpu_blocks=7, block_size=4)  # 6 usable blocks
    run_alone(kv, req(0, range(10)))  # blocks 1, 2 cached, block 3 partial
    free = [b.block_id for b in kv.pool.free_queue]
    assert free == [3, 4, 5, 6, 2, 1]  # partial first, then unused, then tail-first
    run_alone(kv, req(1, range(100, 118)))  # 5 blocks: 3, 4, 5, 6 and evicts block 2
    assert kv.pool.num_evicted == 1
    assert run_alone(kv, req(2, range(10))) == 4  # block 1 survived, block 2 did not


def test_prefix_caching_off_never_hits() -> None:
    kv = KVCacheManager(num_gpu_blocks=16, block_size=4, enable_caching=False)
    run_alone(kv, req(0, range(8)))
    assert run_alone(kv, req(1, range(8))) == 0
    assert kv.pool.cached == {}


def test_allocation_failure_changes_nothing() -> None:
    kv = KVCacheManager(num_gpu_blocks=4, block_size=4)
    run_alone(kv, req(0, range(8)))
    r = req(1, [*range(8), 50, 51, 52, 53, 54])
    hit = kv.find_cached_prefix(r)
    assert hit.num_tokens == 8
    before = [b.block_id for b in kv.pool.free_queue]
    assert not kv.allocate_slots(r, 20, hit)
    assert [b.block_id for b in kv.pool.free_queue] == before
    kv.check_integrity()


def test_soft_pin_survives_until_true_pressure() -> None:
    kv = KVCacheManager(num_gpu_blocks=7, block_size=4)  # 6 usable blocks
    system = list(range(8))
    kv.pin_prefix(system)
    run_alone(kv, req(0, [*system, 42]))  # blocks 1, 2 pinned-cached; 3 partial
    assert [b.block_id for b in kv.pool.pinned_queue] == [2, 1]
    run_alone(kv, req(1, range(100, 113)))  # needs 4 blocks: 3, 4, 5, 6; pin untouched
    assert run_alone(kv, req(2, [*system, 43])) == 8
    run_alone(kv, req(3, range(200, 221)))  # needs all 6 blocks: pinned ones evicted
    assert kv.pool.num_pinned_evicted == 2
    assert kv.cached_prefix_tokens(system) == 0
    assert run_alone(kv, req(4, [*system, 44])) == 0  # re-warmed by this run
    assert kv.cached_prefix_tokens(system) == 8


def test_hard_pins_hold_a_prewarmed_prefix_through_eviction_within_their_cap() -> None:
    """pin_mode 'hard' (runtime/pins.py on stock vLLM): a finished prewarm's full blocks
    keep an extra reference, so filling the cache many times over never evicts them."""
    kv = KVCacheManager(num_gpu_blocks=16, block_size=4)
    kv.hard_pin_limit = 2
    prefix = tuple(range(100, 108))  # two full blocks
    warm = req(0, prefix)
    kv.hard_pin_on_free(warm, prefix)
    run_alone(kv, warm)
    assert [b.ref_cnt for b in kv.hard_pins[prefix]] == [1, 1]
    assert kv.pool.get_num_free_blocks() == 15 - 2  # pinned blocks count as used
    for i in range(1, 30):  # 29 other prompts of 3 blocks each: the cache turns over
        run_alone(kv, req(i, range(1000 * i, 1000 * i + 12)))
    assert run_alone(kv, req(99, [*prefix, 5])) == 8  # both pinned blocks still hit
    over = req(100, range(500, 508))  # a second prefix would exceed the cap of 2 blocks
    kv.hard_pin_on_free(over, over.prompt_ids)
    run_alone(kv, over)
    assert list(kv.hard_pins) == [prefix]
