"""Views of a run for operators: the full record and a one-line summary."""

from __future__ import annotations

from collections.abc import Container

from protocols import AttemptView, PendingDecision, RunRecord, RunStatus, RunSummary, StepView
from runtime.engine._run import Run
from runtime.store._held import HeldRun

_NO_ROLES: frozenset[str] = frozenset()


def display_status(run: Run, connected: Container[str] = _NO_ROLES) -> tuple[RunStatus, str]:
    """The status to show and what a waiting run waits for.

    A running run is `running` while a step is in an agent's hands, or queued for a
    role of which an agent is `connected` (busy for now, or about to take it). With
    nothing but steps waiting for an agent of a role none of whose agents is connected,
    for a retry timer or for a decision, it is `waiting`, and says for what.
    """
    if run.status != "running" or not run.active:
        return run.status, ""
    waits: list[str] = []
    for name in sorted(run.active):
        state = run.steps[name]
        if state.status == "running":
            return "running", ""
        if state.status == "queued":
            role = run.graph.step(name).role
            if role in connected:
                return "running", ""
            waits.append(f"an agent of role {role!r} for step {name!r}")
        elif state.status == "retry_wait":
            waits.append(f"the retry timer of step {name!r}")
        elif state.status == "awaiting_decision":
            groups = ", ".join(f"approver:{g}" for g in run.decisions[name].approvers)
            waits.append(f"a decision on step {name!r} by {groups}")
    return "waiting", "; ".join(waits)


def record_view(run: Run | HeldRun, connected: Container[str] = _NO_ROLES) -> RunRecord:
    """The whole record of a run as it travels to clients, with the roles of which an
    agent is `connected` now."""
    if isinstance(run, HeldRun):
        return run.record()
    status, waiting_for = display_status(run, connected)
    flags = {k: list(p.flags) for k, p in run.provenance.items() if p.flags}
    caveats = {k: list(p.caveats) for k, p in run.provenance.items() if p.caveats}
    steps = {
        name: StepView(
            status=state.status,
            visits=state.visits,
            attempts=[
                AttemptView(
                    attempt=a.number,
                    agent=a.agent,
                    started_at=a.started_at,
                    ended_at=a.ended_at,
                    outcome=a.outcome,
                    failure=a.failure,
                    message=a.message,
                )
                for a in state.attempts
            ],
        )
        for name, state in run.steps.items()
    }
    return RunRecord(
        run_id=run.run_id,
        workflow=run.workflow,
        version=run.graph.workflow.version,
        fingerprint=run.graph.fingerprint,
        status=status,
        created_at=run.created_at,
        updated_at=run.updated_at,
        inputs=run.inputs,
        data=run.data,
        provenance=dict(run.provenance),
        flags=flags,
        caveats=caveats,
        steps=steps,
        history=list(run.history),
        reason=run.reason,
        waiting_for=waiting_for,
        seq=run.seq,
        pending=pending_decisions(run),
        forked_from=run.forked_from,
        forked_at=run.forked_at,
    )


def pending_decisions(run: Run) -> list[PendingDecision]:
    """The decisions the run waits for, in the order they were opened."""
    found = [
        PendingDecision(
            run_id=run.run_id,
            workflow=run.workflow,
            step=name,
            attempt=waiting.attempt,
            kind=waiting.kind,
            when=waiting.when,
            approvers=list(waiting.approvers),
            reason=waiting.reason,
            reviewed=waiting.reviewed,
            choices=list(waiting.choices),
            started_by=run.started_by,
            separate_duties=waiting.separate_duties,
            opened_at=waiting.opened_at,
            deadline=waiting.deadline,
            digest=waiting.digest,
        )
        for name, waiting in run.decisions.items()
    ]
    return sorted(found, key=lambda p: p.opened_at)


def summary(run: Run | HeldRun, connected: Container[str] = _NO_ROLES) -> RunSummary:
    """One line about a run, with the roles of which an agent is `connected` now."""
    if isinstance(run, HeldRun):
        return run.summary()
    status, waiting_for = display_status(run, connected)
    return RunSummary(
        run_id=run.run_id,
        workflow=run.workflow,
        status=status,
        created_at=run.created_at,
        updated_at=run.updated_at,
        reason=run.reason or waiting_for,
    )
