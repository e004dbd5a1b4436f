"""OpenTelemetry traces of runs: a trace per run, a span per step attempt and tool call.

Spans are recorded from the run's history as its attempts end, with ids
derived from the run, step and attempt: so the runtime can hand an agent the
`traceparent` of an attempt's span with its assignment, before the span
exists, and the agent's spans join the run's trace under it. Needs the
`traces` extra (opentelemetry-sdk).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from runtime._metrics import RUN_ENDINGS
from runtime._run import Run
from runtime._trace_ids import span_id, trace_id


def file_exporter(path: Path) -> tuple[SpanExporter, IO[str]]:
    """An exporter appending one JSON object per span to `path`, and the file it keeps open."""
    stream = path.open("a", encoding="utf-8")
    exporter = ConsoleSpanExporter(
        out=stream, formatter=lambda span: span.to_json(indent=None) + "\n"
    )
    return exporter, stream


class RunTracer:
    """Records the spans of runs from their histories and exports them as they end."""

    def __init__(self, exporter: SpanExporter, service: str = "baton-runtime") -> None:
        self._exporter = exporter
        self._resource = Resource.create({"service.name": service})

    def observe(self, run: Run, seen: int) -> None:
        spans: list[ReadableSpan] = []
        for entry in run.history[seen:]:
            if entry.event in ("step_succeeded", "step_failed"):
                state = run.steps.get(entry.step)
                if state is None or not 0 < entry.attempt <= len(state.attempts):
                    continue
                attempt = state.attempts[entry.attempt - 1]
                if not attempt.agent or attempt.ended_at is None:
                    continue
                failed = entry.event == "step_failed"
                spans.append(
                    self._span(
                        f"step {entry.step}",
                        run,
                        span_id(run.run_id, entry.step, entry.attempt),
                        attempt.started_at,
                        attempt.ended_at,
                        {
                            "baton.step": entry.step,
                            "baton.attempt": entry.attempt,
                            "baton.agent": attempt.agent,
                            "baton.outcome": "failed" if failed else "succeeded",
                            "baton.failure": attempt.failure or "",
                        },
                        failed=failed,
                    )
                )
            elif entry.event == "tool_completed":
                # Read as Any: comparing values of the deep `Value` union makes mypy crawl.
                detail: dict[str, Any] = dict(entry.detail)
                called = _called_at(run, entry.step, entry.attempt, detail.get("call"), entry.at)
                tool = str(detail.get("tool", ""))
                spans.append(
                    self._span(
                        f"tool {tool}",
                        run,
                        span_id(run.run_id, entry.step, entry.attempt, "tool", detail.get("call")),
                        called,
                        entry.at,
                        {"baton.step": entry.step, "baton.tool": tool},
                        failed=not detail.get("ok", True),
                        parent=span_id(run.run_id, entry.step, entry.attempt),
                    )
                )
            elif entry.event in RUN_ENDINGS:
                spans.append(
                    self._span(
                        f"run {run.workflow}",
                        run,
                        span_id(run.run_id),
                        run.created_at,
                        entry.at,
                        {"baton.workflow": run.workflow, "baton.status": run.status},
                        failed=run.status != "completed",
                        parent=None,
                    )
                )
        if spans:
            self._exporter.export(spans)

    def _span(
        self,
        name: str,
        run: Run,
        own: int,
        start: float,
        end: float,
        attributes: dict[str, Any],
        *,
        failed: bool,
        parent: int | bool | None = True,
    ) -> ReadableSpan:
        trace = trace_id(run.run_id)
        above = span_id(run.run_id) if parent is True else parent
        return ReadableSpan(
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

    def close(self) -> None:
        self._exporter.shutdown()


def _called_at(run: Run, step: str, attempt: int, call: Any, default: float) -> float:
    """When the tool call `call` of the attempt was made."""
    for entry in reversed(run.history):
        if entry.event == "tool_called" and entry.step == step and entry.attempt == attempt:
            detail: dict[str, Any] = dict(entry.detail)
            if detail.get("call") == call:
                return entry.at
    return default
