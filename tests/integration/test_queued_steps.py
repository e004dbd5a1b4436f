"""A step queued for an agent, as `baton inspect` and `baton runs` show it over the
control plane: waiting for an agent only while none of its role is connected."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup
from tests.integration.conftest import HEARTBEAT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


async def test_a_step_queued_behind_a_busy_agent_is_running_not_waiting_for_an_agent(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """Before any agent of its role connects, a run waits for one; once one is connected
    and busy, the next run's step is queued and the run is running, waiting for nothing."""
    gate = tmp_path / "gate"
    cluster.enroll("gated", "gated")
    cluster.enroll("finisher", "finisher")
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        first = await client.start_run("gated", {"n": 1})
        alone = await client.get_run(first)
        assert (alone.status, alone.waiting_for) == (
            "waiting",
            "an agent of role 'gated' for step 'hold'",
        )
        cluster.start_actor(f"{FLOWS}:Gated", runtime.agents, env={"BATON_TEST_GATE": str(gate)})
        await wait_for(client, first, lambda r: r.steps["hold"].status == "running")
        second = await client.start_run("gated", {"n": 2})
        behind = await client.get_run(second)
        assert behind.steps["hold"].status == "queued"
        assert (behind.status, behind.waiting_for) == ("running", "")
        (line,) = [s for s in await client.list_runs(workflow="gated") if s.run_id == second]
        assert (line.status, line.reason) == ("running", "")
        gate.touch()
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        for run_id in (first, second):
            record, _ = await client.wait_run(run_id, max_wait=30)
            assert record.status == "completed", record.reason
