"""Model calls agents report: journaled when made for a task the agent holds, within what
is kept for one attempt; refused otherwise, as a stale result is.

The call is journaled with the batch it arrived in, so its reply is durable before any
assignment that carries it leaves; the agent waits for no answer to a call accepted.
"""

from __future__ import annotations

from protocols import Error, ErrorCode, ModelCall
from runtime.engine._events import ModelCalled
from runtime.engine._models import MAX_MODEL_CALLS
from runtime.planes._agent_host import AgentHost, AgentPlaneCounters, Outlet
from runtime.planes._sessions import Session


class ModelCalls:
    """Judges each model call an agent reports, and journals those it accepts."""

    __slots__ = ("_counters", "_host", "_outlet")

    def __init__(self, host: AgentHost, outlet: Outlet, counters: AgentPlaneCounters) -> None:
        self._host = host
        self._outlet = outlet
        self._counters = counters

    def report(self, session: Session, message: ModelCall) -> None:
        """Journal the call, or refuse it: counted, answered, and audited in its run."""
        key = (message.run_id, message.step, message.attempt)
        if key not in session.in_flight:
            self._refuse(
                session, message, "stale_model_call", "stale",
                "this attempt is not assigned to you (cancelled, timed out or unknown)",
            )  # fmt: skip
            return
        run = self._host.runs.get(message.run_id)
        state = run.steps.get(message.step) if run is not None else None
        if state is not None and len(state.replies) >= MAX_MODEL_CALLS:
            self._refuse(
                session, message, "model_calls_exhausted", "invalid_input",
                f"an attempt keeps at most {MAX_MODEL_CALLS} model calls",
            )  # fmt: skip
            return
        if state is not None and any(r.index == message.index for r in state.replies):
            self._refuse(
                session, message, "duplicate_model_call", "invalid_input",
                f"model call {message.index} of this attempt is journaled already",
            )  # fmt: skip
            return
        self._counters.model_calls += 1
        self._host.apply(ModelCalled.of(message, session.name, session.principal_name))

    def _refuse(
        self, session: Session, message: ModelCall, reason: str, code: ErrorCode, text: str
    ) -> None:
        ref = f"{message.run_id}/{message.step}/{message.attempt}"
        self._counters.model_calls_refused += 1
        self._host.reject(reason, session.identity, ref, session.principal_name)
        self._outlet.to_session(session, Error(code=code, message=text, ref=ref))
        self._host.audit(
            message.run_id, session.principal_name or session.name, "model_call", code,
            f"{text} (agent {session.name}, call {message.index})", step=message.step,
            attempt=message.attempt,
        )  # fmt: skip
