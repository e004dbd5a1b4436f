"""The writing side of a worker: results, tool calls and model calls out to the runtime.

What the pool produces leaves at once when it is the only thing to send, or
in one burst per turn of the event loop otherwise. While no connection is
live it waits in the outbox; a tool call also waits there for its reply.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping

from msgspec import structs

from actors._errors import ToolFailed
from actors._link import Link
from actors._outbox import Outbox
from actors._statistics import Counters
from actors._task import Task
from protocols import Arguments, Codec, ModelCall, RuntimeMessage, ToolCall, ToolReply, ToolSpec


class Sender:
    """Sends on the live link, or keeps what it cannot send until one is live.

    It is the `ToolCaller` of every task's `Tools`, the `ModelReporter` of its `Models`,
    and the `send` of the pool.
    """

    __slots__ = (
        "_answered",
        "_call_ids",
        "_codec",
        "_counters",
        "_draining",
        "_flush_scheduled",
        "_in_flight",
        "live",
        "outbox",
        "specs",
    )

    def __init__(
        self, codec: Codec[RuntimeMessage], counters: Counters, in_flight: Callable[[], int]
    ) -> None:
        self._codec = codec
        self._counters = counters
        self._in_flight = in_flight
        """How many jobs the pool holds: with one, its result need not wait for others."""
        self.outbox = Outbox()
        self.live: Link | None = None
        """The link of the connection the runtime welcomed us on, while it lasts."""
        self.specs: dict[str, ToolSpec] = {}
        """The specs of the tools our role may call, as the runtime's welcome gave them."""
        self._call_ids = itertools.count(1)
        self._flush_scheduled = False
        self._draining = False
        """Frames are being handled; steps they start may answer before the next is read."""
        self._answered = False
        """A result already left during this drain: the ones after it wait for its end."""

    def draining(self, now: bool) -> None:
        """Frames are (True) or no longer (False) being handled from the link."""
        self._draining = now
        self._answered = False

    # -- the ToolCaller protocol, used by each task's `Tools` ---------------------------

    async def call_tool(self, task: Task, tool: str, args: Arguments, key: str) -> ToolReply:
        call_id = next(self._call_ids)
        call = ToolCall(
            call_id=call_id,
            run_id=task.run_id,
            step=task.step,
            attempt=task.attempt,
            tool=tool,
            args=args,
            idempotency_key=key,
        )
        frame = self._codec.encode(call)
        if len(frame) > self._codec.max_frame:
            text = f"the call is {len(frame)} bytes; the limit is {self._codec.max_frame}"
            raise ToolFailed(tool, "invalid_input", text)
        pending = self.outbox.add_call(call_id, frame)
        self._counters.tool_calls += 1
        if not self._send_now(frame):
            self.outbox.put_call(call_id)
        self._schedule_flush()
        try:
            await pending.done.wait()
        finally:
            self.outbox.drop_call(call_id)
        assert pending.reply is not None
        return pending.reply

    def tool_specs(self) -> Mapping[str, ToolSpec]:
        return self.specs

    # -- the ModelReporter protocol, used by each task's `Models` -----------------------

    def report_model_call(self, call: ModelCall) -> None:
        """Send `call` after what waits before it, on this connection or the next one.

        It goes the way of a tool call, never straight past the outbox: it must reach the
        runtime before the task's result, which may follow it at once.
        """
        frame = self._codec.encode(call)
        if len(frame) > self._codec.max_frame:
            # The call is journaled all the same, only its reply cannot be replayed.
            frame = self._codec.encode(structs.replace(call, reply=None))
        if not self._send_now(frame):
            self.outbox.put(frame)
        self._schedule_flush()

    # -- what the pool produces -------------------------------------------------------

    def enqueue(self, frame: bytes) -> None:
        if self._in_flight() <= 1 and not self._answered and self._send_now(frame):
            # The only task: no burst to wait for, so the result leaves at once.
            if self._draining:
                # The drain reads on after this and its caller flushes what waits.
                self._answered = True
                return
            live = self.live
            if live is not None:
                live.recheck()
            return
        # Otherwise results go out in one burst per turn of the event loop: a send to
        # an idle ZeroMQ I/O thread costs a wake-up, and the sends after it do not.
        self.outbox.put(frame)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Flush the outbox and re-arm the reader once this turn's sends are done.

        The flush runs before the event loop next sleeps, so a frame whose
        arrival a send hid from the reader is still seen without delay.
        """
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        self._flush_scheduled = False
        live = self.live
        if live is not None:
            self.outbox.flush(live)
            live.recheck()

    def _send_now(self, frame: bytes) -> bool:
        """Send `frame` at once if a connection is live and nothing is queued before it."""
        live = self.live
        return live is not None and not self.outbox and live.send_nowait(frame)
