"""Traces of runs written by a real runtime: one trace per run, spans nested as the run was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime import ControlClient
from runtime._launch import ProcessGroup
from runtime._trace_ids import traceparent
from tests.integration.conftest import HEARTBEAT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


def spans_in(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_run_step_and_tool_call_nest_in_one_trace(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    traces = tmp_path / "spans.jsonl"
    cluster.enroll("till", "tools:till")
    cluster.enroll("charger", "charger")
    runtime = cluster.start_runtime(
        [f"{FLOWS}:ALL"], heartbeat=HEARTBEAT, extra=["--trace-file", str(traces)]
    )
    cluster.start_actor(f"{FLOWS}:Till", runtime.agents, label="till")
    cluster.start_actor(f"{FLOWS}:Charger", runtime.agents)
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("charge", {"amount": 10})
        record, _ = await client.wait_run(run_id, max_wait=20)
    assert record.status == "completed"
    cluster.stop(runtime.process)
    spans = {s["name"]: s for s in spans_in(traces)}
    run, step, tool = spans["run charge"], spans["step settle"], spans["tool charge"]
    trace = run["context"]["trace_id"]
    assert {s["context"]["trace_id"] for s in (run, step, tool)} == {trace}
    assert run["parent_id"] is None
    assert step["parent_id"] == run["context"]["span_id"]
    assert tool["parent_id"] == step["context"]["span_id"]
    assert step["attributes"]["baton.agent"] == "charger"
    assert run["attributes"]["baton.run_id"] == run_id
    # What the attempt's assignment carried: the traceparent of exactly this span.
    _, trace_hex, span_hex, _ = traceparent(run_id, "settle", 1).split("-")
    assert (f"0x{trace_hex}", f"0x{span_hex}") == (trace, step["context"]["span_id"])
    assert run["start_time"] <= step["start_time"] <= tool["start_time"]
    assert tool["end_time"] <= step["end_time"] <= run["end_time"]
