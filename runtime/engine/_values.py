"""Values written into a run's data, each with its provenance: the inputs it started with,
a step's outputs, values a person gave at a decision, and the defaults a failure policy
writes.

Each write takes one new version of the record, which its history entry shares,
and carries the flags of every key the step read: a flag travels until a person
clears it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from protocols import Provenance, clip
from runtime.engine._events import DecisionMade, RunForked, StepSucceeded
from runtime.engine._fold import Fold
from runtime.engine._run import Run

INPUT = "input"
"""What a value the run started with names in place of a step; its attempt is 0, which no
step's attempt is."""
FORK = "fork"
"""What a value given when the run was forked names in place of a step; its attempt is 0."""


def write_inputs(f: Fold) -> None:
    """The run's inputs, each with where it came from: the run's start, and who started it.

    They share the version of the record the start took.
    """
    run = f.run
    who = run.started_by
    rationale = f"given by {who} when the run started" if who else "given when the run started"
    for key in run.inputs:
        run.provenance[key] = Provenance(
            step=INPUT, attempt=0, rationale=rationale, seq=run.seq, edited_by=who
        )


def inherited_flags(run: Run, keys: Iterable[str]) -> list[str]:
    """Every flag on the values of `keys`, sorted."""
    found: set[str] = set()
    for key in keys:
        prov = run.provenance.get(key)
        if prov is not None:
            found.update(prov.flags)
    return sorted(found)


def write_outputs(
    f: Fold,
    name: str,
    event: StepSucceeded,
    outputs: Mapping[str, Any],
    *,
    approved_by: str = "",
    edited_by: str = "",
    edited: frozenset[str] = frozenset(),
) -> None:
    """Write a step's outputs with their provenance, and record the success."""
    run = f.run
    step = run.graph.step(name)
    inherited = inherited_flags(run, step.reads)
    run.seq += 1
    for key, value in outputs.items():
        run.data[key] = value
        run.provenance[key] = Provenance(
            step=name,
            attempt=event.attempt,
            agent=event.agent,
            rationale=event.rationale,
            confidence=event.confidence,
            caveats=list(event.caveats),
            flags=inherited,
            seq=run.seq,
            approved_by=approved_by,
            edited_by=edited_by if key in edited else "",
        )
    if approved_by:
        f.record(
            "outputs_applied", step=name, attempt=event.attempt, principal=approved_by,
            message=f"approved by {approved_by}",
            detail={"keys": sorted(outputs), "edited": sorted(edited)}, seq_taken=True,
        )  # fmt: skip
        return
    f.record(
        "step_succeeded",
        step=name,
        attempt=event.attempt,
        agent=event.agent,
        principal=event.principal,
        message=event.rationale,
        detail={"keys": sorted(outputs), "confidence": event.confidence},
        seq_taken=True,
    )


def write_given(
    f: Fold, name: str, attempt: int, event: DecisionMade, keys: frozenset[str]
) -> None:
    """Values a person gave at a decision: written with their name as provenance."""
    if not event.values:
        return
    run = f.run
    inherited = inherited_flags(run, run.graph.step(name).reads)
    run.seq += 1
    for key in sorted(keys & event.values.keys()):
        run.data[key] = event.values[key]
        run.provenance[key] = Provenance(
            step=name,
            attempt=attempt,
            rationale=clip(event.comment or f"given by {event.principal}"),
            flags=inherited,
            seq=run.seq,
            edited_by=event.principal,
        )
    f.record(
        "values_given", step=name, attempt=attempt, principal=event.principal,
        message=f"{', '.join(sorted(keys & event.values.keys()))} given by {event.principal}",
        seq_taken=True,
    )  # fmt: skip


def write_forked(f: Fold, event: RunForked) -> None:
    """A fork's beginning, with the values given for it written over the data, each with the
    name of who gave it; they share the version of the record its history entry takes.

    A value given this way has no flags: a person wrote it, which clears what travelled.
    """
    run = f.run
    run.seq += 1
    who = event.principal
    given = f"given by {who}" if who else "given"
    rationale = clip(event.reason or f"{given} when run {event.parent} was forked")
    for key in sorted(event.values):
        run.data[key] = event.values[key]
        run.provenance[key] = Provenance(
            step=FORK, attempt=0, rationale=rationale, seq=run.seq, edited_by=who
        )
    by = f" by {who}" if who else ""
    message = f"forked from run {event.parent} at version {event.at}{by}"
    if event.values:
        message += f"; {', '.join(sorted(event.values))} {given}"
    if event.reason:
        message += f": {event.reason}"
    f.record(
        "run_forked", principal=who, message=message,
        detail={"parent": event.parent, "at": event.at, "edited": sorted(event.values)},
        seq_taken=True,
    )  # fmt: skip


def write_defaults(
    f: Fold, name: str, attempt: int, defaults: Mapping[str, object], flag: str
) -> None:
    """A failed step's outputs from its policy's defaults, flagged, and the flag recorded."""
    run = f.run
    step = run.graph.step(name)
    flags = sorted({flag, *inherited_flags(run, step.reads)})
    run.seq += 1
    for key in step.writes:
        run.data[key] = defaults[key]
        run.provenance[key] = Provenance(
            step=name,
            attempt=attempt,
            rationale="default written by the failure policy",
            confidence=0.0,
            flags=flags,
            seq=run.seq,
        )
    f.record(
        "step_flagged", step=name, attempt=attempt, message=flag,
        detail={"keys": sorted(step.writes)}, seq_taken=True,
    )  # fmt: skip
