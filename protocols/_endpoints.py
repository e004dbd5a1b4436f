"""Endpoints: where a supervisor's agent plane is reached, as messages name them."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

MAX_ENDPOINT = 256
"""Longest endpoint, in characters."""
MAX_PEERS = 64
"""Most endpoints in one list of peers: the supervisors of one cluster."""

Endpoint = Annotated[
    str, Meta(min_length=1, max_length=MAX_ENDPOINT, pattern=r"^[a-z][a-z0-9+.-]*://\S+$")
]
"""A ZeroMQ endpoint, `transport://address` (`tcp://127.0.0.1:7710`), as actors connect to it."""
Endpoints = Annotated[list[Endpoint], Meta(max_length=MAX_PEERS)]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(endpoint: str) -> bool:
    """Whether `endpoint` stays on this machine: loopback TCP, `ipc://` or `inproc://`.

    Plain text (no CURVE) is allowed nowhere else, whether an endpoint is bound,
    connected to, or learned from a supervisor's peers.
    """
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    return host in LOOPBACK_HOSTS or host.startswith("127.")
