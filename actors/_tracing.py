"""OpenTelemetry spans of the tasks and tool calls an actor runs (the `traces` extra).

Each span's parent is the remote span the runtime named in the message
(`Assign.trace`, `ToolCall.trace`), so the actor's spans, and any a handler
starts inside them, join the run's trace across processes. A run the runtime
does not trace is not traced here either, and costs nothing: spans start only
under a traced parent, so what a handler starts outside one is not recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_UNSAMPLED = "-00"
"""How a traceparent the runtime sends for a run it does not trace ends."""


class _Unrecorded:
    __slots__ = ()

    def fail(self, reason: str) -> None:
        pass


_UNRECORDED = nullcontext(_Unrecorded())


class _Mark:
    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def fail(self, reason: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, reason))


class SpanRecorder:
    """Records spans with its own provider, exporting them in batches off the event loop."""

    def __init__(self, exporter: SpanExporter, service: str) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service}),
            sampler=ParentBased(root=ALWAYS_OFF),
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("baton.actors")

    def span(
        self, name: str, traceparent: str, attributes: Mapping[str, str | int]
    ) -> AbstractContextManager[_Mark | _Unrecorded]:
        if traceparent.endswith(_UNSAMPLED):
            return _UNRECORDED
        return self._recorded(name, traceparent, attributes)

    @contextmanager
    def _recorded(
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
