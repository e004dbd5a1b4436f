"""What an actor owes the runtime: frames not yet sent, and tool calls not yet answered."""

from __future__ import annotations

from collections import deque

import anyio

from actors._link import Link
from protocols import ToolReply


class PendingCall:
    """A tool call awaiting its reply."""

    __slots__ = ("done", "frame", "reply")

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.reply: ToolReply | None = None
        self.done = anyio.Event()


class Outbox:
    """Frames waiting for a connection, in order, and the calls awaiting replies.

    Holds at most one result per admitted task, one frame per waiting tool call
    and the reports of the model calls of admitted tasks (which bound their own
    calls), so it is bounded by the actor's capacity. A call whose connection was
    lost is sent again on the next one with the same idempotency key, so the
    tool host can tell a repeat from a new call.
    """

    __slots__ = ("_calls", "_frames", "_unsent")

    def __init__(self) -> None:
        self._frames: deque[bytes] = deque()
        self._calls: dict[int, PendingCall] = {}
        self._unsent: deque[int] = deque()

    def __bool__(self) -> bool:
        return bool(self._frames or self._unsent)

    def put(self, frame: bytes) -> None:
        self._frames.append(frame)

    def add_call(self, call_id: int, frame: bytes) -> PendingCall:
        """Await a reply to the call `call_id`, whose frame is `frame`."""
        pending = PendingCall(frame)
        self._calls[call_id] = pending
        return pending

    def put_call(self, call_id: int) -> None:
        """Queue the frame of the call `call_id` for sending."""
        self._unsent.append(call_id)

    def drop_call(self, call_id: int) -> None:
        self._calls.pop(call_id, None)

    def resolve(self, reply: ToolReply) -> bool:
        """Hand `reply` to the call awaiting it; False if none is."""
        pending = self._calls.get(reply.call_id)
        if pending is None or pending.reply is not None:
            return False
        pending.reply = reply
        pending.done.set()
        return True

    def resend_calls(self) -> None:
        """Queue every unanswered call again, for a new connection."""
        self._unsent = deque(self._calls)

    def flush(self, link: Link) -> int:
        """Send what `link` will take without blocking; the number of frames sent."""
        sent = 0
        while self._frames:
            if not link.send_nowait(self._frames[0]):
                return sent
            self._frames.popleft()
            sent += 1
        while self._unsent:
            pending = self._calls.get(self._unsent[0])
            if pending is not None and pending.reply is None:
                if not link.send_nowait(pending.frame):
                    return sent
                sent += 1
            self._unsent.popleft()
        return sent
