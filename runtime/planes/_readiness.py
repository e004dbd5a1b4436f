"""Noticing that a ZeroMQ socket has messages, without a task per socket or poll.

A ZeroMQ socket's file descriptor is edge-triggered and only says "look at
EVENTS": so EVENTS is checked before each sleep, and the descriptors are
watched through the event loop's reader callbacks. This costs far less
per wake-up than a `zmq.asyncio.Poller`, which builds futures on every poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import zmq

# Plain ints: pyzmq's flag enums cost an enum operation on every use, and this runs each turn.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


class Readiness:
    """Run `on_ready` when any of the sockets may have a message; let a task wait for `wake()`.

    `on_ready` runs in the event loop's reader callback and calls `wake()` for
    whatever it leaves to the waiting task; `wait` also returns on a timeout.
    """

    def __init__(self, sockets: Sequence[zmq.Socket[bytes]], on_ready: Callable[[], None]) -> None:
        self._sockets = list(sockets)
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._fds: list[int] = [int(s.getsockopt(zmq.FD)) for s in self._sockets]
        for fd in self._fds:
            self._loop.add_reader(fd, on_ready)

    def pending(self) -> bool:
        """Whether a socket has a message now (this also re-arms the edge trigger)."""
        return any(int(sock.getsockopt(_EVENTS)) & _POLLIN for sock in self._sockets)

    def wake(self) -> None:
        """Make the current or next `wait` return at once."""
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Return when a socket may have a message, on `wake()`, or after `seconds`."""
        if self.pending() or seconds <= 0:
            return
        # A plain loop timer instead of a cancel scope: this runs once per batch.
        timer = self._loop.call_later(seconds, self._event.set)
        try:
            await self._event.wait()
        finally:
            timer.cancel()
            self._event.clear()

    def close(self) -> None:
        for fd in self._fds:
            self._loop.remove_reader(fd)
