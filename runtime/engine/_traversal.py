"""Walking the graph: a step reached is dispatched (after its checkpoint, if one holds), a
finished node fires its edges, a join waits until every incoming edge fired or was ruled
out, a decision takes the first route that holds, a fallback stands in for its step, and
the run ends when nothing is left to do or something stops it.
"""

from __future__ import annotations

from typing import Literal

from protocols import clip
from runtime.engine._events import CancelTask, Dispatch, RunEnded
from runtime.engine._fold import Fold
from runtime.engine._run import Attempt, Run, StepState
from runtime.engine._waiting import open_checkpoint, withdraw
from runtime.workflow._definition import Decision

MAX_ASSIGNED_FLAGS = 256
"""Flags and caveats an `Assign` may carry per input key (the protocol's bound)."""


def activate(f: Fold, name: str) -> None:
    """The node is reached: a decision decides, a step gets a new attempt or its checkpoint."""
    run = f.run
    node = run.graph.nodes[name]
    state = run.steps[name]
    if state.status in {"queued", "running"}:
        # Reached again while an attempt is out: that attempt's outcome is no longer wanted.
        f.out.append(CancelTask(run.run_id, name, state.attempt, "step reached again"))
        state.attempts[-1].outcome = "cancelled"
        state.attempts[-1].ended_at = f.now
    if name in run.decisions:
        withdraw(f, name)
    state.visits += 1
    if isinstance(node, Decision):
        _decide(f, node, state)
        return
    state.tries = 0
    state.replies = []
    run.active.add(name)
    checkpoint = run.graph.checkpoints.get(name)
    if (
        checkpoint is not None
        and checkpoint.when == "before"
        and checkpoint.condition.holds(run.data)
    ):
        open_checkpoint(f, name, state, checkpoint, state.attempt + 1)
        return
    new_attempt(f, name, state)


def new_attempt(f: Fold, name: str, state: StepState) -> None:
    """Queue a new attempt of the step, spending one try of its visit.

    The model replies kept for the last attempt go with it only if that attempt's agent
    was lost: its outcome was never judged, while any other failure may be their fault.
    """
    if state.attempts and state.attempts[-1].failure != "agent_lost":
        state.replies = []
    state.attempt += 1
    state.tries += 1
    state.status = "queued"
    state.attempts.append(Attempt(state.attempt, f.now))
    f.out.append(dispatch(f.run, name, state))


def dispatch(run: Run, name: str, state: StepState) -> Dispatch:
    """The command that places the step's current attempt on an agent of its role."""
    step = run.graph.step(name)
    inputs = {k: run.data[k] for k in step.reads if k in run.data}
    flags: dict[str, list[str]] = {}
    for k in step.reads:
        prov = run.provenance.get(k)
        if prov is not None and (prov.flags or prov.caveats):
            flags[k] = _at_most(MAX_ASSIGNED_FLAGS, [*prov.flags, *prov.caveats])
    return Dispatch(
        run.run_id, name, state.attempt, step.role, inputs, flags, step.tools, step.timeout
    )


def finish_node(f: Fold, name: str, state: StepState) -> None:
    """The node is done: its successors (or those of the step it stands for) get their edge."""
    run = f.run
    run.active.discard(name)
    origin = state.stands_for
    if origin is not None:
        state.stands_for = None
        run.steps[origin].status = "replaced"
        name = origin
    for target in run.graph.successors[name]:
        _edge(f, name, target, fired=True)


def fall_back(f: Fold, name: str, state: StepState, target: str) -> None:
    """`target` runs in place of step `name`, standing in for its outputs."""
    run = f.run
    run.active.discard(name)
    state.status = "replaced"
    f.record("fallback", step=name, message=f"{target} stands in")
    fallback = run.steps[target]
    fallback.stands_for = state.stands_for or name
    state.stands_for = None
    activate(f, target)


def halt(
    f: Fold,
    status: Literal["halted", "failed", "cancelled"],
    reason: str,
    *,
    principal: str = "",
) -> None:
    """End the run with `status`: every attempt still out is withdrawn, every wait dropped."""
    run = f.run
    run.decisions.clear()
    for other in sorted(run.active):
        state = run.steps[other]
        if state.status in {"running", "queued"}:
            f.out.append(CancelTask(run.run_id, other, state.attempt, "run stopped"))
            state.attempts[-1].outcome = "cancelled"
            state.attempts[-1].ended_at = f.now
        state.status = "cancelled"
    run.active.clear()
    run.status = status
    run.reason = clip(reason)
    f.record(f"run_{run.status}", principal=principal, message=run.reason)
    f.out.append(RunEnded(run.run_id, run.status, run.reason))


def settle(f: Fold) -> None:
    """A running run with nothing left in flight has completed."""
    run = f.run
    if run.status == "running" and not run.active:
        run.status = "completed"
        f.record("run_completed")
        f.out.append(RunEnded(run.run_id, "completed"))


def _edge(f: Fold, source: str, target: str, *, fired: bool) -> None:
    """An incoming edge of `target` fired or was ruled out; once all have, it runs if any
    fired, else it is skipped."""
    run = f.run
    tally = run.steps[target].tally
    tally[source] = fired
    waits_for = run.graph.joins[target]
    if len(tally) < len(waits_for) or not waits_for.issubset(tally):
        return
    # map() rather than a generator: this runs for every edge, and a generator costs a frame.
    go = any(map(tally.__getitem__, waits_for))
    for pred in run.graph.in_loop[target]:
        tally.pop(pred, None)
    if go:
        activate(f, target)
    else:
        _skip(f, target)


def _skip(f: Fold, name: str) -> None:
    """The node is ruled out: its successors learn that this edge will not fire."""
    run = f.run
    run.steps[name].status = "skipped"
    node = run.graph.nodes[name]
    targets = node.targets() if isinstance(node, Decision) else run.graph.successors[name]
    for target in targets:
        if (name, target) not in run.graph.back_routes:
            _edge(f, name, target, fired=False)


def _decide(f: Fold, node: Decision, state: StepState) -> None:
    run = f.run
    chosen: tuple[str, ...] | None = None
    label = ""
    for index, (route, name) in enumerate(run.graph.routes[node.name]):
        if route.limit is not None and run.route_counts.get((node.name, index), 0) >= route.limit:
            continue
        if route.when.holds(run.data):
            run.route_counts[(node.name, index)] = run.route_counts.get((node.name, index), 0) + 1
            chosen = route.to
            label = name
            break
    if chosen is None:
        state.status = "failed"
        halt(f, "failed", f"decision {node.name!r}: no route matched")
        return
    state.status = "completed"
    f.record(
        "decision_taken", step=node.name, message=f"{label} -> {', '.join(chosen)}",
        detail={"to": list(chosen)},
    )  # fmt: skip
    back = [t for t in chosen if (node.name, t) in run.graph.back_routes]
    for target in back:
        for pred in run.graph.in_loop[target]:
            run.steps[target].tally.pop(pred, None)
        activate(f, target)
    if back:
        return
    for target in node.targets():
        if (node.name, target) not in run.graph.back_routes:
            _edge(f, node.name, target, fired=target in chosen)


def _at_most(limit: int, notes: list[str]) -> list[str]:
    """The first of `notes`, with the last place saying how many more there were."""
    if len(notes) <= limit:
        return notes
    return [*notes[: limit - 1], f"… and {len(notes) - limit + 1} more"]
