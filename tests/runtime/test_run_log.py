"""Which entries of a run's history reach the log, at which level, as the loop writes them."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from runtime.observe._observers import Observers
from runtime.observe._prometheus import PrometheusMetrics
from runtime.observe._run_log import LEVELS, RunLog
from tests.runtime.test_report import GRAPH, drive


class Lines:
    """A logger at `level` whose lines are kept, not written."""

    def __init__(self, level: int) -> None:
        self.kept: list[dict[str, Any]] = []
        self.logger = structlog.wrap_logger(
            None,
            processors=[structlog.processors.add_log_level, self._keep],
            wrapper_class=structlog.make_filtering_bound_logger(level),
        )

    def _keep(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        self.kept.append(dict(event))
        raise structlog.DropEvent


def test_at_info_only_what_a_person_must_know_is_logged() -> None:
    lines = Lines(logging.INFO)
    run = drive(GRAPH, 0)  # b fails its first try, is retried, and the run completes
    Observers([RunLog(lines.logger)]).observe(run, 0)
    expected = [e for e in run.history if LEVELS.get(e.event, logging.DEBUG) >= logging.INFO]
    assert {e.event for e in expected} >= {"step_failed", "retry_scheduled"}
    assert [(line["event"], line["seq"]) for line in lines.kept] == [
        (e.event.replace("_", ".", 1), e.seq) for e in expected
    ]
    (failed,) = [line for line in lines.kept if line["event"] == "step.failed"]
    assert (failed["level"], failed["step"], failed["attempt"]) == ("warning", "b", 1)


def test_at_debug_every_entry_but_the_run_ending_is_logged_in_order() -> None:
    lines = Lines(logging.DEBUG)
    run = drive(GRAPH, 0)
    Observers([RunLog(lines.logger)]).observe(run, 0)
    assert [line["seq"] for line in lines.kept] == [
        e.seq for e in run.history if e.event != "run_completed"
    ]
    routine = [line for line in lines.kept if line["event"] == "step.succeeded"]
    assert routine
    assert {line["level"] for line in routine} == {"debug"}


def test_observers_sharing_an_event_each_take_it_in() -> None:
    lines = Lines(logging.DEBUG)
    alone, beside = PrometheusMetrics(), PrometheusMetrics()
    runs = [drive(GRAPH, index) for index in range(20)]
    both, one = Observers([RunLog(lines.logger), beside]), Observers([alone])
    for run in runs:
        both.observe(run, 0)
        one.observe(run, 0)
    counted = {key: s.count for key, s in alone.series.items()}
    assert counted == {key: s.count for key, s in beside.series.items()}
    assert counted[("baton_runs_started", "chain")] == 20
    succeeded = sum(1 for run in runs for e in run.history if e.event == "step_succeeded")
    assert len([line for line in lines.kept if line["event"] == "step.succeeded"]) == succeeded
