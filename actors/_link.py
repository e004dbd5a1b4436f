"""One connection to the runtime's agent plane, and the backoff between connections."""

from __future__ import annotations

import random

import zmq
import zmq.asyncio

SEND_HWM = 16_384
"""Frames a link queues before a send would block.

What an actor sends is bounded by design: at most one result per admitted task
(capacity is at most 4,096), one call per waiting tool call, and heartbeats
that stop once the runtime is declared lost. This is room for all of them.
"""


class Link:
    """A DEALER connected to the runtime: awaitable readiness, non-blocking I/O.

    Frames move through a plain shadow of the socket, without one future per
    frame; the asyncio socket is only used to wait. ZeroMQ's notification
    descriptor is edge-triggered and any send may consume an edge, so whoever
    sends while the loop waits must call `recheck()` afterwards, once per
    batch, or a frame that arrived meanwhile would never wake the loop.
    """

    __slots__ = ("_poller", "_raw", "_socket")

    def __init__(self, context: zmq.asyncio.Context, endpoint: str) -> None:
        self._socket = context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, SEND_HWM)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError:
            self._socket.close(linger=0)
            raise
        self._raw: zmq.Socket[bytes] = zmq.Socket.shadow(self._socket.underlying)
        self._poller = zmq.asyncio.Poller()
        self._poller.register(self._socket, zmq.POLLIN)

    async def wait_readable(self) -> None:
        """Return once a frame is waiting to be received."""
        while not await self._poller.poll():
            pass

    def receive_nowait(self) -> tuple[bytes, int] | None:
        """The next frame and how many more parts came with it, or None if nothing waits."""
        try:
            frame = self._raw.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        extra = 0
        while self._raw.rcvmore:
            self._raw.recv(zmq.NOBLOCK)
            extra += 1
        return frame, extra

    def send_nowait(self, frame: bytes) -> bool:
        """Queue `frame` for sending; False if the queue is full."""
        try:
            self._raw.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def recheck(self) -> None:
        """Wake the waiting loop if a frame arrived while others were being sent."""
        # Reading EVENTS through the asyncio socket makes it re-arm its waiters.
        self._socket.get(zmq.EVENTS)

    def close(self, *, linger_ms: int = 0) -> None:
        if not self._socket.closed:
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
