"""The actor's spans: under the runtime's span when the run is traced, and nothing recorded,
not even what a handler starts, when it is not or outside any task."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors import SpanRecorder
from runtime.observe._trace_ids import span_id, trace_id, traceparent


@pytest.fixture
def recorded() -> tuple[SpanRecorder, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return SpanRecorder(exporter, "baton-test"), exporter


def test_a_traced_runs_task_and_what_its_handler_starts_nest_under_the_runtimes_span(
    recorded: tuple[SpanRecorder, InMemorySpanExporter],
) -> None:
    recorder, exporter = recorded
    handler = recorder.provider.get_tracer("handler")
    parent = traceparent("run-1", "one", 2)
    with (
        recorder.span("handle one", parent, {"baton.step": "one"}),
        handler.start_as_current_span("inner"),
    ):
        pass
    recorder.close()
    inner, handle = exporter.get_finished_spans()
    assert handle.context is not None
    assert inner.context is not None
    assert handle.context.trace_id == inner.context.trace_id == trace_id("run-1")
    assert handle.parent is not None
    assert handle.parent.span_id == span_id("run-1", "one", 2)
    assert inner.parent is not None
    assert inner.parent.span_id == handle.context.span_id
    assert handle.resource.attributes["service.name"] == "baton-test"


def test_an_untraced_runs_task_records_nothing_and_starts_no_trace_of_its_own(
    recorded: tuple[SpanRecorder, InMemorySpanExporter],
) -> None:
    recorder, exporter = recorded
    handler = recorder.provider.get_tracer("handler")
    # As a W3C sender that does not sample would send it: flags 00.
    unsampled = traceparent("run-2", "one", 1).removesuffix("-01") + "-00"
    with recorder.span("handle one", unsampled, {"baton.step": "one"}) as mark:
        mark.fail("does nothing")
        with handler.start_as_current_span("inner") as inner:
            assert not inner.is_recording()
    with handler.start_as_current_span("outside any task") as outside:
        assert not outside.is_recording()
    recorder.close()
    assert exporter.get_finished_spans() == ()


def test_a_failure_inside_the_span_marks_it_and_goes_on(
    recorded: tuple[SpanRecorder, InMemorySpanExporter],
) -> None:
    recorder, exporter = recorded
    with (
        pytest.raises(KeyError),
        recorder.span("handle one", traceparent("run-3", "one", 1), {}),
    ):
        raise KeyError("x")
    recorder.close()
    (handle,) = exporter.get_finished_spans()
    assert handle.status.status_code.name == "ERROR"
    assert handle.status.description == "KeyError"
