"""Counting refusals, and logging them at a pace a flood cannot turn into a flood of lines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import structlog
import zmq
from zmq.utils.monitor import parse_monitor_message

from protocols import ErrorCode

log = structlog.get_logger("baton.runtime")

LOG_EVERY = 1.0
"""Seconds between two log lines about one peer's refusals of one kind."""

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
        """Count a refused frame; True when it was logged too (the first of its kind from
        that peer within a second), so that replies can be paced by it."""

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
    """Every refusal counted by reason; each logged unless its peer's last of the kind
    was logged less than `LOG_EVERY` seconds ago."""

    __slots__ = ("_logged_at", "_monotonic", "counts")

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self.counts: dict[str, int] = {}
        self._logged_at: dict[tuple[str, bytes], float] = {}

    def count(self, reason: str) -> None:
        """Count a refusal that is logged elsewhere, or not at all."""
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def refuse(self, reason: str, peer: bytes, detail: str, principal: str) -> bool:
        """Count a refused frame and log it if due; True when logged (callers pace their
        replies by it too)."""
        self.count(reason)
        now = self._monotonic()
        if now - self._logged_at.get((reason, peer), -LOG_EVERY) < LOG_EVERY:
            return False
        self._logged_at[(reason, peer)] = now
        log.warning(
            "frame.rejected",
            reason=reason,
            peer=peer.hex(),
            principal=principal,
            detail=detail[:200],
        )
        return True

    def prune(self) -> None:
        """Forget log times that no longer hold a line back."""
        now = self._monotonic()
        stale = [key for key, at in self._logged_at.items() if now - at >= LOG_EVERY]
        for key in stale:
            del self._logged_at[key]

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
