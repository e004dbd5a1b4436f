"""What the runs of a workflow say about it: outcomes, each step's record, where it breaks.

Computed from run records alone (the fold of their journals), so it is the
same whether the runs are read from a live runtime or from a journal file;
model calls and their tokens come from the `model_called` entries of the
histories. The chain figure is the point: steps that each look healthy
compound into a workflow that often is not, and the report puts the product
of the steps' first-try success rates beside what the runs actually did.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from protocols import MAX_ITEMS, TERMINAL_STATUSES, Cluster, Report, StepFigures
from runtime.engine._run import Run
from runtime.workflow._graph import Graph

REVIEW_PAYS_ABOVE = 0.05
"""A costly or irreversible step failing more often than this on its first try is worth a
checkpoint."""


def report(graph: Graph, runs: Iterable[Run]) -> Report:
    """The report of `graph` over `runs` (those of other workflows are left out)."""
    chosen = [run for run in runs if run.workflow == graph.name]
    outcomes: Counter[str] = Counter(_status(run) for run in chosen)
    ended = [run for run in chosen if run.status in TERMINAL_STATUSES]
    completed = sum(1 for run in ended if run.status == "completed")
    broken = sum(1 for run in ended if run.status in ("failed", "halted"))
    clean = sum(1 for run in ended if run.status == "completed" and _clean(run))
    models = [_model_calls(run) for run in chosen]
    steps = [_step_figures(graph, name, chosen, models) for name in _steps(graph)]
    tried = [s.first_try_success for s in steps if s.first_try_success is not None]
    flags: Counter[str] = Counter()
    for run in chosen:
        open_flags = {f for prov in run.provenance.values() for f in prov.flags}
        flags.update(open_flags)
    calling = [
        sum(sent + received for _, sent, received in by_step.values())
        for by_step in models
        if by_step
    ]
    return Report(
        workflow=graph.name,
        runs=len(chosen),
        outcomes=dict(sorted(outcomes.items())),
        completion_rate=_ratio(completed, len(ended)),
        error_rate=_ratio(broken, len(ended)),
        clean_rate=_ratio(clean, len(ended)),
        compounded_first_try=math.prod(tried) if tried else None,
        steps=steps,
        clusters=_clusters(chosen),
        open_flags=dict(flags.most_common(MAX_ITEMS)),
        advice=_advice(steps),
        tokens_in=sum(s.tokens_in for s in steps),
        tokens_out=sum(s.tokens_out for s in steps),
        tokens_per_run=sum(calling) / len(calling) if calling else None,
    )


def _status(run: Run) -> str:
    if run.status != "running":
        return run.status
    busy = any(run.steps[name].status == "running" for name in run.active)
    return "running" if busy else "waiting"


def _steps(graph: Graph) -> list[str]:
    return [name for name in graph.nodes if name in graph.policies]


def _clean(run: Run) -> bool:
    """Every attempt of every step succeeded: no retry, no flag, no fallback."""
    return all(
        a.outcome == "succeeded" for state in run.steps.values() for a in state.attempts
    ) and not any(state.status in ("flagged", "replaced") for state in run.steps.values())


def _model_calls(run: Run) -> dict[str, tuple[int, int, int]]:
    """By step, the run's model calls and their tokens in and out, as its history records
    them; read once per run, since a long history is costly to walk again per step."""
    found: dict[str, tuple[int, int, int]] = {}
    for entry in run.history:
        if entry.event != "model_called":
            continue
        # Read as Any: inferring `get` over the deep `Value` union takes mypy minutes.
        detail: dict[str, Any] = dict(entry.detail)
        calls, tokens_in, tokens_out = found.get(entry.step, (0, 0, 0))
        found[entry.step] = (
            calls + 1,
            tokens_in + int(detail.get("tokens_in", 0)),
            tokens_out + int(detail.get("tokens_out", 0)),
        )
    return found


def _step_figures(
    graph: Graph,
    name: str,
    runs: Sequence[Run],
    models: Sequence[Mapping[str, tuple[int, int, int]]],
) -> StepFigures:
    """The figures of step `name` over `runs`; `models` are each run's model calls by step."""
    step = graph.step(name)
    visits = attempts = first_ok = flagged = decisions = caught = 0
    model_calls = tokens_in = tokens_out = 0
    failures: Counter[str] = Counter()
    durations: list[float] = []
    waits: list[float] = []
    for run, by_step in zip(runs, models, strict=True):
        state = run.steps.get(name)
        if state is None:
            # A run of an earlier version of the workflow, which had no such step.
            continue
        attempts += len(state.attempts)
        failures.update(a.failure for a in state.attempts if a.failure is not None)
        durations.extend(
            a.ended_at - a.started_at
            for a in state.attempts
            if a.ended_at is not None and a.agent and a.outcome != "cancelled"
        )
        flagged += state.status == "flagged"
        tries = _visits(run, name)
        visits += len(tries)
        first_ok += sum(1 for first in tries if first)
        calls, sent, received = by_step.get(name, (0, 0, 0))
        model_calls += calls
        tokens_in += sent
        tokens_out += received
        made, edited, waited = _decisions(run, name)
        decisions += made
        caught += edited
        waits.extend(waited)
    return StepFigures(
        step=name,
        consequence=step.consequence,
        checkpoint=name in graph.checkpoints,
        visits=visits,
        attempts=attempts,
        first_try_success=_ratio(first_ok, visits),
        retries=max(0, attempts - visits),
        failures=dict(sorted(failures.items())),
        flagged=flagged,
        p50_seconds=_quantile(durations, 0.50),
        p95_seconds=_quantile(durations, 0.95),
        decisions=decisions,
        rejected_or_edited=caught,
        human_wait_p50_seconds=_quantile(waits, 0.50),
        model_calls=model_calls,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
    )


def _visits(run: Run, name: str) -> list[bool]:
    """For each visit of the step that got an outcome: whether its first attempt succeeded.

    An attempt is a retry when the one before it was retried, by its policy or by a
    person deciding an escalation; otherwise it began a visit.
    """
    retried = {
        entry.attempt
        for entry in run.history
        if entry.step == name
        and (
            entry.event == "retry_scheduled"
            or (entry.event == "decision_made" and entry.detail.get("decision") == "retry")
        )
    }
    return [
        attempt.outcome == "succeeded"
        for attempt in run.steps[name].attempts
        if attempt.number - 1 not in retried and attempt.outcome in ("succeeded", "failed")
    ]


def _decisions(run: Run, name: str) -> tuple[int, int, list[float]]:
    made = caught = 0
    waits: list[float] = []
    opened: float | None = None
    for entry in run.history:
        if entry.step != name:
            continue
        if entry.event in ("checkpoint_opened", "escalated"):
            opened = entry.at
        elif entry.event == "decision_made":
            made += 1
            decision = entry.detail.get("decision")
            edited = entry.detail.get("edited")
            if decision in ("reject", "abort") or (decision == "approve" and edited):
                caught += 1
            if opened is not None:
                waits.append(entry.at - opened)
                opened = None
    return made, caught, waits


def _clusters(runs: Sequence[Run]) -> list[Cluster]:
    """Steps ranked by the share of bad runs they account for: the step that failed a run,
    and each step that flagged one."""
    bad = 0
    counts: defaultdict[str, int] = defaultdict(int)
    for run in runs:
        culprits = {
            name
            for name, state in run.steps.items()
            if (state.status == "failed" and run.status in ("failed", "halted"))
            or state.status == "flagged"
        }
        if culprits:
            bad += 1
            for name in culprits:
                counts[name] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Cluster(step=name, runs=n, share=n / bad) for name, n in ranked]


def _advice(steps: Sequence[StepFigures]) -> list[str]:
    advice: list[str] = []
    for figures in steps:
        failing = figures.first_try_success
        if (
            figures.consequence != "reversible"
            and not figures.checkpoint
            and failing is not None
            and 1 - failing > REVIEW_PAYS_ABOVE
        ):
            advice.append(
                f"step {figures.step!r} is {figures.consequence} and fails "
                f"{1 - failing:.0%} of first tries, with no checkpoint: review would pay"
            )
        if figures.checkpoint and figures.decisions and not figures.rejected_or_edited:
            decided = (
                "its one decision"
                if figures.decisions == 1
                else f"all {figures.decisions} decisions"
            )
            advice.append(
                f"the checkpoint on {figures.step!r} approved {decided} unchanged: "
                "it has caught nothing yet"
            )
    return advice


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
