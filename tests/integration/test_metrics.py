"""Prometheus metrics served by a real runtime, scraped over HTTP while runs go through."""

from __future__ import annotations

import urllib.request

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


def scrape(runtime: RuntimeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the endpoint serves, by name and labels."""
    assert runtime.metrics is not None
    assert runtime.metrics.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(runtime.metrics, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def run_many(runtime: RuntimeProcess, count: int) -> None:
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        ids = [await client.start_run("quick", {"n": n}) for n in range(count)]
        for run_id in ids:
            summary = await client.wait_outcome(run_id, max_wait=30)
            assert summary.status == "completed"


async def test_workflow_figures_with_bounded_labels(cluster: ProcessGroup) -> None:
    cluster.enroll("quick", "quick")
    runtime = cluster.start_runtime(
        [f"{FLOWS}:ALL"], heartbeat=HEARTBEAT, extra=["--metrics-port", "0"]
    )
    cluster.start_actor(f"{FLOWS}:Quick", runtime.agents, concurrency=8)
    await run_many(runtime, 30)
    first = scrape(runtime)
    wf = ("workflow", "quick")
    assert first[("baton_runs_started_total", (wf,))] == 30
    assert first[("baton_runs_ended_total", (("status", "completed"), wf))] == 30
    failed = (("failure", "error"), ("outcome", "failed"), ("step", "one"), wf)
    assert first[("baton_step_attempts_total", failed)] == 10
    succeeded = (("failure", ""), ("outcome", "succeeded"), ("step", "one"), wf)
    assert first[("baton_step_attempts_total", succeeded)] == 30
    assert first[("baton_step_duration_seconds_count", (("step", "two"), wf))] == 30
    # Gauges are sampled by the runtime each heartbeat: a sample taken after the runs ended
    # shows the agent connected and none running.
    agents, active = ("baton_agents", (("role", "quick"),)), ("baton_active_runs", ())
    with anyio.fail_after(20 * HEARTBEAT):
        while True:
            gauges = scrape(runtime)
            if (gauges.get(agents), gauges.get(active)) == (1, 0):
                break
            await anyio.sleep(HEARTBEAT / 4)

    await run_many(runtime, 1_000)
    after = scrape(runtime)
    assert after[("baton_runs_started_total", (wf,))] == 1_030
    assert set(after) - set(gauges) == set(), "a label set grew with the runs"
    assert not any(value.startswith("1a") for _, labels in after for _, value in labels), (
        "a run id became a label"
    )
