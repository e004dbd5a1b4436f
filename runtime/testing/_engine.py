"""A run driven through the pure engine by hand, event by event, at chosen times."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from protocols import DecisionKind, FailureKind, HistoryEntry
from runtime.engine import (
    Command,
    DecisionMade,
    JournalEvent,
    Run,
    RunStarted,
    StepDispatched,
    StepFailed,
    StepSucceeded,
    TimerFired,
    apply,
    start,
)
from runtime.store import JournalRecord, replay
from runtime.workflow import Catalog, Graph

C = TypeVar("C")
Purpose = Literal["timeout", "retry", "decision"]

SAMPLES: Mapping[Any, Any] = {int: 1, float: 1.0, bool: True, str: "text"}
"""A value of each type a step may declare for a key it writes; an untyped key (or one of
another type) gets a string naming its writer."""


def of_kind(kind: type[C], commands: Iterable[Command]) -> list[C]:
    """The commands of one kind, in order."""
    return [command for command in commands if isinstance(command, kind)]


def sample_outputs(graph: Graph, step: str) -> dict[str, Any]:
    """A value for each key the step writes: of its declared type (int, float, bool, str),
    else `"<step>.<key>"`, which suits an untyped key."""
    writes = graph.step(step).writes
    return {key: SAMPLES.get(kind, f"{step}.{key}") for key, kind in writes.items()}


class EngineDriver:
    """A run of `graph` folded by `engine.start` and `engine.apply`, as the supervisor would.

    Each event is journaled and folded at a time: the one given, else `tick` seconds
    after the last. The driver keeps the journal (`journal`, as a store would hold
    it), the commands of each event (`outputs`, the last in `last`), and offers the
    events of agents and people by name: `dispatch`, `succeed`, `fail`, `fire`,
    `decide`. It carries out no command: what a `Dispatch` or a `StartTimer` means
    is the test's to play.
    """

    def __init__(
        self,
        graph: Graph,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str = "run-1",
        started_by: str = "",
        at: float = 0.0,
        tick: float = 1.0,
        agent: str = "agent",
        principal: str = "approver",
    ) -> None:
        """`agent` is who takes and reports steps, and `principal` who decides, unless a
        call names another."""
        self.graph = graph
        self.run_id = run_id
        self.now = at
        self.tick = tick
        self.agent = agent
        self.principal = principal
        started = RunStarted(
            run_id, graph.name, graph.workflow.version, graph.fingerprint, dict(inputs or {}),
            started_by,
        )  # fmt: skip
        self.run, self.last = start(graph, started, at)
        self.journal: list[JournalRecord] = [JournalRecord(run_id, 1, at, started)]
        self.outputs: list[list[Command]] = [self.last]

    @property
    def events(self) -> list[JournalEvent]:
        """Every event journaled, the start first."""
        return [record.event for record in self.journal]

    @property
    def commands(self) -> list[Command]:
        """Every command issued, in order."""
        return [command for out in self.outputs for command in out]

    def of(self, kind: type[C]) -> list[C]:
        """Every command of one kind issued so far, in order."""
        return of_kind(kind, self.commands)

    def history(self, event: str) -> list[HistoryEntry]:
        """The run's history entries of one event."""
        return [entry for entry in self.run.history if entry.event == event]

    def feed(self, event: JournalEvent, *, at: float | None = None) -> list[Command]:
        """Journal `event` at `at` (default: a tick after the last event), fold it into the
        run, and return the commands it caused."""
        self.now = self.now + self.tick if at is None else at
        self.journal.append(JournalRecord(self.run_id, len(self.journal) + 1, self.now, event))
        self.last = apply(self.run, event, self.now)
        self.outputs.append(self.last)
        return self.last

    def replayed(self, records: Sequence[JournalRecord] | None = None) -> Run:
        """The run folded again from the journal (or from `records`), as recovery would."""
        return replay(Catalog([self.graph]), self.journal if records is None else records)

    def dispatch(
        self, step: str, *, attempt: int | None = None, agent: str | None = None,
        at: float | None = None,
    ) -> list[Command]:  # fmt: skip
        """An agent takes the step's current attempt (or `attempt`)."""
        number = self._attempt(step, attempt)
        return self.feed(StepDispatched(self.run_id, step, number, agent or self.agent), at=at)

    def succeed(
        self,
        step: str,
        outputs: Mapping[str, Any] | None = None,
        *,
        attempt: int | None = None,
        agent: str | None = None,
        confidence: float = 1.0,
        caveats: Sequence[str] = (),
        at: float | None = None,
    ) -> list[Command]:
        """The agent returns `outputs` (by default `sample_outputs`) for the step's current
        attempt, taking it first if it is queued; the commands of the result."""
        number = self._take(step, attempt, agent)
        values = sample_outputs(self.graph, step) if outputs is None else dict(outputs)
        event = StepSucceeded(
            self.run_id, step, number, agent or self.agent, values, confidence=confidence,
            caveats=list(caveats),
        )  # fmt: skip
        return self.feed(event, at=at)

    def fail(
        self,
        step: str,
        kind: FailureKind = "error",
        message: str = "boom",
        *,
        attempt: int | None = None,
        agent: str | None = None,
        at: float | None = None,
    ) -> list[Command]:
        """The agent reports a failure of the step's current attempt, taking it first if it is
        queued; the commands of the failure."""
        number = self._take(step, attempt, agent)
        event = StepFailed(self.run_id, step, number, kind, message, agent or self.agent)
        return self.feed(event, at=at)

    def fire(
        self, purpose: Purpose, step: str, *, attempt: int | None = None, at: float | None = None
    ) -> list[Command]:
        """The step's timer of `purpose` ("timeout", "retry", "decision") fires, for the
        attempt of its open decision or else its current one (or for `attempt`)."""
        waiting = self.run.decisions.get(step) if purpose == "decision" else None
        number = waiting.attempt if waiting is not None and attempt is None else attempt
        number = self._attempt(step, number)
        return self.feed(TimerFired(self.run_id, purpose, step, number), at=at)

    def decide(
        self,
        step: str,
        decision: DecisionKind,
        values: Mapping[str, Any] | None = None,
        *,
        principal: str | None = None,
        comment: str = "",
        at: float | None = None,
    ) -> list[Command]:
        """A person decides the step's open decision, on the digest they were shown."""
        waiting = self.run.decisions[step]
        event = DecisionMade(
            self.run_id, step, waiting.attempt, decision, principal or self.principal,
            waiting.digest, comment, dict(values or {}),
        )  # fmt: skip
        return self.feed(event, at=at)

    def _attempt(self, step: str, attempt: int | None) -> int:
        return self.run.steps[step].attempt if attempt is None else attempt

    def _take(self, step: str, attempt: int | None, agent: str | None) -> int:
        number = self._attempt(step, attempt)
        state = self.run.steps[step]
        if state.status == "queued" and state.attempt == number:
            self.dispatch(step, attempt=number, agent=agent)
        return number
