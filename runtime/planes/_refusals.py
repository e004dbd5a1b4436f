"""Counting refusals, and logging and answering them at a pace a flood cannot turn into a
flood of lines, or of replies queued for a peer that does not read them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import structlog
import zmq
from zmq.utils.monitor import parse_monitor_message

from protocols import ErrorCode
from runtime.planes._rate import Pacer

log = structlog.get_logger("baton.runtime")

REPLY_TEXT = 256
"""Longest explanation an error reply to a refused frame carries: the log has the detail,
and a short reply costs little to hold for a peer that does not read."""

HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
"""The monitor events of a plane's socket that say a peer failed its handshake."""
CONNECTION_CLOSED = zmq.EVENT_DISCONNECTED
"""The monitor event of a connection that closed; its value is the connection's descriptor."""

_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)

_HANDSHAKE_REASONS: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_refused",
}


class RefusalHost(Protocol):
    """What either plane needs of the supervisor to refuse a frame."""

    def reject(self, reason: str, identity: bytes, detail: str = "", principal: str = "") -> bool:
        """Count a refused frame; True when it was logged too, and is to be answered: the
        pace of `Refusals`, per principal (per connection without one) and in all."""

    def audit(
        self,
        run_id: str,
        principal: str,
        action: str,
        code: ErrorCode,
        message: str,
        *,
        step: str = "",
        attempt: int = 0,
    ) -> None:
        """Record a refusal in the history of the run it concerns, if that run exists."""


class Refusals:
    """Every refusal counted by reason; logged and answered at the pace of a `Pacer`.

    A refusal is paced by its kind and its sender: the principal in secure mode,
    so that more connections with one key do not earn it more answers, else the
    connection's routing id.
    """

    __slots__ = ("_pacer", "counts")

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._pacer = Pacer(monotonic)
        self.counts: dict[str, int] = {}

    def count(self, reason: str) -> None:
        """Count a refusal that is logged elsewhere, or not at all."""
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def refuse(self, reason: str, peer: bytes, detail: str, principal: str) -> bool:
        """Count a refused frame and log it if due; True when logged, and so to be answered."""
        self.count(reason)
        held = self._pacer.due((reason, principal or peer))
        if held is None:
            return False
        log.warning(
            "frame.rejected",
            reason=reason,
            peer=peer.hex(),
            principal=principal,
            detail=detail[:200],
            **({"suppressed": held} if held else {}),
        )
        return True

    def may_answer(self) -> bool:
        """Whether a reply paced elsewhere (a rate limit's) fits the total allowance."""
        return self._pacer.spend()

    def prune(self) -> None:
        """Forget the pace of peers that have been quiet."""
        self._pacer.prune()

    def snapshot(self) -> Mapping[str, int]:
        return dict(self.counts)

    def read_monitor(self, monitor: zmq.Socket[bytes]) -> list[int]:
        """Count and log the failed handshakes a plane's monitor reports: a wrong server
        key, no CURVE, or a key the authenticator refused (which it logged already); the
        descriptors of the connections it reports closed."""
        closed: list[int] = []
        # Asking first spares a receive that fails on every turn: monitors are mostly quiet.
        if not int(monitor.getsockopt(_EVENTS)) & _POLLIN:
            return closed
        while True:
            try:
                parts = monitor.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return closed
            event = parse_monitor_message(parts)
            if event["event"] == CONNECTION_CLOSED:
                closed.append(int(event["value"]))
                continue
            reason = _HANDSHAKE_REASONS.get(int(event["event"]), "handshake_failed")
            self.count(reason)
            if reason != "handshake_refused":
                log.warning(
                    "handshake.failed",
                    reason=reason,
                    errno=event["value"],
                    endpoint=event["endpoint"].decode(errors="replace"),
                )
