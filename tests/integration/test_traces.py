"""Traces of runs written by a real runtime: one trace per run, spans nested as the run was."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.observe._trace_ids import trace_id, traceparent
from tests.integration.conftest import HEARTBEAT, completed_runs

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


def traced_quick(
    cluster: ProcessGroup, folder: Path, *flags: str
) -> tuple[RuntimeProcess, subprocess.Popen[bytes], dict[str, Path]]:
    """A runtime (started with `flags` too) and a Quick agent, each writing its spans to a
    file in `folder`; and the files, by who writes them."""
    traces = {who: folder / f"{who}.jsonl" for who in ("runtime", "quick")}
    cluster.enroll("quick", "quick")
    runtime = cluster.start_runtime(
        [f"{FLOWS}:ALL"],
        heartbeat=HEARTBEAT,
        extra=["--trace-file", str(traces["runtime"]), *flags],
    )
    quick = cluster.start_actor(
        f"{FLOWS}:Quick", runtime.agents, extra=["--trace-file", str(traces["quick"])]
    )
    return runtime, quick, traces


def spans_in(path: Path) -> list[dict[str, Any]]:
    """The spans of an OTLP/JSON lines file, each flattened with its service's name."""
    spans = []
    for line in path.read_text().splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            service = _attributes(resource["resource"]["attributes"])["service.name"]
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    status = span["status"]
                    spans.append(
                        {
                            "name": span["name"],
                            "service": service,
                            "trace_id": span["traceId"],
                            "span_id": span["spanId"],
                            "parent_id": span["parentSpanId"] or None,
                            "kind": span["kind"],
                            "attributes": _attributes(span["attributes"]),
                            "status": ("UNSET", "OK", "ERROR")[status["code"]],
                            "message": status["message"],
                            "start": int(span["startTimeUnixNano"]),
                            "end": int(span["endTimeUnixNano"]),
                        }
                    )
    return spans


def _attributes(encoded: list[dict[str, Any]]) -> dict[str, Any]:
    def value(v: dict[str, Any]) -> Any:
        ((kind, raw),) = v.items()
        return int(raw) if kind == "intValue" else raw

    return {a["key"]: value(a["value"]) for a in encoded}


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
    (run_id,) = await completed_runs(runtime, "charge", {"amount": 10})
    cluster.stop(runtime.process)
    spans = {s["name"]: s for s in spans_in(traces)}
    run, step, tool = spans["run charge"], spans["step settle"], spans["tool charge"]
    trace = run["trace_id"]
    assert {s["trace_id"] for s in (run, step, tool)} == {trace}
    assert run["parent_id"] is None
    assert step["parent_id"] == run["span_id"]
    assert tool["parent_id"] == step["span_id"]
    assert step["attributes"]["baton.agent"] == "charger"
    assert run["attributes"]["baton.run_id"] == run_id
    # What the attempt's assignment carried: the traceparent of exactly this span.
    _, trace_hex, span_hex, _ = traceparent(run_id, "settle", 1).split("-")
    assert (trace_hex, span_hex) == (trace, step["span_id"])
    assert run["start"] <= step["start"] <= tool["start"]
    assert tool["end"] <= step["end"] <= run["end"]


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
    (run_id,) = await completed_runs(runtime, "charge", {"amount": 10})
    # A clean stop flushes each process's spans.
    for process in (charger, till, runtime.process):
        assert cluster.stop(process) == 0
    ours = {who: {s["name"]: s for s in spans_in(path)} for who, path in files.items()}
    step, tool = ours["runtime"]["step settle"], ours["runtime"]["tool charge"]
    handle, authorise = ours["charger"]["handle settle"], ours["charger"]["authorise"]
    execute = ours["till"]["execute charge"]
    trace = ours["runtime"]["run charge"]["trace_id"]
    assert {s["trace_id"] for s in (handle, authorise, execute)} == {trace}
    assert handle["parent_id"] == step["span_id"]
    assert authorise["parent_id"] == handle["span_id"]
    assert execute["parent_id"] == tool["span_id"]
    assert handle["service"] == "baton-charger"
    assert execute["service"] == "baton-till"
    assert handle["attributes"] == {
        "baton.run_id": run_id,
        "baton.step": "settle",
        "baton.attempt": 1,
    }
    assert handle["status"] == execute["status"] == "UNSET"
    # OTLP's numbering: the runtime's spans are INTERNAL (1), the agents' SERVER (2).
    assert (step["kind"], handle["kind"], execute["kind"]) == (1, 2, 2)
    # Each process's clock, one machine: the remote spans fall inside the runtime's.
    assert step["start"] <= handle["start"] <= authorise["start"]
    assert authorise["end"] <= handle["end"] <= step["end"]
    assert tool["start"] <= execute["start"] <= execute["end"] <= tool["end"]


async def test_a_failed_attempt_is_an_error_span_on_the_agent_side(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    runtime, quick, traces = traced_quick(cluster, tmp_path)
    await completed_runs(runtime, "quick", {"n": 3})
    assert cluster.stop(quick) == 0
    cluster.stop(runtime.process)
    handled = sorted(
        (s for s in spans_in(traces["quick"]) if s["name"] == "handle one"),
        key=lambda s: s["attributes"]["baton.attempt"],
    )
    assert [s["attributes"]["baton.attempt"] for s in handled] == [1, 2]
    failed, retried = handled
    assert failed["status"] == "ERROR"
    assert "every third run's first try fails" in failed["message"]
    assert retried["status"] == "UNSET"
    runtime_spans = {
        (s["attributes"].get("baton.attempt"), s["name"]): s for s in spans_in(traces["runtime"])
    }
    for span in handled:
        attempt = span["attributes"]["baton.attempt"]
        assert span["parent_id"] == runtime_spans[attempt, "step one"]["span_id"]


async def test_a_sampled_share_of_runs_is_traced_whole_and_agents_follow(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """At --trace-sample 0.5 each run is in both files, whole, or in neither."""
    runtime, quick, traces = traced_quick(cluster, tmp_path, "--trace-sample", "0.5")
    runs = await completed_runs(runtime, "quick", *({"n": 1} for _ in range(24)))
    for process in (quick, runtime.process):
        assert cluster.stop(process) == 0
    sampler = TraceIdRatioBased(0.5)
    chosen = {
        run
        for run in runs
        if sampler.should_sample(None, trace_id(run), "run").decision.is_sampled()
    }
    assert 0 < len(chosen) < len(runs)  # each run id is random: 2 in 10⁷ fail here
    by_run: dict[str, set[str]] = {}
    for span in spans_in(traces["runtime"]):
        by_run.setdefault(span["attributes"]["baton.run_id"], set()).add(span["name"])
    assert by_run == {run: {"run quick", "step one", "step two"} for run in chosen}
    handled = {span["attributes"]["baton.run_id"] for span in spans_in(traces["quick"])}
    assert handled == chosen
