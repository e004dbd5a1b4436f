"""What the supervisor tells its observers: events as they are folded, and gauges.

The backends (Prometheus in `runtime._prometheus`, OpenTelemetry in
`runtime._tracing`) are optional, so the supervisor knows them only by these
protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from protocols import TERMINAL_STATUSES
from runtime._run import Run

RUN_ENDINGS: Mapping[str, str] = {f"run_{status}": status for status in TERMINAL_STATUSES}
"""The history event that ends a run, and the status it ends in."""


@dataclass(frozen=True, slots=True)
class Gauges:
    """What the loop saw at its last heartbeat."""

    active_runs: int = 0
    stuck_runs: int = 0
    queued_steps: int = 0
    agents: Mapping[str, int] = field(default_factory=dict)
    refused: Mapping[str, int] = field(default_factory=dict)


class Observer(Protocol):
    def observe(self, run: Run, seen: int) -> None:
        """Take in what the entries of `run`'s history from index `seen` on say happened."""


class Metrics(Observer, Protocol):
    gauges: Gauges
    """Replaced whole by the loop each heartbeat, so a reader on another thread sees one
    consistent snapshot."""


class Tracer(Observer, Protocol):
    def traceparent(self, run_id: str, step: str, attempt: int, *more: object) -> str:
        """The traceparent an assignment (or, with `more`, a forwarded tool call) carries."""
