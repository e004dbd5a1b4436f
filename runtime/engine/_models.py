"""Model calls: an agent reports each answered call it made for an attempt. Its figures
(model, tokens, latency, finish reason) go in the run's history, and its reply is kept
for the attempt, so that the attempt sent again (the runtime restarted, the agent had no
room) carries it and the agent does not pay for the call twice.

The replies belong to one attempt: a new attempt starts with none, since what the last
one was told may be why it failed, except after an attempt whose agent was lost, whose
outcome nobody judged; a new visit of the step always starts with none.
"""

from __future__ import annotations

from protocols import ModelReply
from runtime.engine._events import ModelCalled
from runtime.engine._fold import Fold, current
from runtime.engine._run import StepState

MAX_MODEL_CALLS = 256
"""Model calls whose replies are kept for one attempt; the agent plane refuses more."""


def on_model_called(f: Fold, event: ModelCalled) -> None:
    """Record the call, and keep its reply for the attempt while it runs."""
    run = f.run
    state = current(run, event.step, event.attempt, "running")
    if state is None or state.attempts[-1].agent != event.agent:
        f.record_stale(event.step, event.attempt, "model_called", event.agent)
        return
    finish = f", finish {event.finish_reason}" if event.finish_reason else ""
    f.record(
        "model_called", step=event.step, attempt=event.attempt, agent=event.agent,
        principal=event.principal,
        message=f"model {event.model}: {event.tokens_in:,} in, {event.tokens_out:,} out, "
        f"{event.latency_ms:,.0f} ms{finish}",
        detail={
            "model": event.model,
            "tokens_in": event.tokens_in,
            "tokens_out": event.tokens_out,
            "latency_ms": event.latency_ms,
            "finish_reason": event.finish_reason,
            "index": event.index,
        },
    )  # fmt: skip
    if keeps(state, event.index):
        state.replies.append(
            ModelReply(index=event.index, request_digest=event.request_digest, reply=event.reply)
        )


def keeps(state: StepState, index: int) -> bool:
    """Whether a reply at `index` would be kept for the step's current attempt: there is
    room, and no reply of that index is kept already."""
    replies = state.replies
    return len(replies) < MAX_MODEL_CALLS and all(r.index != index for r in replies)
