"""What a failed ZeroMQ security handshake means to the side that connected.

ZeroMQ reports these only through a socket monitor; without one, a client
with a wrong key just never hears back. Both actors and control clients
watch their socket's monitor and turn these events into an explanation.
"""

from __future__ import annotations

from dataclasses import dataclass

import zmq
from zmq.utils.monitor import parse_monitor_message

WATCHED_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
"""The monitor events a connecting side needs."""

UNEXPLAINED_FAILURES_TOLERATED = 3
"""Handshakes that may fail without detail in a row before the keys are blamed.

A CURVE client whose server key is wrong sees only such failures (the server
cannot read its HELLO and hangs up), but so may a client whose connection
broke mid-handshake; a few in a row are no accident."""


class HandshakeWatch:
    """Reads a client socket's monitor events and says when the runtime refused it for good.

    A refusal that explains itself ends it at once; failures without detail
    do after `UNEXPLAINED_FAILURES_TOLERATED` in a row; a success resets the count.
    """

    __slots__ = ("_curve", "_unexplained")

    def __init__(self, *, curve: bool) -> None:
        self._curve = curve
        self._unexplained = 0

    def observe(self, parts: list[bytes]) -> HandshakeFailure | None:
        """The final failure that the monitor message `parts` makes, if it makes one."""
        event = parse_monitor_message(parts)
        failure = explain(event["event"], event["value"], curve=self._curve)
        if failure is None:
            self._unexplained = 0
            return None
        if failure.final:
            return failure
        self._unexplained += 1
        if self._unexplained < UNEXPLAINED_FAILURES_TOLERATED:
            return None
        return HandshakeFailure(failure.reason, final=True)


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """Why the runtime will not talk to us; `final` when retrying cannot help."""

    reason: str
    final: bool


def explain(event: int, value: int, *, curve: bool) -> HandshakeFailure | None:
    """The meaning of monitor `event` (with its `value`) for a client; None on success."""
    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return None
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return HandshakeFailure(
            "the runtime refused this key: it belongs to no principal the runtime knows "
            "(add it with `baton keys add`, then send the runtime SIGHUP)",
            final=True,
        )
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            reason = (
                "the runtime does not use CURVE (was it started with --insecure?)"
                if curve
                else "the runtime requires CURVE: give this process its keys "
                "(--keys DIR --principal NAME), or start the runtime with --insecure"
            )
            return HandshakeFailure(reason, final=True)
        return HandshakeFailure(f"handshake protocol error {value:#x}", final=True)
    return HandshakeFailure(
        "the handshake failed: the runtime's public key (runtime.key) is probably not "
        "the key this runtime uses"
        if curve
        else "the handshake failed: the runtime probably requires CURVE; give this process "
        "its keys (--keys DIR --principal NAME), or start the runtime with --insecure",
        final=False,
    )
