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


async def test_agent_and_tool_host_spans_join_the_run_trace_across_processes(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """Three processes, three files, one trace: the agent's span of the attempt sits under
    the runtime's, a span the handler starts sits under the agent's, and the tool host's
    execution sits under the runtime's span of the call."""
    files = {who: tmp_path / f"{who}.jsonl" for who in ("runtime", "charger", "till")}
    cluster.enroll("till", "tools:till")
    cluster.enroll("charger", "charger")
    runtime = cluster.start_runtime(
        [f"{FLOWS}:ALL"], heartbeat=HEARTBEAT, extra=["--trace-file", str(files["runtime"])]
    )
    till = cluster.start_actor(
        f"{FLOWS}:Till", runtime.agents, label="till", extra=["--trace-file", str(files["till"])]
    )
    charger = cluster.start_actor(
        f"{FLOWS}:Charger", runtime.agents, extra=["--trace-file", str(files["charger"])]
    )
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("charge", {"amount": 10})
        record, _ = await client.wait_run(run_id, max_wait=20)
    assert record.status == "completed"
    # A clean stop flushes each process's spans.
    for process in (charger, till, runtime.process):
        assert cluster.stop(process) == 0
    ours = {who: {s["name"]: s for s in spans_in(path)} for who, path in files.items()}
    step, tool = ours["runtime"]["step settle"], ours["runtime"]["tool charge"]
    handle, authorise = ours["charger"]["handle settle"], ours["charger"]["authorise"]
    execute = ours["till"]["execute charge"]
    trace = ours["runtime"]["run charge"]["context"]["trace_id"]
    assert {s["context"]["trace_id"] for s in (handle, authorise, execute)} == {trace}
    assert handle["parent_id"] == step["context"]["span_id"]
    assert authorise["parent_id"] == handle["context"]["span_id"]
    assert execute["parent_id"] == tool["context"]["span_id"]
    assert handle["resource"]["attributes"]["service.name"] == "baton-charger"
    assert execute["resource"]["attributes"]["service.name"] == "baton-till"
    assert handle["attributes"] == {
        "baton.run_id": run_id,
        "baton.step": "settle",
        "baton.attempt": 1,
    }
    assert handle["status"]["status_code"] == execute["status"]["status_code"] == "UNSET"
    # Each process's clock, one machine: the remote spans fall inside the runtime's.
    assert step["start_time"] <= handle["start_time"] <= authorise["start_time"]
    assert authorise["end_time"] <= handle["end_time"] <= step["end_time"]
    assert tool["start_time"] <= execute["start_time"] <= execute["end_time"] <= tool["end_time"]


async def test_a_failed_attempt_is_an_error_span_on_the_agent_side(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    traces = {who: tmp_path / f"{who}.jsonl" for who in ("runtime", "quick")}
    cluster.enroll("quick", "quick")
    runtime = cluster.start_runtime(
        [f"{FLOWS}:ALL"], heartbeat=HEARTBEAT, extra=["--trace-file", str(traces["runtime"])]
    )
    quick = cluster.start_actor(
        f"{FLOWS}:Quick", runtime.agents, extra=["--trace-file", str(traces["quick"])]
    )
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("quick", {"n": 3})
        record, _ = await client.wait_run(run_id, max_wait=20)
    assert record.status == "completed"
    assert cluster.stop(quick) == 0
    cluster.stop(runtime.process)
    handled = sorted(
        (s for s in spans_in(traces["quick"]) if s["name"] == "handle one"),
        key=lambda s: s["attributes"]["baton.attempt"],
    )
    assert [s["attributes"]["baton.attempt"] for s in handled] == [1, 2]
    failed, retried = handled
    assert failed["status"]["status_code"] == "ERROR"
    assert "every third run's first try fails" in failed["status"]["description"]
    assert retried["status"]["status_code"] == "UNSET"
    runtime_spans = {
        (s["attributes"].get("baton.attempt"), s["name"]): s for s in spans_in(traces["runtime"])
    }
    for span in handled:
        attempt = span["attributes"]["baton.attempt"]
        assert span["parent_id"] == runtime_spans[attempt, "step one"]["context"]["span_id"]
