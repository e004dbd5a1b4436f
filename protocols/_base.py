"""The common base of every wire message."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

PROTOCOL_VERSION = 3
"""Bumped on any change a peer of the previous version could not decode."""

Count = Annotated[int, Meta(ge=0, le=2**53)]
Seconds = Annotated[float, Meta(ge=0.0, le=10_000_000.0)]
Confidence = Annotated[float, Meta(ge=0.0, le=1.0)]

ErrorCode = Literal[
    "incompatible_protocol",
    "malformed",
    "oversize",
    "invalid_message",
    "unexpected_message",
    "not_registered",
    "role_refused",
    "tool_refused",
    "unknown_tool",
    "tool_failed",
    "tool_unavailable",
    "idempotency_conflict",
    "unknown_workflow",
    "unknown_run",
    "invalid_input",
    "stale",
    "overloaded",
    "rate_limited",
    "unauthorized",
    "session_exists",
    "wrong_state",
    "internal",
    "elsewhere",
]
"""Why a request was refused. Stable: programs branch on these."""


class Message(
    msgspec.Struct,
    frozen=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    tag_field="type",
):
    """Base of every message: frozen, tagged, strict about unknown fields."""
