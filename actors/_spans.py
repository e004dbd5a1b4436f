"""What the pool asks of a tracer: a span around each task and tool call it runs.

The tracer itself (OpenTelemetry, in `actors._tracing`) is an optional extra,
so the pool knows it only by this protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol


class SpanMark(Protocol):
    def fail(self, reason: str) -> None:
        """Mark the span as failed, saying why."""


class Spans(Protocol):
    def span(
        self, name: str, traceparent: str, attributes: Mapping[str, str | int]
    ) -> AbstractContextManager[SpanMark]:
        """A span named `name` under the remote span `traceparent`, current while open:
        spans that code inside it starts nest under it."""

    def close(self) -> None:
        """Export what is still buffered and stop."""
