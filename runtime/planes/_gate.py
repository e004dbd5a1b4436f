"""The gate of a plane: every frame's sender, authenticated and within its rate, or dropped.

In secure mode the sender is the principal whose key CURVE authenticated on
that connection, read from the frame's `User-Id` property: never the routing
id (the peer picks it) nor a name in the payload. Frames without a known
`User-Id` are dropped before decoding, since ZAP fails open. Each principal
then has a rate limit, checked before decoding too, so that a flood costs
the runtime little more than reading it.

A message's parts each cost a token, since each costs a read. ZeroMQ bounds
the size of each part (`MAXMSGSIZE`) but not how many a message has, and
hands none of them over before it holds them all; so the gate reads a long
message over several turns, and trims the heap after it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import zmq

from runtime.planes._rate import RateLimiter
from runtime.security._authenticator import PrincipalBook
from runtime.security._principals import Principal

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

PARTS_PER_TURN = 4_096
"""Most parts after a message's first that one turn reads (each costs about a microsecond):
a message of a million parts is read over many turns, between which the other plane is
served, instead of in one stretch that holds up everything."""

TRIM_AFTER = 65_536
"""Parts in a message after which the heap is trimmed: ZeroMQ holds every part of a message
until the last arrives (about 130 bytes each), and glibc keeps what they took once freed."""

# Plain ints: pyzmq's flag enums cost an enum operation on every use, on every frame.
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


class Gate:
    """Reads one ROUTER socket's frames for a plane's handler."""

    __slots__ = ("_book", "_count", "_limited", "_limiter", "_partial", "_refuse", "plane")

    def __init__(
        self,
        plane: str,
        book: PrincipalBook | None,
        limiter: RateLimiter,
        *,
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
        self._partial: _Partial | None = None
        """A message whose parts a turn left unread, to be read on by the next."""

    @property
    def secure(self) -> bool:
        return self._book is not None

    @property
    def reading(self) -> bool:
        """Whether a turn left a message partly read, for the next turn to read on."""
        return self._partial is not None

    def drain(self, sock: zmq.Socket[bytes], handler: Handler, limit: int) -> None:
        """Hand up to `limit` waiting frames to `handler`, dropping what may not pass.

        Drops count against the limit at `DROP_WEIGHT` times a frame's share, so that
        under a flood a turn ends soon after the frames that matter, and what they
        caused is sent without waiting behind hundreds of dropped ones. Only a
        message's first part is handed on; the others are counted and dropped, at
        most `PARTS_PER_TURN` of them a turn.
        """
        # Asking first is cheaper than a receive that fails, and most turns find a
        # plane idle; it also re-arms the socket's edge-triggered descriptor.
        if not int(sock.getsockopt(_EVENTS)) & _POLLIN:
            return
        admit = self._admit_open if self._book is None else self._admit_secure
        budget = limit
        spare = PARTS_PER_TURN
        while budget > 0:
            partial = self._partial
            if partial is None:
                try:
                    head = sock.recv(_NOBLOCK, copy=False)
                except zmq.Again:
                    return
                if not head.more:
                    budget -= admit(head, None, 0, handler)
                    continue
                # The rest of a message arrives with its first part, so these receives
                # cannot fail.
                first = sock.recv(_NOBLOCK, copy=False)
                if not first.more:
                    budget -= admit(head, first, 1, handler)
                    continue
                partial = _Partial(head, first)
            spare -= partial.skip(sock, spare)
            if partial.more:
                self._partial = partial
                return
            self._partial = None
            if partial.parts > TRIM_AFTER:
                release_memory()
            budget -= admit(partial.head, partial.first, partial.parts, handler)

    def _admit_open(
        self, head: zmq.Frame, first: zmq.Frame | None, parts: int, handler: Handler
    ) -> int:
        """Hand on a message of an insecure plane if within its connection's rate; its cost
        towards the turn's limit."""
        identity = head.bytes
        # Without principals, each connection is limited on its own.
        if not self._limiter.allow(identity, parts or 1):
            self._over_limit(identity, identity, "")
            return 1 + DROP_WEIGHT
        handler(identity, None, b"" if first is None else first.buffer, parts, first)
        return 1

    def _admit_secure(
        self, head: zmq.Frame, first: zmq.Frame | None, parts: int, handler: Handler
    ) -> int:
        """Hand on a message from a known principal within its rate; its cost towards the
        turn's limit."""
        if first is None:
            self._refuse("malformed", head.bytes, "no payload", "")
            return 1
        try:
            user_id = first.get("User-Id")
        except zmq.ZMQError:
            # No CURVE identity on the connection: ZAP let it through unchecked.
            self._refuse("unauthenticated", head.bytes, f"{self.plane}: no User-Id", "")
            return 1
        assert self._book is not None
        principal = self._book.by_user_id(str(user_id))
        if principal is None:
            self._refuse("unknown_key", head.bytes, f"{self.plane}: key {user_id}", "")
            return 1
        if not self._limiter.allow(principal.name, parts):
            self._over_limit(head.bytes, principal.name, principal.name)
            return 1 + DROP_WEIGHT
        handler(head.bytes, principal, first.buffer, parts, first)
        return 1

    def _over_limit(self, identity: bytes, key: str | bytes, principal: str) -> None:
        self._count("rate_limited")
        dropped = self._limiter.report_due(key)
        if dropped:
            self._limited(identity, principal, dropped)


class _Partial:
    """A message being read: its routing id and first part, and how many parts came so far.

    Frames, not bytes: only a frame carries the connection's User-Id, and each knows
    whether more parts follow, which spares `recv_multipart`'s option reads per part.
    """

    __slots__ = ("first", "head", "more", "parts")

    def __init__(self, head: zmq.Frame, first: zmq.Frame) -> None:
        self.head = head
        self.first = first
        self.parts = 1
        self.more = True

    def skip(self, sock: zmq.Socket[bytes], most: int) -> int:
        """Read and drop up to `most` more of the message's parts; how many were read.

        A receive without copying measured cheapest per part (0.9-1.9 µs for a million
        empty parts, against 1.7-2.3 µs receiving bytes and 2.1-3.1 µs receiving into a
        buffer, both of which must ask the socket whether more follow).
        """
        recv = sock.recv
        read = 0
        more = self.more
        while more and read < most:
            more = recv(_NOBLOCK, copy=False).more
            read += 1
        self.more = more
        self.parts += read
        return read


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, which hands the freed heap back to the system; None
    where the C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


_trim = _malloc_trim()


def release_memory() -> None:
    """Give memory freed by a huge message back to the system (about 10 ms for one of a
    million parts), where the C library allows it."""
    if _trim is not None:
        _trim()
