"""KVFlow's agent step graph (helium_lab/processor/step_graph.py): distances as the
reference program computes them, and the updates the processor reports."""

from __future__ import annotations

from helium_lab.processor.step_graph import FAR_FUTURE, StepGraph, StepTracker
from tests.helpers import fig4_workflow
from tests.processor.test_discipline import _finish, _proc

F = FAR_FUTURE
# a -> c <- b, c -> d
GRAPH = StepGraph(["a", "b", "c", "d"], {"c": {"a", "b"}, "d": {"c"}})


def test_distances_follow_the_all_predecessors_rule() -> None:
    assert GRAPH.distances(set(), set()) == {"a": F, "b": F, "c": F, "d": F}
    # b has not started and has no predecessor: c waits on it, so c and d are far too
    assert GRAPH.distances({"a"}, set()) == {"a": 0, "b": F, "c": F, "d": F}
    assert GRAPH.distances({"a", "b"}, set()) == {"a": 0, "b": 0, "c": 1, "d": 2}
    # a done counts 0 for its successors but is reported far (evictable)
    assert GRAPH.distances({"b"}, {"a"}) == {"a": F, "b": 0, "c": 1, "d": 2}
    assert GRAPH.distances({"c"}, {"a", "b"}) == {"a": F, "b": F, "c": 0, "d": 1}


def test_tracker_reports_first_entry_and_last_exit_only_when_changed() -> None:
    t = StepTracker(GRAPH, {"a": 2, "b": 2, "c": 2, "d": 2})
    assert t.started("a") == {"a": 0, "b": F, "c": F, "d": F}
    assert t.started("a") is None  # a second item entering a: nothing new
    assert t.started("b") == {"a": 0, "b": 0, "c": 1, "d": 2}
    assert t.finished("a") is None  # one of two items done
    assert t.finished("a") == {"a": F, "b": 0, "c": 1, "d": 2}
    assert t.finished("a") is None  # already done


def test_processor_reports_updates_when_agents_start_and_finish() -> None:
    # Fig. 4: Op1 and Op2 are independent, Op3 reads Op1
    proc = _proc(fig4_workflow(), 2, "random", router="least_loaded", step_graph=True)
    first = proc.start()
    ups = proc.step_graph_updates()
    assert ups[-1] == {"Op1": 0, "Op2": 0, "Op3": 1}
    assert proc.step_graph_updates() == []  # drained
    by = {(c.op, c.query): c for c in first}
    _finish(proc, by[("Op1", 0)])  # Op3 of query 0 enters: Op3 active
    assert proc.step_graph_updates() == [{"Op1": 0, "Op2": 0, "Op3": 0}]
    _finish(proc, by[("Op1", 1)])  # the last item leaves Op1
    assert proc.step_graph_updates() == [{"Op1": F, "Op2": 0, "Op3": 0}]


def test_processor_without_step_graph_reports_nothing() -> None:
    proc = _proc(fig4_workflow(), 2, "random", router="least_loaded")
    proc.start()
    assert proc.step_graph_updates() == []
