"""A run rebuilt from its journal, whole or up to a version, and journals that cannot be."""

from __future__ import annotations

import pytest

from runtime.engine._engine import apply
from runtime.engine._events import (
    ClockJumped,
    Dispatch,
    RunRecovered,
    StartTimer,
)
from runtime.engine._run import Run
from runtime.planes._views import record_view
from runtime.store import GraphNotLoaded, JournalRecord, JournalUnreadable, replay
from runtime.testing import EngineDriver
from runtime.workflow._catalog import Catalog, CatalogError
from runtime.workflow._definition import Role, Step, Workflow, chain
from runtime.workflow._graph import Graph, compile_workflow
from runtime.workflow._policies import Retry

RUN = "run-r"
GRAPH = compile_workflow(
    Workflow(
        "pair",
        roles=[Role("worker")],
        inputs=["n"],
        steps=[
            Step("a", role="worker", reads=["n"], writes=["x"]),
            Step("b", role="worker", reads=["x"], writes=["y"]),
        ],
        edges=chain("a", "b"),
    )
)
GRAPHS = Catalog([GRAPH])
SLOW = compile_workflow(
    Workflow(
        "slow",
        roles=[Role("worker")],
        steps=[
            Step("a", role="worker", writes=["x"], on_failure=Retry(3, backoff=10.0, jitter=0.0))
        ],
    )
)
"""One step that retries after 10 s."""


def lived() -> tuple[Run, list[JournalRecord]]:
    """A run driven to completion event by event from t=10, and the journal the supervisor
    keeps: agent `w` takes `a` and `b` in turn and returns x=2, then y=3."""
    d = EngineDriver(GRAPH, {"n": 1}, run_id=RUN, at=10.0, agent="w")
    d.succeed("a", {"x": 2})
    d.succeed("b", {"y": 3})
    return d.run, d.journal


def failing() -> EngineDriver:
    """A run of `SLOW` started at t=10, its step out with agent `w` since t=10.5."""
    d = EngineDriver(SLOW, run_id=RUN, at=10.0, agent="w")
    d.dispatch("a", at=10.5)
    return d


class TestReplay:
    """The record is the fold of the journal."""

    def test_the_whole_journal_gives_the_same_record(self) -> None:
        run, records = lived()
        assert record_view(replay(GRAPHS, records)) == record_view(run)

    def test_a_version_gives_the_record_as_it_was_then(self) -> None:
        """Up to the version of a's success: x is written, y is not, the run is running."""
        run, records = lived()
        version = next(h.seq for h in run.history if h.event == "step_succeeded")
        past = replay(GRAPHS, records, version=version)
        assert past.status == "running"
        assert past.data == {"n": 1, "x": 2}
        assert max(h.seq for h in past.history) >= version
        assert past.seq < run.seq

    @pytest.mark.parametrize(
        ("mangle", "reason"),
        [
            (lambda rs: [], "the journal is empty"),
            (lambda rs: rs[1:], "seq 2 where 1 was due"),
            (lambda rs: [rs[0], *rs[2:]], "seq 3 where 2 was due"),
        ],
    )
    def test_a_broken_journal_is_refused(self, mangle: object, reason: str) -> None:
        _, records = lived()
        assert callable(mangle)
        with pytest.raises(JournalUnreadable, match=reason):
            replay(GRAPHS, mangle(records))

    def test_a_journal_not_beginning_with_its_start_is_refused(self) -> None:
        _, records = lived()
        shifted = [JournalRecord(RUN, n, r.at, r.event) for n, r in enumerate(records[1:], 1)]
        with pytest.raises(JournalUnreadable, match="it begins with StepDispatched"):
            replay(GRAPHS, shifted)

    def test_a_run_is_never_replayed_on_another_graph(self) -> None:
        """A changed workflow (another fingerprint) or an unloaded one: refused, saying which."""
        _, records = lived()
        other: Graph = compile_workflow(
            Workflow(
                "pair",
                roles=[Role("worker")],
                inputs=["n"],
                steps=[Step("a", role="worker", reads=["n"], writes=["x"])],
            )
        )
        with pytest.raises(GraphNotLoaded, match="this runtime has only version '1'") as changed:
            replay(Catalog([other]), records)
        assert changed.value.started.fingerprint == GRAPH.fingerprint
        with pytest.raises(GraphNotLoaded, match="no version of 'pair' is loaded"):
            replay(Catalog([]), records)

    def test_an_earlier_version_loaded_beside_the_current_one_replays_its_runs(self) -> None:
        """New runs start on the current version; a run of the earlier one folds on it."""
        _, records = lived()
        other: Graph = compile_workflow(
            Workflow(
                "pair",
                version="2",
                roles=[Role("worker")],
                inputs=["n"],
                steps=[Step("a", role="worker", reads=["n"], writes=["x"])],
            )
        )
        catalog = Catalog([other], previous=[GRAPH])
        assert catalog.current == {"pair": other}
        assert replay(catalog, records).graph is GRAPH

    def test_the_same_version_loaded_twice_is_refused(self) -> None:
        with pytest.raises(CatalogError, match="loaded twice"):
            Catalog([GRAPH], previous=[GRAPH])
        with pytest.raises(CatalogError, match="workflow 'pair' is loaded twice"):
            Catalog([GRAPH, compile_workflow(GRAPH.workflow)])


class TestRecovered:
    """What a restarted runtime does with a run it took up again."""

    def test_a_step_out_with_its_agent_is_dispatched_again_under_its_attempt(self) -> None:
        _, records = lived()
        replayed = replay(GRAPHS, records[:2])  # a dispatched, no result yet
        assert replayed.steps["a"].status == "running"
        commands = apply(replayed, RunRecovered(RUN), 20.0)
        (dispatch,) = [c for c in commands if isinstance(c, Dispatch)]
        assert (dispatch.step, dispatch.attempt) == ("a", 1)
        assert replayed.steps["a"].status == "queued"
        assert [h.event for h in replayed.history[-2:]] == ["run_recovered", "step_requeued"]

    def test_a_retry_wait_resumes_with_the_time_it_had_left(self) -> None:
        """Failed at t=11 with a 10 s backoff, recovered at t=15: the retry fires in 6 s."""
        d = failing()
        failed = d.fail("a", at=11.0)
        assert [c.delay for c in failed if isinstance(c, StartTimer)] == [10.0]
        resumed = d.feed(RunRecovered(RUN), at=15.0)
        assert [(c.purpose, c.delay) for c in resumed if isinstance(c, StartTimer)] == [
            ("retry", pytest.approx(6.0))
        ]

    def test_a_retry_wait_keeps_its_time_through_a_wall_clock_set_back(self) -> None:
        """Failed at t=11 with a 10 s backoff; back at t=15 on a wall clock set back an hour:
        the retry fires in 6 s, not in an hour and 6 s."""
        d = failing()
        d.fail("a", at=11.0)
        d.feed(ClockJumped(RUN, -3600.0), at=15.0 - 3600)
        resumed = d.feed(RunRecovered(RUN), at=15.0 - 3600)
        assert [(c.purpose, c.delay) for c in resumed if isinstance(c, StartTimer)] == [
            ("retry", pytest.approx(6.0))
        ]
