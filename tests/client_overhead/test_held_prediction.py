"""`predict_held` (experiments/client_held.py): the held-response workload through
sim/client.py's serial thread, checked by hand on two items of one expert each, and
through sim/client_loop.py's event loop against the stored held runs."""

from __future__ import annotations

import json
import statistics

import pytest

from experiments.client_held import (
    DEFAULT_OUT,
    SHAPES,
    predict_held,
    recorded_cost,
    recorded_pool,
)


def test_predict_held_by_hand() -> None:
    cost = recorded_cost("langgraph_mapred")  # LangGraph's recorded constants, no curve
    c, b = cost.call_s, cost.prompt_token_s
    assert cost.output_token_s == 0.0
    p, o, h = 2000, 100, 10.0  # prompt, output tokens; hold seconds
    a = c / 2 + b * p  # building one expert request
    # t=0: both experts' requests leave at a and 2a; answers arrive at a + h and 2a + h.
    # The first answer is handled at a + h .. a + h + c/2, then item 0's summarizer
    # (P + O tokens) is built at once; the second answer waits for it.
    d1 = a + h + c / 2
    s1 = d1 + c / 2 + b * (p + o)
    d2 = s1 + c / 2
    s2 = d2 + c / 2 + b * (p + o)
    # the summarizers' answers arrive at s1 + h and s2 + h; the last is handled by s2 + h + c/2
    got = predict_held(cost, 4, h, p, o, width=1)
    assert got["makespan_s"] == pytest.approx(s2 + h + c / 2, abs=1e-3)
    work = 2 * a + 2 * (c / 2) + 2 * (c / 2 + b * (p + o)) + 2 * (c / 2)
    assert got["cpu_ms_per_call"] == pytest.approx(1e3 * work / 4, abs=1e-3)


def test_a_flat_batch_by_hand() -> None:
    """width 0: three calls at once, no second stage; the curve (3, 4c) makes the call cost
    c, 2.5c, 4c at 1, 2, 3 in flight: each request c/2 (the send side does not grow), each
    response the rest of its call's cost."""
    c, h = 0.004, 1.0
    base = recorded_cost("openai")
    cost = type(base)(call_s=c, concurrency=((3, 4 * c),))
    got = predict_held(cost, 3, h, 0, 0, width=0)
    leave = [c / 2, c, 1.5 * c]  # requests at n = 1, 2, 3: c/2 each
    # answers at leave + h; handled at n = 3, 2, 1 (each after the thread is free)
    t1 = leave[0] + h + 3.5 * c
    t2 = max(leave[1] + h, t1) + 2 * c
    t3 = max(leave[2] + h, t2) + c / 2
    assert got["makespan_s"] == pytest.approx(t3, abs=1e-3)


def test_chains_by_hand() -> None:
    """OpWise's shape: two items of two calls each, each item's second call once its
    first answer is handled."""
    cost = recorded_cost("openai_chain")  # AsyncOpenAI's recorded constants, no curve
    c, b = cost.call_s, cost.prompt_token_s
    p, o, h = 2000, 100, 10.0
    a = c / 2 + b * p  # a first request
    r0 = a + h + c / 2  # item 0's first answer (arrived at a + h) handled
    q0 = r0 + c / 2 + b * (p + o)  # its second request, before item 1's answer (2a + h)
    r1 = q0 + c / 2  # item 1's first answer handled once the thread is free
    q1 = r1 + c / 2 + b * (p + o)
    got = predict_held(cost, 4, h, p, o, width=1, shape="chain")
    assert got["makespan_s"] == pytest.approx(q1 + h + c / 2, abs=1e-3)
    work = 2 * a + 4 * (c / 2) + 2 * (c / 2 + b * (p + o))
    assert got["cpu_ms_per_call"] == pytest.approx(1e3 * work / 4, abs=1e-3)


def test_an_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="shape 'tree'"):
        predict_held(recorded_cost("openai"), 4, 1.0, 10, 10, width=1, shape="tree")


def test_the_event_loop_model_reproduces_the_stored_held_runs() -> None:
    """Every configuration of conf/orchestration/client_held.json (three clients, 25 to
    2,000 calls, holds of 0.5-5 s; nothing fitted to them) through the event loop model
    with the recorded constants: the median makespan error stays under 0.1 and none
    beyond 0.6 (today's worst: +0.50, 250 gathered AsyncOpenAI calls;
    docs/client_overhead.md, "the pile-up", has the table)."""
    report = json.loads(DEFAULT_OUT.read_text())
    st = report["settings"]
    groups: dict[tuple[str, int, int], list[float]] = {}
    for run in report["runs"]:
        groups.setdefault((run["kind"], run["calls"], run["hold_ms"]), []).append(
            run["wall_s"])
    errors = []
    for (kind, calls, hold), walls in sorted(groups.items()):
        cost = recorded_cost(kind, pool=recorded_pool(kind=kind))
        got = predict_held(cost, calls, hold / 1e3,
                           st["prompt_tokens"], st["output_tokens"], st["width"],
                           SHAPES[kind])
        errors.append(abs(got["makespan_s"] / statistics.median(walls) - 1))
    assert len(errors) == 21
    assert statistics.median(errors) < 0.1 and max(errors) < 0.6


def test_the_event_loop_prediction_of_one_chain_by_hand() -> None:
    """One item, two chained calls, no warm-up effect on a pool that keeps its
    connection: each call costs its two halves plus two cheap passes, and waits its hold."""
    pool = recorded_pool()
    cost = recorded_cost("openai_chain", pool=pool)
    got = predict_held(cost, 2, 10.0, 100, 10, width=1, shape="chain")
    assert 20.0 < got["makespan_s"] < 20.0 + 4 * cost.call_s
    assert got["passes_per_call"] == 2.0
