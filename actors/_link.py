"""One connection to the runtime's agent plane, and the backoff between connections."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import zmq

from actors._handshake import WATCHED_EVENTS, HandshakeFailure, HandshakeWatch
from protocols import ClientKeys

# Plain ints: pyzmq's flag enums cost an enum operation on every use, on every frame.
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_RCVMORE = int(zmq.RCVMORE)

SEND_HWM = 16_384
"""Frames a link queues before a send would block.

What an actor sends is bounded by design: at most one result per admitted task
(capacity is at most 4,096), one call per waiting tool call, and heartbeats
that stop once the runtime is declared lost. This is room for all of them.
"""


class Link:
    """A DEALER connected to the runtime: awaitable readiness, non-blocking I/O.

    ZeroMQ's notification descriptor is edge-triggered and only says "look at
    EVENTS"; any send may consume an edge. So the reader checks EVENTS before
    each sleep and sleeps on the descriptor through the event loop's reader
    callback, and whoever sends while the reader sleeps calls `recheck()`
    afterwards, once per batch, so that a frame that arrived meanwhile wakes it.
    """

    __slots__ = (
        "_fd",
        "_handshakes",
        "_loop",
        "_monitor",
        "_monitor_fd",
        "_on_ready",
        "_ready",
        "_socket",
        "endpoint",
        "failure",
    )

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        keys: ClientKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.failure: HandshakeFailure | None = None
        """Set when the runtime will not complete a handshake with us, for good."""
        self._handshakes = HandshakeWatch(curve=keys is not None)
        self._socket: zmq.Socket[bytes] = context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, SEND_HWM)
        if "[" in endpoint or "::" in endpoint:
            self._socket.setsockopt(zmq.IPV6, 1)
        if keys is not None:
            self._socket.curve_secretkey = keys.secret
            self._socket.curve_publickey = keys.public
            self._socket.curve_serverkey = keys.server
        self._monitor = self._socket.get_monitor_socket(WATCHED_EVENTS)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError:
            self._close_sockets(0)
            raise
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._on_ready: Callable[[], None] | None = None
        self._fd = int(self._socket.getsockopt(zmq.FD))
        self._loop.add_reader(self._fd, self._ready.set)
        self._monitor_fd = int(self._monitor.getsockopt(zmq.FD))
        self._loop.add_reader(self._monitor_fd, self._read_monitor)
        # Reading until empty arms the descriptor: ZeroMQ signals new events only
        # to a reader that has once found nothing left to read.
        self._read_monitor()

    def _read_monitor(self) -> None:
        """Note how handshakes went; wake the reader when one failed for good."""
        while True:
            try:
                parts = self._monitor.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            failure = self._handshakes.observe(parts)
            if failure is None:
                continue
            if self.failure is None:
                self.failure = failure
            self._ready.set()

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Run `callback` in the event loop's reader callback when frames may be waiting,
        instead of waking `wait_readable`; the callback calls `wake()` when it must."""
        self._on_ready = callback
        self._loop.remove_reader(self._fd)
        self._loop.add_reader(self._fd, callback)

    def time(self) -> float:
        """The event loop's clock, which `anyio.current_time()` reads too, without its lookups."""
        return self._loop.time()

    def wake(self) -> None:
        """Make the current or next `wait_readable` return."""
        self._ready.set()

    def failed(self) -> HandshakeFailure | None:
        """The handshake failure that ends this link, if any (reading pending monitor events)."""
        self._read_monitor()
        return self.failure

    def _readable(self) -> bool:
        return bool(int(self._socket.getsockopt(_EVENTS)) & _POLLIN)

    async def wait_readable(self, deadline: float) -> None:
        """Return once a frame is waiting to be received, or at `deadline` (loop time)."""
        if self._readable():
            return
        # A plain loop timer instead of a cancel scope: this runs once per burst.
        timer = self._loop.call_at(deadline, self._ready.set)
        try:
            await self._ready.wait()
        finally:
            timer.cancel()
            self._ready.clear()

    def receive_nowait(self) -> tuple[bytes, int] | None:
        """The next frame and how many more parts came with it, or None if nothing waits.

        None leaves the descriptor armed, as a `recheck()` would: EVENTS was read
        last, so the next frame to arrive signals it.
        """
        # Asking first is cheaper than the exception a receive raises when nothing waits.
        if not self._readable():
            return None
        try:
            frame = self._socket.recv(_NOBLOCK)
        except zmq.Again:
            return None
        extra = 0
        while self._socket.getsockopt(_RCVMORE):
            self._socket.recv(_NOBLOCK)
            extra += 1
        return frame, extra

    def send_nowait(self, frame: bytes) -> bool:
        """Queue `frame` for sending; False if the queue is full."""
        try:
            self._socket.send(frame, _NOBLOCK)
        except zmq.Again:
            return False
        return True

    def recheck(self) -> None:
        """Wake the waiting reader if a frame arrived while others were being sent.

        With an `on_ready` callback, that callback runs soon instead: frames are
        handled where they always are, outside any task.
        """
        if self._readable():
            if self._on_ready is None:
                self._ready.set()
            else:
                self._loop.call_soon(self._ready_soon)

    def _ready_soon(self) -> None:
        # The link may have closed since the call was scheduled.
        if self._on_ready is not None and not self._socket.closed:
            self._on_ready()

    def close(self, *, linger_ms: int = 0) -> None:
        if not self._socket.closed:
            self._loop.remove_reader(self._fd)
            self._loop.remove_reader(self._monitor_fd)
            self._close_sockets(linger_ms)

    def _close_sockets(self, linger_ms: int) -> None:
        self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._socket.close(linger=linger_ms)


class Backoff:
    """Exponential backoff: 0.1 s doubling to a 5 s cap, each delay drawn in [d/2, d].

    The jitter keeps a fleet of actors that lost the same runtime from
    reconnecting in lockstep.
    """

    __slots__ = ("_cap", "_failures", "_first", "_rng")

    def __init__(self, rng: random.Random, *, first: float = 0.1, cap: float = 5.0) -> None:
        self._rng = rng
        self._first = first
        self._cap = cap
        self._failures = 0

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the one after."""
        delay = min(self._cap, self._first * 2 ** min(self._failures, 32))
        self._failures += 1
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._failures = 0
