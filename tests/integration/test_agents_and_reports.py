"""What a page reads of a real runtime: the agents connected with their roles' load, and a
workflow's report, the same figures `baton report` reads from the journal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import msgspec
import pytest

from protocols import AgentsReply
from runtime import ControlClient, ControlRefused
from runtime.launch import ProcessGroup
from tests.integration.conftest import HEARTBEAT, REPO, completed_runs

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


async def agents_once(
    client: ControlClient, condition: Callable[[AgentsReply], bool], *, limit: float = 20.0
) -> AgentsReply:
    """The runtime's agents once `condition` holds of them (polled), failing after `limit`."""
    with anyio.fail_after(limit):
        while True:
            found = await client.agents()
            if condition(found):
                return found
            await anyio.sleep(0.02)


def journal_report(journal: Path, workflow: str) -> dict[str, object]:
    """What `baton report --json` reads from the runtime's journal file."""
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "report", "--store", f"sqlite:///{journal}",
         "-w", f"{FLOWS}:{workflow}", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (figures,) = json.loads(done.stdout)
    return dict(figures)


async def test_agents_and_report_of_a_live_runtime(cluster: ProcessGroup, tmp_path: Path) -> None:
    """Two agents of a role are listed with their capacity and the role's sum; a killed one's
    entry goes; the report of the runs equals the one read from the journal; a viewer may
    ask, an agent's key may not."""
    cluster.enroll("quick-1", "quick")
    cluster.enroll("quick-2", "quick")
    cluster.enroll("watcher", "viewer")
    journal = tmp_path / "journal.db"
    runtime = cluster.start_runtime(
        [f"{FLOWS}:quick"], store=f"sqlite:///{journal}", heartbeat=HEARTBEAT
    )
    cluster.start_actor(f"{FLOWS}:Quick", runtime.agents, principal="quick-1", concurrency=2)
    second = cluster.start_actor(
        f"{FLOWS}:Quick", runtime.agents, principal="quick-2", concurrency=3
    )
    async with ControlClient(runtime.control, keys=cluster.keys_of("watcher")) as viewer:
        found = await agents_once(viewer, lambda a: len(a.agents) == 2)
        assert [(a.name, a.role, a.kind, a.principal, a.capacity) for a in found.agents] == [
            ("quick-1", "quick", "agent", "quick-1", 2),
            ("quick-2", "quick", "agent", "quick-2", 3),
        ]
        assert all(a.connected_at > 0 for a in found.agents)
        (role,) = found.roles
        assert (role.role, role.instances, role.capacity, role.queued) == ("quick", 2, 5, 0)
        assert not role.crash_looping

        await completed_runs(runtime, "quick", *({"n": n} for n in range(6)))
        figures = await viewer.report("quick")
        assert figures.runs == 6
        assert figures.outcomes == {"completed": 6}
        assert json.loads(msgspec.json.encode(figures)) == journal_report(journal, "quick")
        assert (await viewer.report("quick", since=time.time() + 3600)).runs == 0

        second.kill()
        second.wait()
        found = await agents_once(viewer, lambda a: len(a.agents) == 1)
        assert [a.name for a in found.agents] == ["quick-1"]
        (role,) = found.roles
        assert (role.instances, role.capacity) == (1, 2)

        with pytest.raises(ControlRefused) as refused:
            await viewer.report("nope")
        assert refused.value.code == "unknown_workflow"

    async with ControlClient(runtime.control, keys=cluster.keys_of("quick-1")) as agent_key:
        for ask in (agent_key.agents, lambda: agent_key.report("quick")):
            with pytest.raises(ControlRefused) as refused:
                await ask()
            assert refused.value.code == "unauthorized"
            assert "it needs role 'operator' or 'viewer'" in refused.value.message


async def test_a_key_the_runtime_does_not_know_is_refused(cluster: ProcessGroup) -> None:
    """A principal enrolled after the runtime took in its principals gets `unauthorized` for
    either read, at once."""
    runtime = cluster.start_runtime([f"{FLOWS}:quick"], heartbeat=HEARTBEAT)
    cluster.enroll("latecomer", "viewer")
    keys = cluster.keys_of("latecomer")
    with anyio.fail_after(5):
        async with ControlClient(runtime.control, keys=keys, timeout=30) as stranger:
            with pytest.raises(ControlRefused) as refused:
                await stranger.agents()
            assert refused.value.code == "unauthorized"
        async with ControlClient(runtime.control, keys=keys, timeout=30) as stranger:
            with pytest.raises(ControlRefused) as refused:
                await stranger.report("quick")
            assert refused.value.code == "unauthorized"
