"""The gate of a plane: every frame's sender, authenticated and within its rate, or dropped.

In secure mode the sender is the principal whose key CURVE authenticated on
that connection, read from the frame's `User-Id` property: never the routing
id (the peer picks it) nor a name in the payload. Frames without a known
`User-Id` are dropped before decoding, since ZAP fails open. Each principal
then has a rate limit, checked before decoding too, so that a flood costs
the runtime little more than reading it.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq

from runtime._authenticator import PrincipalBook
from runtime._principals import Principal
from runtime._rate import RateLimiter

Handler = Callable[[bytes, Principal | None, bytes | memoryview, int], None]
"""Takes (routing id, principal or None when insecure, first payload part, number of parts)."""

Refuse = Callable[[str, bytes, str, str], None]
"""Counts and logs a dropped frame: (reason, routing id, detail, principal name)."""

Limited = Callable[[bytes, str, int], None]
"""Logs a rate limit and tells the peer, at most once a second: (routing id, principal name,
frames dropped since the last time)."""


class Gate:
    """Reads one ROUTER socket's frames for a plane's handler."""

    __slots__ = ("_book", "_count", "_limited", "_limiter", "_refuse", "plane")

    def __init__(
        self,
        plane: str,
        book: PrincipalBook | None,
        limiter: RateLimiter,
        refuse: Refuse,
        count: Callable[[str], None],
        limited: Limited,
    ) -> None:
        self.plane = plane
        self._book = book
        self._limiter = limiter
        self._refuse = refuse
        self._count = count
        """Counts a dropped frame by reason, without logging it."""
        self._limited = limited

    @property
    def secure(self) -> bool:
        return self._book is not None

    def drain(self, sock: zmq.Socket[bytes], handler: Handler, limit: int) -> None:
        """Hand up to `limit` waiting frames to `handler`, dropping what may not pass."""
        if self._book is None:
            self._drain_open(sock, handler, limit)
        else:
            self._drain_secure(sock, self._book, handler, limit)

    def _drain_open(self, sock: zmq.Socket[bytes], handler: Handler, limit: int) -> None:
        allow = self._limiter.allow
        for _ in range(limit):
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = frames[0]
            key = identity.hex()
            if not allow(key):
                self._over_limit(identity, key)
                continue
            payload = frames[1] if len(frames) > 1 else b""
            handler(identity, None, payload, len(frames) - 1)

    def _drain_secure(
        self, sock: zmq.Socket[bytes], book: PrincipalBook, handler: Handler, limit: int
    ) -> None:
        allow = self._limiter.allow
        for _ in range(limit):
            try:
                identity = sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            first: zmq.Frame | None = None
            parts = 0
            while sock.rcvmore:
                frame = sock.recv(flags=zmq.NOBLOCK, copy=False)
                parts += 1
                if first is None:
                    first = frame
            if first is None:
                self._refuse("malformed", identity, "no payload", "")
                continue
            try:
                user_id = first.get("User-Id")
            except zmq.ZMQError:
                # No CURVE identity on the connection: ZAP let it through unchecked.
                self._refuse("unauthenticated", identity, f"{self.plane}: no User-Id", "")
                continue
            principal = book.by_user_id(str(user_id))
            if principal is None:
                self._refuse("unknown_key", identity, f"{self.plane}: key {user_id}", "")
                continue
            if not allow(principal.name):
                self._over_limit(identity, principal.name)
                continue
            handler(identity, principal, first.buffer, parts)

    def _over_limit(self, identity: bytes, key: str) -> None:
        self._count("rate_limited")
        dropped = self._limiter.report_due(key)
        if dropped:
            self._limited(identity, key, dropped)
