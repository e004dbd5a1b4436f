"""Log lines for what happens in runs, each bound to its run, step, attempt, agent and
principal: the operator's view of the history as it is written.

Failures, refusals and flags are warnings; a person's part (checkpoints,
decisions, resumptions) and the runtime's own recoveries are info; the routine
steps of a run are debug. Run endings are logged where the supervisor ends runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from runtime._metrics import RUN_ENDINGS
from runtime._run import Run

LEVELS: Mapping[str, int] = {
    **dict.fromkeys(
        (
            "step_failed",
            "step_flagged",
            "tool_refused",
            "refused",
            "run_stuck",
            "decision_ignored",
            "duplicate_start",
        ),
        logging.WARNING,
    ),
    **dict.fromkeys(
        (
            "checkpoint_opened",
            "decision_made",
            "decision_escalated",
            "decision_timed_out",
            "decision_withdrawn",
            "retry_scheduled",
            "fallback",
            "run_recovered",
            "run_resumed",
            "step_requeued",
            "stale_ignored",
            "late_ignored",
            "values_given",
        ),
        logging.INFO,
    ),
}
"""Each history event's level; any other is debug."""

_NAMES: Mapping[str, str] = {"refused": "request.refused"}


class RunLog:
    """Logs the entries of runs' histories at their level, as they are written."""

    def __init__(self, log: FilteringBoundLogger | None = None) -> None:
        self._log: FilteringBoundLogger = log or structlog.get_logger("baton.runtime")
        enabled = self._log.is_enabled_for
        self._levels: dict[str, int | None] = {
            event: level if enabled(level) else None for event, level in LEVELS.items()
        }
        self._levels.update(dict.fromkeys(RUN_ENDINGS))
        self._otherwise = logging.DEBUG if enabled(logging.DEBUG) else None
        """The level of events the table does not name (None: not logged)."""

    def observe(self, run: Run, seen: int) -> None:
        for entry in run.history[seen:]:
            level = self._levels.get(entry.event, self._otherwise)
            if level is None:
                continue
            fields: dict[str, Any] = {"run_id": run.run_id, "workflow": run.workflow}
            if entry.step:
                fields["step"] = entry.step
            if entry.attempt:
                fields["attempt"] = entry.attempt
            agent = entry.agent or _agent_of(run, entry.step, entry.attempt)
            if agent:
                fields["agent"] = agent
            if entry.principal:
                fields["principal"] = entry.principal
            if entry.message:
                fields["message"] = entry.message
            name = _NAMES.get(entry.event) or entry.event.replace("_", ".", 1)
            self._log.log(level, name, seq=entry.seq, **fields)


def _agent_of(run: Run, step: str, attempt: int) -> str:
    """The agent that ran attempt `attempt` of `step`, when the entry does not name it."""
    state = run.steps.get(step) if step else None
    if state is None or not 0 < attempt <= len(state.attempts):
        return ""
    return state.attempts[attempt - 1].agent
