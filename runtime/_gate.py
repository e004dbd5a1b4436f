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

Refuse = Callable[[str, bytes, str, str], bool]
"""Counts and logs a dropped frame: (reason, routing id, detail, principal name)."""

Limited = Callable[[bytes, str, int], None]
"""Logs a rate limit and tells the peer, at most once a second: (routing id, principal name,
frames dropped since the last time)."""


DROP_WEIGHT = 4
"""How many handled frames a dropped one counts as, towards a turn's limit."""


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
        """Hand up to `limit` waiting frames to `handler`, dropping what may not pass.

        Drops count against the limit at `DROP_WEIGHT` times a frame's share, so that
        under a flood a turn ends soon after the frames that matter, and what they
        caused is sent without waiting behind hundreds of dropped ones.
        """
        if self._book is None:
            self._drain_open(sock, handler, limit)
        else:
            self._drain_secure(sock, self._book, handler, limit)

    def _drain_open(self, sock: zmq.Socket[bytes], handler: Handler, limit: int) -> None:
        allow = self._limiter.allow
        budget = limit
        while budget > 0:
            budget -= 1
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = frames[0]
            # Without principals, each connection is limited on its own.
            if not allow(identity):
                budget -= DROP_WEIGHT
                self._over_limit(identity, identity, "")
                continue
            payload = frames[1] if len(frames) > 1 else b""
            handler(identity, None, payload, len(frames) - 1)

    def _drain_secure(
        self, sock: zmq.Socket[bytes], book: PrincipalBook, handler: Handler, limit: int
    ) -> None:
        allow = self._limiter.allow
        budget = limit
        while budget > 0:
            budget -= 1
            try:
                # Frames, not bytes: only a frame carries the connection's User-Id.
                frames = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 2:
                self._refuse("malformed", frames[0].bytes, "no payload", "")
                continue
            first = frames[1]
            try:
                user_id = first.get("User-Id")
            except zmq.ZMQError:
                # No CURVE identity on the connection: ZAP let it through unchecked.
                self._refuse("unauthenticated", frames[0].bytes, f"{self.plane}: no User-Id", "")
                continue
            principal = book.by_user_id(str(user_id))
            if principal is None:
                identity = frames[0].bytes
                self._refuse("unknown_key", identity, f"{self.plane}: key {user_id}", "")
                continue
            if not allow(principal.name):
                budget -= DROP_WEIGHT
                self._over_limit(frames[0].bytes, principal.name, principal.name)
                continue
            handler(frames[0].bytes, principal, first.buffer, len(frames) - 1)

    def _over_limit(self, identity: bytes, key: str | bytes, principal: str) -> None:
        self._count("rate_limited")
        dropped = self._limiter.report_due(key)
        if dropped:
            self._limited(identity, principal, dropped)
