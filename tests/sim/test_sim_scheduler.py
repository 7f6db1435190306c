"""Scheduler stories with exact step logs: chunked prefill, preemption, queue orders."""

from __future__ import annotations

from helium_lab.config import EngineSettings
from sim.kv_cache import KVCacheManager
from sim.queue_policy import make_queue
from sim.request import SimRequest
from sim.scheduler import Scheduler

Log = list[tuple[int, list[tuple[str, int, int]], list[str]]]


def make(num_gpu_blocks: int, budget: int, max_seqs: int, order: str = "fcfs",
         block_size: int = 4) -> Scheduler:
    settings = EngineSettings(block_size=block_size, max_num_batched_tokens=budget,
                              max_num_seqs=max_seqs, queue_order=order)
    return Scheduler(settings, KVCacheManager(num_gpu_blocks, block_size), make_queue(order))


def req(rid: int, prompt_len: int, out: int, priority: int = 0, base: int = 0) -> SimRequest:
    prompt = tuple(range(base or 1000 * (rid + 1), (base or 1000 * (rid + 1)) + prompt_len))
    return SimRequest(rid, prompt, tuple(range(50, 50 + out)), priority)


NAMES = "ABCDEFG"


def run(sched: Scheduler, max_steps: int = 100) -> Log:
    """Step until idle at 1 s per step; log (step, [(req, tokens, context)], finished)."""
    log: Log = []
    for step in range(1, max_steps + 1):
        if not sched.has_work():
            return log
        out = sched.schedule(float(step - 1))
        done = sched.update(out, float(step))
        sched.kv.check_integrity()
        log.append((step, [(NAMES[c.req.request_id], c.num_tokens, c.context_len)
                           for c in out.chunks], [NAMES[r.request_id] for r in done]))
    raise AssertionError("did not finish")


def test_chunked_prefill_decode_first_and_max_num_seqs() -> None:
    sched = make(num_gpu_blocks=9, budget=8, max_seqs=2)
    a, b, c = req(0, 10, 3), req(1, 6, 2), req(2, 4, 1)
    for r in (a, b, c):
        sched.add(r)
    assert run(sched) == [
        (1, [("A", 8, 0)], []),
        (2, [("A", 2, 8), ("B", 6, 0)], []),
        (3, [("A", 1, 10), ("B", 1, 6)], ["B"]),
        (4, [("A", 1, 11), ("C", 4, 0)], ["A", "C"]),
    ]
    assert [(r.start_t, r.first_token_t, r.finish_t) for r in (a, b, c)] == [
        (0.0, 2.0, 4.0), (1.0, 2.0, 3.0), (3.0, 4.0, 4.0)]


def test_preemption_by_recompute_and_partial_rehit() -> None:
    sched = make(num_gpu_blocks=5, budget=32, max_seqs=4)  # 4 usable blocks of 4
    a, b = req(0, 6, 6), req(1, 6, 6)
    sched.add(a)
    sched.add(b)
    assert run(sched) == [
        (1, [("A", 6, 0), ("B", 6, 0)], []),
        (2, [("A", 1, 6), ("B", 1, 6)], []),
        (3, [("A", 1, 7), ("B", 1, 7)], []),
        (4, [("A", 1, 8)], []),  # A needs a third block: B (newest) is preempted
        (5, [("A", 1, 9)], []),  # B can't be readmitted: A holds 3 of 4 blocks
        (6, [("A", 1, 10)], ["A"]),
        (7, [("B", 5, 4)], []),  # B's first block survived; its tail block was evicted
        (8, [("B", 1, 9)], []),
        (9, [("B", 1, 10)], ["B"]),
    ]
    assert (b.num_preemptions, b.cached_tokens, sched.num_preemptions) == (1, 0, 1)
    assert sched.kv.pool.get_num_free_blocks() == 4


def test_priority_order_and_victim() -> None:
    sched = make(num_gpu_blocks=64, budget=64, max_seqs=1, order="priority")
    for r in (req(0, 4, 1, priority=2), req(1, 4, 1, priority=0), req(2, 4, 1, priority=1),
              req(3, 4, 1, priority=0)):
        sched.add(r)
    assert [names for _, _, names in run(sched)] == [["B"], ["D"], ["C"], ["A"]]
    running = [req(0, 4, 1, priority=0), req(1, 4, 1, priority=5), req(2, 4, 1, priority=5)]
    assert sched.waiting.victim(running).request_id == 2


def test_lspf_admits_longest_cached_prefix_first() -> None:
    sched = make(num_gpu_blocks=64, budget=64, max_seqs=1, order="lspf")
    sched.add(req(0, 13, 1, base=500))
    run(sched)  # caches 3 blocks of prompt 500..512
    for r in (req(1, 9, 1, base=900), req(2, 6, 1, base=500), req(3, 13, 1, base=500)):
        sched.add(r)
    assert [names for _, _, names in run(sched)] == [["D"], ["C"], ["B"]]


def test_fcfs_ignores_cache_and_priority() -> None:
    sched = make(num_gpu_blocks=64, budget=64, max_seqs=1)
    sched.add(req(0, 13, 1, base=500))
    run(sched)
    for r in (req(1, 9, 1, base=900, priority=9), req(2, 6, 1, base=500),
              req(3, 13, 1, base=500)):
        sched.add(r)
    assert [names for _, _, names in run(sched)] == [["B"], ["C"], ["D"]]
