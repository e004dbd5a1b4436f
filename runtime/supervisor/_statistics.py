"""What a runtime has done since it started, and what it holds now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """Counters since start, and current gauges."""

    runs_started: int
    runs_ended: Mapping[str, int]
    active_runs: int
    steps_dispatched: int
    results: int
    tool_calls: int
    tool_calls_refused: int
    rejected_frames: Mapping[str, int]
    """Frames refused, by reason (including handshakes refused and rate-limited frames)."""
    agents: Mapping[str, int]
    queued_steps: int
    batches: int
    stuck_runs: int
    """Runs waiting for an operator to resume or cancel them."""
    crash_loops: int
    """Times a role lost more instances than its restart budget allows."""
    model_calls: int = 0
    """Model calls agents reported for tasks they held, journaled."""
    model_calls_refused: int = 0
    """Model calls refused: for a task the agent did not hold, or beyond what is kept."""


@dataclass(slots=True)
class Counters:
    runs_started: int = 0
    runs_ended: dict[str, int] = field(default_factory=dict)


def log_fields(stats: SupervisorStatistics) -> dict[str, Any]:
    """The figures the line logged when a runtime stops shows."""
    return {
        "runs_started": stats.runs_started,
        "runs_ended": dict(stats.runs_ended),
        "steps_dispatched": stats.steps_dispatched,
        "rejected_frames": dict(stats.rejected_frames),
        "stuck_runs": stats.stuck_runs,
        "crash_loops": stats.crash_loops,
    }
