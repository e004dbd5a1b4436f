"""Log lines for what happens in runs, each bound to its run, step, attempt, agent and
principal: the operator's view of the history as it is written.

Failures, refusals and flags are warnings; a person's part (checkpoints,
decisions, resumptions) and the runtime's own recoveries are info; the routine
steps of a run, and runs that complete, are debug. Run endings are logged where the
supervisor ends runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from protocols import HistoryEntry
from runtime.engine._run import Run
from runtime.observe._observers import OTHER_EVENTS, RUN_ENDINGS, Handler

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
            "run_forked",
            "step_requeued",
            "stale_ignored",
            "late_ignored",
            "values_given",
        ),
        logging.INFO,
    ),
}
"""Each history event's level; any other is debug."""

_ENDING_LEVELS: Mapping[str, int] = {
    "completed": logging.DEBUG,
    "cancelled": logging.INFO,
    "failed": logging.WARNING,
    "halted": logging.WARNING,
}


def ending_level(status: str) -> int:
    """The level of `run.ended` for a run that ended `status`: a run that completes is
    routine, one that fails or halts a warning."""
    return _ENDING_LEVELS.get(status, logging.WARNING)


_NAMES: Mapping[str, str] = {"refused": "request.refused"}


class RunLog:
    """Logs the entries of runs' histories at their level, as they are written."""

    def __init__(self, log: FilteringBoundLogger | None = None) -> None:
        self._log: FilteringBoundLogger = log or structlog.get_logger("baton.runtime")

    def handlers(self) -> Mapping[str, Handler | None]:
        """A handler for each event logged at an enabled level; the rest cost nothing."""
        enabled = self._log.is_enabled_for
        table: dict[str, Handler | None] = {
            event: partial(self._write, level) if enabled(level) else None
            for event, level in LEVELS.items()
        }
        # Run endings are logged where the supervisor ends runs.
        table.update(dict.fromkeys(RUN_ENDINGS))
        debug = enabled(logging.DEBUG)
        table[OTHER_EVENTS] = partial(self._write, logging.DEBUG) if debug else None
        if enabled(logging.WARNING):
            table["tool_completed"] = self._tool_completed
        return table

    def _tool_completed(self, run: Run, entry: HistoryEntry) -> None:
        """Routine, except a call refused because its key was recorded for another call:
        a workflow whose steps call tools differently on a retry must hear of it."""
        detail = entry.detail
        conflict = isinstance(detail, dict) and detail.get("error") == "idempotency_conflict"
        level = logging.WARNING if conflict else logging.DEBUG
        if conflict or self._log.is_enabled_for(level):
            self._write(level, run, entry)

    def _write(self, level: int, run: Run, entry: HistoryEntry) -> None:
        fields: dict[str, Any] = {"run_id": run.run_id, "workflow": run.workflow}
        if entry.step:
            fields["step"] = entry.step
        if entry.attempt:
            fields["attempt"] = entry.attempt
        agent = entry.agent
        if not agent and (ran := run.attempt(entry.step, entry.attempt)) is not None:
            agent = ran.agent  # the entry does not name who ran the attempt
        if agent:
            fields["agent"] = agent
        if entry.principal:
            fields["principal"] = entry.principal
        if entry.message:
            fields["message"] = entry.message
        name = _NAMES.get(entry.event) or entry.event.replace("_", ".", 1)
        self._log.log(level, name, seq=entry.seq, **fields)
