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

Handler = Callable[[bytes, Principal | None, bytes | memoryview, int, zmq.Frame | None], None]
"""Takes (routing id, principal or None when insecure, first payload part, number of parts,
and the frame of that part, which knows the connection it came in on)."""

Refuse = Callable[[str, bytes, str, str], bool]
"""Counts and logs a dropped frame: (reason, routing id, detail, principal name)."""

Limited = Callable[[bytes, str, int], None]
"""Logs a rate limit and tells the peer, at most once a second: (routing id, principal name,
frames dropped since the last time)."""


DROP_WEIGHT = 4
"""How many handled frames a dropped one counts as, towards a turn's limit."""

# Plain ints: pyzmq's flag enums cost an enum operation on every use, on every frame.
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


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
        # Asking first is cheaper than a receive that fails, and most turns find a
        # plane idle; it also re-arms the socket's edge-triggered descriptor.
        if not int(sock.getsockopt(_EVENTS)) & _POLLIN:
            return
        if self._book is None:
            self._drain_open(sock, handler, limit)
        else:
            self._drain_secure(sock, self._book, handler, limit)

    def _drain_open(self, sock: zmq.Socket[bytes], handler: Handler, limit: int) -> None:
        allow = self._limiter.allow
        budget = limit
        while budget > 0:
            budget -= 1
            message = _receive(sock)
            if message is None:
                return
            head, first, parts = message
            identity = head.bytes
            # Without principals, each connection is limited on its own.
            if not allow(identity):
                budget -= DROP_WEIGHT
                self._over_limit(identity, identity, "")
                continue
            handler(identity, None, b"" if first is None else first.buffer, parts, first)

    def _drain_secure(
        self, sock: zmq.Socket[bytes], book: PrincipalBook, handler: Handler, limit: int
    ) -> None:
        allow = self._limiter.allow
        budget = limit
        while budget > 0:
            budget -= 1
            message = _receive(sock)
            if message is None:
                return
            head, first, parts = message
            if first is None:
                self._refuse("malformed", head.bytes, "no payload", "")
                continue
            try:
                user_id = first.get("User-Id")
            except zmq.ZMQError:
                # No CURVE identity on the connection: ZAP let it through unchecked.
                self._refuse("unauthenticated", head.bytes, f"{self.plane}: no User-Id", "")
                continue
            principal = book.by_user_id(str(user_id))
            if principal is None:
                identity = head.bytes
                self._refuse("unknown_key", identity, f"{self.plane}: key {user_id}", "")
                continue
            if not allow(principal.name):
                budget -= DROP_WEIGHT
                self._over_limit(head.bytes, principal.name, principal.name)
                continue
            handler(head.bytes, principal, first.buffer, parts, first)

    def _over_limit(self, identity: bytes, key: str | bytes, principal: str) -> None:
        self._count("rate_limited")
        dropped = self._limiter.report_due(key)
        if dropped:
            self._limited(identity, principal, dropped)


def _receive(sock: zmq.Socket[bytes]) -> tuple[zmq.Frame, zmq.Frame | None, int] | None:
    """The next message's routing id, first payload part (None if it has none) and number
    of payload parts; None if nothing waits.

    Frames, not bytes: only a frame carries the connection's User-Id, and each knows
    whether more parts follow, which spares `recv_multipart`'s option reads per part.
    """
    try:
        head = sock.recv(_NOBLOCK, copy=False)
    except zmq.Again:
        return None
    if not head.more:
        return head, None, 0
    # The rest of a message arrives with its first part, so these receives cannot fail.
    first = sock.recv(_NOBLOCK, copy=False)
    parts = 1
    more = first.more
    while more:
        more = sock.recv(_NOBLOCK, copy=False).more
        parts += 1
    return head, first, parts
