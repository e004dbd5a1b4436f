"""What the parts of the agent plane share: the supervisor they talk to, the counters
they keep, and the one way they send to actors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from protocols import ActorMessage, Codec, Message, ModelCall, StepFailure, StepResult, ToolCall
from runtime.engine._events import JournalEvent
from runtime.engine._run import Run
from runtime.planes._refusals import RefusalHost
from runtime.planes._sessions import Session


class AgentHost(RefusalHost, Protocol):
    """What the agent plane needs of the supervisor."""

    @property
    def runs(self) -> Mapping[str, Run]: ...

    def apply(self, event: JournalEvent) -> None:
        """Journal `event` and fold it into its run."""

    def monotonic(self) -> float: ...

    def queue_agent_frame(
        self, identity: bytes, payload: bytes, session: Session | None = None
    ) -> None:
        """Send after the batch's commit; with `session`, only if it is still live then."""


@dataclass(slots=True)
class AgentPlaneCounters:
    steps_dispatched: int = 0
    results: int = 0
    tool_calls: int = 0
    tool_calls_refused: int = 0
    model_calls: int = 0
    """Model calls reported by agents for tasks they hold, and journaled."""
    model_calls_refused: int = 0
    """Model calls refused: for a task the agent does not hold, or beyond what is kept."""
    deferred: int = 0
    """Steps and tool calls put back in their queue because the actor had no room."""
    adopted: int = 0
    """Tasks taken up from an agent that registered again while running them."""
    crash_loops: int = 0
    """Times a role went over its restart budget."""


class Outlet:
    """Encodes with the plane's codec and queues in the supervisor's outbox, which sends
    after the batch's commit."""

    __slots__ = ("_codec", "_host", "trace")

    def __init__(
        self, host: AgentHost, codec: Codec[ActorMessage], trace: Callable[..., str]
    ) -> None:
        self._host = host
        self._codec = codec
        self.trace = trace
        """Gives the traceparent an assignment or forwarded tool call carries, when the
        runtime traces (`runtime.observe._trace_ids.traceparent`), else ""."""

    def to_session(self, session: Session, message: Message) -> None:
        """Send to `session` only: dropped if the session ends before the frame leaves, so
        that nothing meant for it reaches another key's connection on its routing id."""
        self._host.queue_agent_frame(session.identity, self._codec.encode(message), session)

    def frame_to_session(self, session: Session, payload: bytes) -> None:
        """Send a frame encoded already to `session` only, as `to_session` does."""
        self._host.queue_agent_frame(session.identity, payload, session)

    def to_identity(self, identity: bytes, message: Message) -> None:
        """Answer whichever connection holds `identity` now: refusals of its frames."""
        self._host.queue_agent_frame(identity, self._codec.encode(message))


def action(message: StepResult | StepFailure | ToolCall | ModelCall) -> str:
    """The name a refused message's action goes by in a run's history."""
    if isinstance(message, StepResult):
        return "step_result"
    if isinstance(message, StepFailure):
        return "step_failure"
    if isinstance(message, ModelCall):
        return "model_call"
    return "tool_call"
