"""The report against a workload whose failures were injected at known rates."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from runtime.engine._engine import apply as fold
from runtime.engine._engine import start
from runtime.engine._events import (
    DecisionMade,
    JournalEvent,
    RunStarted,
    StepDispatched,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from runtime.engine._run import Run
from runtime.observe._report import Report, StepFigures, report
from runtime.observe._report_render import render_report
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._definition import Role, Step, Workflow, chain
from runtime.workflow._graph import Graph, compile_workflow
from runtime.workflow._policies import Halt, ProceedWithFlag, Retry

RUNS = 200
FLAG = "d guessed"
WORKFLOW = Workflow(
    "chain",
    roles=[Role("w")],
    steps=[
        Step("a", role="w", writes=["a"]),
        Step("b", role="w", reads=["a"], writes=["b"], on_failure=Retry(2, backoff=0.01)),
        Step("c", role="w", reads=["b"], writes=["c"], on_failure=Halt()),
        Step(
            "d",
            role="w",
            reads=["c"],
            writes=["d"],
            on_failure=ProceedWithFlag({"d": 0}, FLAG),
            consequence="irreversible",
            unreviewed="a test of the advice",
        ),
        Step(
            "e",
            role="w",
            reads=["d"],
            writes=["e"],
            checkpoint=Checkpoint(["g"], when="after"),
        ),
    ],
    edges=chain("a", "b", "c", "d", "e"),
)
GRAPH = compile_workflow(WORKFLOW)


def fails(step: str, index: int) -> bool:
    """The injected failures: b's first try in every 5th run, c in every 20th (it halts the
    run), d in every 10th (it proceeds with a flag). They never fall in the same run."""
    return (
        (step == "b" and index % 5 == 0)
        or (step == "c" and index % 20 == 2)
        or (step == "d" and index % 10 == 1)
    )


def drive(graph: Graph, index: int, journal: list[tuple[float, JournalEvent]] | None = None) -> Run:
    """One run, each attempt taking 0.5 s; b's retry 0.25 s; e's review 30 s. Its events and
    their times go to `journal` if given."""
    kept: list[tuple[float, JournalEvent]] = [] if journal is None else journal
    now = 1000.0 * index
    started = RunStarted(f"r{index}", graph.name, "1", graph.fingerprint, {})
    kept.append((now, started))
    run, _ = start(graph, started, now)

    def apply(run: Run, event: JournalEvent, now: float) -> None:
        kept.append((now, event))
        fold(run, event, now)

    while run.status == "running":
        if run.decisions:
            (name, waiting), *_ = run.decisions.items()
            now += 30
            made = DecisionMade(run.run_id, name, waiting.attempt, "approve", "pat", waiting.digest)
            apply(run, made, now)
            continue
        name = next(n for n in sorted(run.active) if run.steps[n].status == "queued")
        attempt = run.steps[name].attempt
        apply(run, StepDispatched(run.run_id, name, attempt, "agent"), now)
        now += 0.5 if attempt == 1 else 0.25
        if attempt == 1 and fails(name, index):
            apply(run, StepFailed(run.run_id, name, attempt, "error", "injected", "agent"), now)
            if run.steps[name].status == "retry_wait":
                apply(run, TimerFired(run.run_id, "retry", name, attempt), now)
        else:
            apply(run, StepSucceeded(run.run_id, name, attempt, "agent", {name: 1}), now)
    return run


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    return [drive(GRAPH, i) for i in range(RUNS)]


class TestReport:
    def test_outcomes_and_rates(self, runs: list[Run]) -> None:
        figures = report(GRAPH, runs)
        halted = sum(1 for i in range(RUNS) if fails("c", i))
        assert figures.runs == RUNS
        assert figures.outcomes == {"completed": RUNS - halted, "halted": halted}
        assert figures.completion_rate == pytest.approx((RUNS - halted) / RUNS)
        assert figures.error_rate == pytest.approx(halted / RUNS)
        troubled = sum(1 for i in range(RUNS) if any(fails(s, i) for s in "bcd"))
        assert figures.clean_rate == pytest.approx((RUNS - troubled) / RUNS)

    def test_each_step_first_try_rate_and_the_compounded_chain(self, runs: list[Run]) -> None:
        figures = {s.step: s for s in report(GRAPH, runs).steps}
        reached_d = [i for i in range(RUNS) if not fails("c", i)]
        expected = {
            "a": 1.0,
            "b": 1 - 0.2,
            "c": 1 - 0.05,
            "d": 1 - sum(fails("d", i) for i in reached_d) / len(reached_d),
            "e": 1.0,
        }
        for name, rate in expected.items():
            assert figures[name].first_try_success == pytest.approx(rate), name
        assert report(GRAPH, runs).compounded_first_try == pytest.approx(
            expected["b"] * expected["c"] * expected["d"]
        )
        assert figures["b"].retries == RUNS // 5
        assert figures["b"].failures == {"error": RUNS // 5}
        assert figures["d"].flagged == 20
        assert figures["a"].p50_seconds == pytest.approx(0.5)
        assert figures["b"].p95_seconds == pytest.approx(0.5)
        assert figures["e"].decisions == len(reached_d)
        assert figures["e"].human_wait_p50_seconds == pytest.approx(30)

    def test_failures_cluster_where_they_were_injected(self, runs: list[Run]) -> None:
        clusters = report(GRAPH, runs).clusters
        assert [(c.step, c.runs) for c in clusters] == [("d", 20), ("c", 10)]
        assert clusters[0].share == pytest.approx(20 / 30)

    def test_flags_and_advice(self, runs: list[Run]) -> None:
        figures = report(GRAPH, runs)
        assert figures.open_flags == {FLAG: 20}
        advice = " ".join(figures.advice)
        assert "step 'd' is irreversible and fails 11% of first tries" in advice
        assert "the checkpoint on 'e' approved all 190 decisions unchanged" in advice

    def test_no_runs_no_rates(self) -> None:
        empty = report(GRAPH, [])
        assert (empty.runs, empty.completion_rate, empty.compounded_first_try) == (0, None, None)


class TestRenderedInAPipe:
    """`baton report | cat`: every name and figure whole, even when a name is long."""

    LONG = "reconcile_the_customer_ledger_with_the_bank"

    def figures(self) -> Report:
        def step(name: str, consequence: str) -> StepFigures:
            return StepFigures(
                name, consequence, False, 100, 120, 0.83, 20, {"timeout": 3}, 4, 0.5, 2.5,
                0, 0, None,
            )  # fmt: skip

        return Report(
            "ledger", 100, {"completed": 90, "failed": 10}, 0.9, 0.1, 0.8, 0.83,
            [step("classify", "reversible"), step(self.LONG, "irreversible")], [], {}, [],
        )  # fmt: skip

    def test_a_long_step_name_widens_the_table_instead_of_cutting_figures(self) -> None:
        out = io.StringIO()
        render_report(Console(file=out, width=80, color_system=None), self.figures())
        text = out.getvalue()
        assert "…" not in text
        (row,) = [line for line in text.splitlines() if line.startswith(self.LONG)]
        assert row.split() == [self.LONG, "100", "83.0%", "20", "timeout", "3", "4", "500",
                               "ms", "2.5", "s"]  # fmt: skip

    def test_short_names_still_fit_eighty_columns(self) -> None:
        figures = self.figures()
        figures.steps.pop()
        out = io.StringIO()
        render_report(Console(file=out, width=80, color_system=None), figures)
        assert max(len(line.rstrip()) for line in out.getvalue().splitlines()) <= 80
