"""OpenTelemetry spans of the tasks and tool calls an actor runs (the `traces` extra).

Each span's parent is the remote span the runtime named in the message
(`Assign.trace`, `ToolCall.trace`), so the actor's spans, and any a handler
starts inside them, join the run's trace across processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


class _Mark:
    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def fail(self, reason: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, reason))


class SpanRecorder:
    """Records spans with its own provider, exporting them in batches off the event loop."""

    def __init__(self, exporter: SpanExporter, service: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("baton.actors")

    @contextmanager
    def span(
        self, name: str, traceparent: str, attributes: Mapping[str, str | int]
    ) -> Iterator[_Mark]:
        parent = _PROPAGATOR.extract({"traceparent": traceparent})
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=dict(attributes),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            mark = _Mark(span)
            try:
                yield mark
            except BaseException as exc:
                # Cancelled (a timeout, a withdrawn step) or broken: never ended cleanly.
                mark.fail(type(exc).__name__)
                raise

    def close(self) -> None:
        self.provider.shutdown()
