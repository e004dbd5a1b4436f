"""One socket's session with the runtime: whether it was welcomed, and when its timers
are due (the registration's deadline, the next heartbeat, the runtime declared lost)."""

from __future__ import annotations

import anyio

from actors._errors import RegistrationRefused
from actors._link import Link

LOST_AFTER_BEATS = 3
"""Heartbeat intervals of silence after which the runtime counts as lost."""


class Connection:
    """The state of one link between its registration and its end."""

    __slots__ = (
        "deadline",
        "ended",
        "interval",
        "last_seen",
        "link",
        "next_beat",
        "refused",
        "registered",
        "sleeps_until",
        "welcomed",
    )

    def __init__(self, link: Link) -> None:
        self.link = link
        self.ended = False
        """The runtime said Bye while the reader callback was draining."""
        self.refused: RegistrationRefused | None = None
        """A refusal met by the reader callback, for the connection's coroutine to raise."""
        self.registered = False
        self.sleeps_until = 0.0
        """When the connection's coroutine will next look at its timers."""
        self.welcomed = False
        self.deadline = 0.0
        self.interval = 0.0
        self.last_seen = anyio.current_time()
        self.next_beat = 0.0

    def welcome(self, heartbeat_ms: int) -> None:
        """The runtime took us in: beat every `heartbeat_ms`, and expect it to as well."""
        self.registered = self.welcomed = True
        self.interval = heartbeat_ms / 1000
        self.next_beat = anyio.current_time() + self.interval

    def wake_at(self) -> float:
        if not self.registered:
            return self.deadline
        return min(self.next_beat, self.last_seen + LOST_AFTER_BEATS * self.interval)
