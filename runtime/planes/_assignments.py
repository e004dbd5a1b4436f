"""What an assignment tells its agent besides its inputs: the step's declared outputs and
their types, the specs of the tools it may call, and the model calls of the attempt that
are journaled already. The first two are what a model behind the agent is told; the
last spares it paying for those calls again when the attempt is sent once more.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import structlog

from protocols import ActorMessage, Assign, Codec, ModelReply, OutputType, ToolSpec
from runtime.engine._events import Dispatch
from runtime.engine._run import Run
from runtime.planes._sessions import Registry

log = structlog.get_logger("baton.runtime")


class Assignments:
    """Makes the `Assign` of a dispatched attempt, and encodes it within the frame limit."""

    __slots__ = ("_codec", "_registry", "_specs", "_specs_seen", "_trace")

    def __init__(
        self, registry: Registry, codec: Codec[ActorMessage], trace: Callable[..., str]
    ) -> None:
        self._registry = registry
        self._codec = codec
        self._trace = trace
        self._specs: dict[tuple[str, ...], list[ToolSpec]] = {}
        """The specs of a step's tools, by the step's tools: made once per set of tools, and
        made again once a tool host registered specs since."""
        self._specs_seen = 0

    def tool_specs(self, tools: tuple[str, ...]) -> list[ToolSpec]:
        """The specs of `tools` that their hosts registered, in the step's order."""
        registry = self._registry
        if registry.specs_changed != self._specs_seen:
            self._specs.clear()
            self._specs_seen = registry.specs_changed
        found = self._specs.get(tools)
        if found is None:
            specs = registry.specs
            found = self._specs[tools] = [specs[t] for t in tools if t in specs]
        return found

    def frame(self, command: Dispatch, run: Run | None) -> bytes:
        """The encoded `Assign` of `command`, with what the run holds for its attempt.

        Should the journaled model replies not fit in one frame beside the rest, the
        later ones are left out (the agent pays for those again): an assignment the
        agent cannot decode would help nobody.
        """
        replies: list[ModelReply] = []
        outputs: dict[str, OutputType] = {}
        if run is not None:
            state = run.steps.get(command.step)
            if state is not None and state.attempt == command.attempt:
                replies = state.replies
            outputs = run.graph.outputs.get(command.step, {})
        assign = Assign(
            run_id=command.run_id,
            step=command.step,
            attempt=command.attempt,
            inputs=command.inputs,
            tools=list(command.tools),
            timeout_ms=int(command.timeout * 1000),
            flags=command.flags,
            trace=self._trace(command.run_id, command.step, command.attempt),
            outputs=outputs,
            tool_specs=self.tool_specs(command.tools),
            model_replies=replies,
        )
        payload = self._codec.encode(assign)
        limit = self._codec.max_frame
        if len(payload) <= limit or not replies:
            return payload
        kept = len(replies)
        while kept and len(payload) > limit:
            kept //= 2
            payload = self._codec.encode(
                msgspec.structs.replace(assign, model_replies=replies[:kept])
            )
        log.warning(
            "step.replies_left_out",
            run_id=command.run_id,
            step=command.step,
            attempt=command.attempt,
            kept=kept,
            left_out=len(replies) - kept,
        )
        return payload
