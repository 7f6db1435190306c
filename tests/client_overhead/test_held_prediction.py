"""`predict_held` (experiments/client_held.py): the held-response workload through
sim/client.py, checked by hand on two items of one expert each."""

from __future__ import annotations

import pytest

from experiments.client_held import predict_held, recorded_cost


def test_predict_held_by_hand() -> None:
    cost = recorded_cost(0.0)  # LangGraph's recorded constants, no pool term
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
    got = predict_held(4, h, 0.0, p, o, width=1)
    assert got["makespan_s"] == pytest.approx(s2 + h + c / 2, abs=1e-3)
    work = 2 * a + 2 * (c / 2) + 2 * (c / 2 + b * (p + o)) + 2 * (c / 2)
    assert got["cpu_ms_per_call"] == pytest.approx(1e3 * work / 4, abs=1e-3)


def test_the_pool_term_only_adds_client_cpu() -> None:
    plain = predict_held(250, 2.0, 0.0, 2000, 100, width=4)
    pooled = predict_held(250, 2.0, 2.2, 2000, 100, width=4)
    assert pooled["cpu_ms_per_call"] > plain["cpu_ms_per_call"]
    assert pooled["makespan_s"] > plain["makespan_s"]
