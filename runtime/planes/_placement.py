"""Placing steps on agents: a queue per role, a capacity credit per agent, deferral.

A step waits in its role's queue until an agent of the role has room, as its
capacity less what it holds says; an agent that answers `overloaded` puts the
step back at the head of the queue and counts as full until it reports again.
A role that loses instances faster than its restart budget allows fails its
steps at once instead of feeding them to the next instance.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence

import structlog

from protocols import Cancel, Error, StepFailure, StepResult, TaskRef, clip
from runtime.engine._events import Dispatch, StepDeferred, StepDispatched, StepFailed, StepSucceeded
from runtime.planes._agent_host import AgentHost, AgentPlaneCounters, Outlet, action
from runtime.planes._assignments import Assignments
from runtime.planes._restarts import RestartBudget
from runtime.planes._sessions import Registry, Session, TaskKey
from runtime.workflow._definition import Step

log = structlog.get_logger("baton.runtime")


class Placement:
    """The steps waiting for an agent of their role, and the agents holding steps."""

    def __init__(
        self,
        host: AgentHost,
        outlet: Outlet,
        registry: Registry,
        counters: AgentPlaneCounters,
        restarts: RestartBudget,
        *,
        assignments: Assignments,
    ) -> None:
        self._host = host
        self._outlet = outlet
        self._registry = registry
        self._counters = counters
        self._restarts = restarts
        self.queues: defaultdict[str, deque[Dispatch]] = defaultdict(deque)
        self._assignments = assignments

    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def waiting_by_role(self) -> dict[str, int]:
        """Per role, the queued attempts their runs still wait for (a queue may still hold
        attempts withdrawn since, dropped only when they reach its head)."""
        counts = {role: sum(map(self._waiting, queue)) for role, queue in self.queues.items()}
        return {role: count for role, count in counts.items() if count}

    def dispatch(self, command: Dispatch) -> None:
        """Queue a step for its role and place it if an agent has room; with the role
        crash-looping, the attempt fails at once and goes to its failure policy."""
        if self._restarts.looping(command.role, self._host.monotonic()):
            self._fail_unplaced(command)
            return
        self.queues[command.role].append(command)
        self.pump(command.role)

    def _fail_unplaced(self, command: Dispatch) -> None:
        budget = self._restarts
        self._host.apply(
            StepFailed(
                run_id=command.run_id,
                step=command.step,
                attempt=command.attempt,
                kind="agent_lost",
                message=f"role {command.role!r} is crash-looping: it lost more than "
                f"{budget.budget} instances within {budget.window:g}s",
            )
        )

    def _waiting(self, command: Dispatch) -> bool:
        """Whether the run still waits for this attempt to be placed."""
        run = self._host.runs.get(command.run_id)
        state = run.steps.get(command.step) if run is not None else None
        return state is not None and state.attempt == command.attempt and state.status == "queued"

    def pump(self, role: str) -> None:
        """Place the role's queued steps on its agents while one has room."""
        queue = self.queues.get(role)
        pool = self._registry.roles.get(role)
        if not queue or pool is None:
            return
        while queue:
            command = queue[0]
            if not self._waiting(command):
                queue.popleft()
                continue
            session = pool.pick()
            if session is None:
                return
            queue.popleft()
            self._place(session, command)

    def _place(self, session: Session, command: Dispatch) -> None:
        self._counters.steps_dispatched += 1
        frame = self._assignments.frame(command, self._host.runs.get(command.run_id))
        self._outlet.frame_to_session(session, frame)
        self._hold(session, (command.run_id, command.step, command.attempt))

    def _hold(self, session: Session, key: TaskKey) -> None:
        """`session` holds the attempt `key` now, as the journal records."""
        session.in_flight.add(key)
        self._registry.holders[key] = session
        run_id, step, attempt = key
        self._host.apply(
            StepDispatched(run_id=run_id, step=step, attempt=attempt, agent=session.name)
        )

    def withdraw(self, key: TaskKey, reason: str) -> None:
        """Take an attempt the run no longer waits for off its agent, and tell the agent."""
        session = self._registry.holders.pop(key, None)
        if session is None:
            return
        session.in_flight.discard(key)
        run_id, step, attempt = key
        self._outlet.to_session(
            session, Cancel(run_id=run_id, step=step, attempt=attempt, reason=reason)
        )
        self.pump(session.role)

    def report(self, session: Session, message: StepResult | StepFailure) -> None:
        """An agent's outcome of a task it holds is journaled; of any other, refused."""
        if self._release(session, message):
            self._counters.results += 1
            self._host.apply(_outcome_event(session, message))

    def _release(self, session: Session, message: StepResult | StepFailure) -> bool:
        """Take the task off the agent; False (refused, audited) if the agent does not hold it."""
        key = (message.run_id, message.step, message.attempt)
        if key not in session.in_flight:
            ref = f"{key[0]}/{key[1]}/{key[2]}"
            text = "this attempt is not assigned to you (cancelled, timed out or unknown)"
            self._host.reject("stale_result", session.identity, ref, session.principal_name)
            self._outlet.to_session(session, Error(code="stale", message=text, ref=ref))
            self._host.audit(
                message.run_id, session.principal_name or session.name, action(message),
                "stale", f"{text} (agent {session.name})", step=message.step,
                attempt=message.attempt,
            )  # fmt: skip
            return False
        session.in_flight.discard(key)
        self._registry.holders.pop(key, None)
        self.pump(session.role)
        return True

    def overloaded(self, session: Session, message: Error) -> None:
        """An agent had no room for an assignment: back-pressure, not a failure. The
        attempt goes back to the queue, and the agent counts as full until it reports."""
        run_id, _, rest = message.ref.partition("/")
        step, _, attempt = rest.rpartition("/")
        key = (run_id, step, int(attempt)) if attempt.isdigit() else None
        if key is None or key not in session.in_flight:
            log.warning("agent.error", agent=session.name, code=message.code, ref=message.ref)
            return
        session.in_flight.discard(key)
        self._registry.holders.pop(key, None)
        session.fill()
        self._counters.deferred += 1
        log.info("step.deferred", agent=session.name, run_id=run_id, step=step, attempt=key[2])
        self._host.apply(
            StepDeferred(
                run_id=run_id,
                step=step,
                attempt=key[2],
                agent=session.name,
                message=clip(message.message),
            )
        )

    def adopt(self, session: Session, tasks: Sequence[TaskRef]) -> None:
        """Take up the tasks an agent says it is still running: an attempt waiting in the
        queue stays with it instead of being placed again; one no longer wanted is cancelled
        (it takes the agent's room until the agent reports it stopped)."""
        for ref in tasks:
            key = (ref.run_id, ref.step, ref.attempt)
            run = self._host.runs.get(ref.run_id)
            state = run.steps.get(ref.step) if run is not None else None
            node = run.graph.nodes.get(ref.step) if run is not None else None
            if (
                state is not None
                # Only a step of the agent's own role: the claim is the agent's word alone.
                and isinstance(node, Step)
                and node.role == session.role
                and state.attempt == ref.attempt
                and state.status == "queued"
                and key not in self._registry.holders
                and len(session.in_flight) < session.capacity
            ):
                self._counters.adopted += 1
                self._hold(session, key)
                continue
            session.carry(session.carried + 1)
            self._outlet.to_session(
                session,
                Cancel(
                    run_id=ref.run_id,
                    step=ref.step,
                    attempt=ref.attempt,
                    reason="the runtime no longer waits for this attempt",
                ),
            )

    def agent_lost(self, session: Session, reason: str, *, died: bool) -> None:
        """The agent's tasks have unknown outcomes; a death counts against its role."""
        for run_id, step, attempt in sorted(session.in_flight):
            self._host.apply(
                StepFailed(
                    run_id=run_id,
                    step=step,
                    attempt=attempt,
                    kind="agent_lost",
                    message=clip(f"agent {session.name} was lost ({reason})"),
                    agent=session.name,
                )
            )
        session.in_flight.clear()
        if died:
            self._count_death(session.role)

    def _count_death(self, role: str) -> None:
        if not self._restarts.lost(role, self._host.monotonic()):
            return
        self._counters.crash_loops += 1
        waiting = list(self.queues.pop(role, ()))
        log.error(
            "role.crash_looping",
            role=role,
            lost=self._restarts.budget + 1,
            window=self._restarts.window,
            waiting_steps=len(waiting),
        )
        for command in waiting:
            if self._waiting(command):
                self._fail_unplaced(command)


def _outcome_event(
    session: Session, message: StepResult | StepFailure
) -> StepSucceeded | StepFailed:
    """The journaled event for what an agent reported about its task."""
    if isinstance(message, StepResult):
        return StepSucceeded(
            run_id=message.run_id,
            step=message.step,
            attempt=message.attempt,
            agent=session.name,
            outputs=message.outputs,
            rationale=message.rationale,
            confidence=message.confidence,
            caveats=message.caveats,
            principal=session.principal_name,
        )
    return StepFailed(
        run_id=message.run_id,
        step=message.step,
        attempt=message.attempt,
        kind=message.reason,
        message=message.message,
        agent=session.name,
        principal=session.principal_name,
    )
