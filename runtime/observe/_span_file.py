"""Spans appended to a file as OTLP/JSON lines, the format the OpenTelemetry Collector's
`otlpjsonfile` receiver reads: one `ExportTraceServiceRequest` per line.

Encoded with msgspec, because the SDK's own `ReadableSpan.to_json` costs about 50 µs
a span, and the runtime writes several spans per run on its event loop. Needs the
`traces` extra (opentelemetry-sdk).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_ENCODER = msgspec.json.Encoder()

_KIND_OFFSET = 1
"""OTLP numbers span kinds from 1 (INTERNAL); the Python API from 0."""


class SpanFile(SpanExporter):
    """Appends each batch of spans to `path` as one OTLP/JSON line, flushed as it is written."""

    def __init__(self, path: Path) -> None:
        self._stream = path.open("ab")
        self._closed = False
        self._resources: dict[int, tuple[Resource, list[dict[str, Any]]]] = {}
        """Each resource seen, kept alive by its entry, with its attributes encoded once."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        try:
            self._stream.write(_ENCODER.encode(self._request(spans)) + b"\n")
            self._stream.flush()
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return not self._closed

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.close()

    def _request(self, spans: Iterable[ReadableSpan]) -> dict[str, Any]:
        """The OTLP/JSON `ExportTraceServiceRequest` of `spans`, grouped by resource and
        scope."""
        grouped: dict[int, dict[tuple[str, str], list[dict[str, Any]]]] = {}
        for span in spans:
            resource = span.resource
            if id(resource) not in self._resources:
                self._resources[id(resource)] = (resource, _attributes(resource.attributes))
            scope = span.instrumentation_scope
            key = ("", "") if scope is None else (scope.name, scope.version or "")
            grouped.setdefault(id(resource), {}).setdefault(key, []).append(_span(span))
        return {
            "resourceSpans": [
                {
                    "resource": {"attributes": self._resources[resource][1]},
                    "scopeSpans": [
                        {"scope": {"name": name, "version": version}, "spans": encoded}
                        for (name, version), encoded in scopes.items()
                    ],
                }
                for resource, scopes in grouped.items()
            ]
        }


def _span(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    assert context is not None  # a recorded span always has its own context
    status = span.status
    encoded: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "parentSpanId": "" if span.parent is None else f"{span.parent.span_id:016x}",
        "name": span.name,
        "kind": span.kind.value + _KIND_OFFSET,
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": _attributes(span.attributes or {}),
        "status": {"code": status.status_code.value, "message": status.description or ""},
    }
    if span.events:
        encoded["events"] = [
            {
                "timeUnixNano": str(event.timestamp),
                "name": event.name,
                "attributes": _attributes(event.attributes or {}),
            }
            for event in span.events
        ]
    return encoded


def _attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in attributes.items()]


def _value(value: Any) -> dict[str, Any]:
    # By exact type, most common first: a bool is an int to isinstance.
    kind = type(value)
    if kind is str:
        return {"stringValue": value}
    if kind is int:
        return {"intValue": str(value)}
    if kind is bool:
        return {"boolValue": value}
    if kind is float:
        return {"doubleValue": value}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    return {"stringValue": str(value)}
