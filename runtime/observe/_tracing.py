"""OpenTelemetry traces of runs: a trace per run, a span per step attempt and tool call.

Spans are recorded from the run's history as its attempts end, with ids
derived from the run, step and attempt: so the runtime can hand an agent the
`traceparent` of an attempt's span with its assignment, before the span
exists, and the agent's spans join the run's trace under it. Needs the
`traces` extra (opentelemetry-sdk).

A run is traced or not as a whole, decided from its trace id at the configured
ratio; only a traced run's messages carry a traceparent, and agents record spans
only under one. Spans are exported in batches on the processor's thread, so the
event loop only builds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from protocols import HistoryEntry
from runtime.engine._run import Run
from runtime.observe._observers import RUN_ENDINGS, Handler
from runtime.observe._trace_ids import is_sampled, sampling_bound, span_id, trace_id, traceparent

EXPORT_DELAY_MS = 1_000
"""How long a finished span may wait for its batch: what a killed runtime loses at most."""
DECISIONS_KEPT = 100_000
"""Runs whose decision is remembered; past this (runs that never end here) all are forgotten,
to be hashed again."""
QUEUED_SPANS = 16_384
"""Spans waiting for export before new ones are dropped: seconds of a busy runtime's."""


class RunTracer:
    """Records the spans of runs from their histories and exports them as they end."""

    def __init__(
        self, exporter: SpanExporter, service: str = "baton-runtime", sample: float = 1.0
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"the sampling ratio is between 0 and 1, not {sample}")
        self._processor = BatchSpanProcessor(
            exporter, schedule_delay_millis=EXPORT_DELAY_MS, max_queue_size=QUEUED_SPANS
        )
        self._resource = Resource.create({"service.name": service})
        self._bound = sampling_bound(sample)
        self._decided: dict[str, bool] = {}
        """Each live run's decision, hashed once."""

    def traced(self, run_id: str) -> bool:
        decided = self._decided.get(run_id)
        if decided is None:
            if len(self._decided) >= DECISIONS_KEPT:
                self._decided.clear()
            decided = self._decided[run_id] = is_sampled(trace_id(run_id), self._bound)
        return decided

    def traceparent(self, run_id: str, step: str, attempt: int, *more: object) -> str:
        """The traceparent of the span named, or "" for a run not traced: its messages carry
        none, so agents spend nothing on it and record nothing under it."""
        return traceparent(run_id, step, attempt, *more) if self.traced(run_id) else ""

    def handlers(self) -> Mapping[str, Handler | None]:
        return {
            "step_succeeded": self._attempt_ended,
            "step_failed": self._attempt_ended,
            "tool_completed": self._tool_completed,
            **dict.fromkeys(RUN_ENDINGS, self._run_ended),
        }

    def _attempt_ended(self, run: Run, entry: HistoryEntry) -> None:
        if not self.traced(run.run_id):
            return
        attempt = run.attempt(entry.step, entry.attempt)
        if attempt is None or not attempt.agent or attempt.ended_at is None:
            return
        failed = entry.event == "step_failed"
        self._export(
            f"step {entry.step}",
            run,
            span_id(run.run_id, entry.step, entry.attempt),
            start=attempt.started_at,
            end=attempt.ended_at,
            attributes={
                "baton.step": entry.step,
                "baton.attempt": entry.attempt,
                "baton.agent": attempt.agent,
                "baton.outcome": "failed" if failed else "succeeded",
                "baton.failure": attempt.failure or "",
            },
            failed=failed,
        )

    def _tool_completed(self, run: Run, entry: HistoryEntry) -> None:
        if not self.traced(run.run_id):
            return
        # Read as Any: comparing values of the deep `Value` union makes mypy crawl.
        detail: dict[str, Any] = dict(entry.detail)
        called = _called_at(run, entry.step, entry.attempt, detail.get("call"), entry.at)
        tool = str(detail.get("tool", ""))
        self._export(
            f"tool {tool}",
            run,
            span_id(run.run_id, entry.step, entry.attempt, "tool", detail.get("call")),
            start=called,
            end=entry.at,
            attributes={"baton.step": entry.step, "baton.tool": tool},
            failed=not detail.get("ok", True),
            parent=span_id(run.run_id, entry.step, entry.attempt),
        )

    def _run_ended(self, run: Run, entry: HistoryEntry) -> None:
        traced = self.traced(run.run_id)
        del self._decided[run.run_id]  # the run is over: its decision is not needed again
        if not traced:
            return
        self._export(
            f"run {run.workflow}",
            run,
            span_id(run.run_id),
            start=run.created_at,
            end=entry.at,
            attributes={"baton.workflow": run.workflow, "baton.status": run.status},
            failed=run.status != "completed",
            parent=None,
        )

    def _export(
        self,
        name: str,
        run: Run,
        own: int,
        *,
        start: float,
        end: float,
        attributes: dict[str, Any],
        failed: bool,
        parent: int | bool | None = True,
    ) -> None:
        trace = trace_id(run.run_id)
        above = span_id(run.run_id) if parent is True else parent
        span = ReadableSpan(
            name=name,
            context=SpanContext(trace, own, is_remote=False, trace_flags=TraceFlags(1)),
            parent=None
            if not above
            else SpanContext(trace, int(above), is_remote=False, trace_flags=TraceFlags(1)),
            resource=self._resource,
            attributes={"baton.run_id": run.run_id, **attributes},
            kind=SpanKind.INTERNAL,
            status=Status(StatusCode.ERROR if failed else StatusCode.OK),
            start_time=int(start * 1e9),
            end_time=int(end * 1e9),
        )
        self._processor.on_end(span)

    def close(self) -> None:
        """Export what is waiting and close the exporter."""
        self._processor.shutdown()  # type: ignore[no-untyped-call]


def _called_at(run: Run, step: str, attempt: int, call: Any, default: float) -> float:
    """When the tool call `call` of the attempt was made."""
    for entry in reversed(run.history):
        if entry.event == "tool_called" and entry.step == step and entry.attempt == attempt:
            detail: dict[str, Any] = dict(entry.detail)
            if detail.get("call") == call:
                return entry.at
    return default
