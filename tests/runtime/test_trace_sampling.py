"""Which runs are traced: decided from the trace id alone, as OpenTelemetry's ratio sampler
decides, so that the runtime and every agent agree without asking one another."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from runtime.observe._span_file import SpanFile
from runtime.observe._trace_ids import trace_id
from runtime.observe._tracing import RunTracer

RUNS = [str(uuid.UUID(int=index * 7_919 + 13, version=4)) for index in range(4_000)]


def tracer(tmp_path: Path, sample: float) -> RunTracer:
    return RunTracer(SpanFile(tmp_path / "spans.jsonl"), sample=sample)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_the_share_of_runs_traced_is_the_ratio_and_matches_the_sdk(
    tmp_path: Path, ratio: float
) -> None:
    ours = tracer(tmp_path, ratio)
    sdk = TraceIdRatioBased(ratio)
    traced = [run for run in RUNS if ours.traced(run)]
    assert traced == [
        run for run in RUNS if sdk.should_sample(None, trace_id(run), "run").decision.is_sampled()
    ]
    share = len(traced) / len(RUNS)
    spread = math.sqrt(ratio * (1 - ratio) / len(RUNS))
    assert abs(share - ratio) <= 4 * spread
    ours.close()


def test_only_a_traced_runs_messages_carry_a_traceparent(tmp_path: Path) -> None:
    ours = tracer(tmp_path, 0.5)
    carried = {run: ours.traceparent(run, "one", 1) for run in RUNS[:200]}
    assert {run for run, parent in carried.items() if parent} == {
        run for run in RUNS[:200] if ours.traced(run)
    }
    assert {parent.rsplit("-", 1)[1] for parent in carried.values() if parent} == {"01"}
    assert "" in carried.values()
    ours.close()


@pytest.mark.parametrize("ratio", [-0.1, 1.5, math.nan])
def test_a_ratio_outside_zero_to_one_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        RunTracer(InMemorySpanExporter(), sample=ratio)
