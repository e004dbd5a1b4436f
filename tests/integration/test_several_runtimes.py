"""Actors serving several supervisors: real runtimes and an agent process on loopback.

Each runtime has its own journal (`memory://`) and its own runs; one agent
process serves them all, whether it was given every endpoint or learned them
from the first runtime it reached.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT, completed_runs
from tests.integration.test_security import log_events, wait_for_log

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"
QUICK = f"{FLOWS}:Quick"
RUNS = [{"n": n} for n in range(1, 7)]
"""Six runs of `quick`: two of them fail their first try and are retried."""


def two_runtimes(group: ProcessGroup) -> list[RuntimeProcess]:
    """Two independent runtimes of the test workflows, each with a journal of its own."""
    return [
        group.start_runtime([f"{FLOWS}:ALL"], label=f"runtime-{name}", heartbeat=HEARTBEAT)
        for name in ("a", "b")
    ]


async def runs_complete_on(*runtimes: RuntimeProcess) -> None:
    """Runs started on each of `runtimes` at once all complete."""
    async with anyio.create_task_group() as tg:
        for runtime in runtimes:
            tg.start_soon(completed_runs, runtime, "quick", *RUNS)


class TestOneAgentSeveralRuntimes:
    async def test_runs_on_both_complete_and_survive_the_death_of_one(self, tmp_path: Path) -> None:
        """An agent given both endpoints completes the runs of each; once runtime A is
        killed, it goes on completing B's."""
        with ProcessGroup(tmp_path, keys=None) as group:
            a, b = two_runtimes(group)
            agent = group.start_actor(
                QUICK, a.agents, label="quick", concurrency=2, extra=["--connect", b.agents]
            )
            await runs_complete_on(a, b)
            a.process.kill()
            a.process.wait()
            await runs_complete_on(b)
            await wait_for_log(
                group,
                "quick",
                lambda e: e["event"] == "actor.runtime_lost" and e["endpoint"] == a.agents,
            )
            await runs_complete_on(b)
            assert agent.poll() is None, group.log_of("quick")
            registered = [e for e in log_events(group, "quick") if e["event"] == "actor.registered"]
            assert sorted({e["endpoint"] for e in registered}) == sorted([a.agents, b.agents])

    async def test_with_curve_both_runtimes_share_one_server_key(
        self, cluster: ProcessGroup
    ) -> None:
        """Two runtimes with the same key directory (one server key, one principal table)
        take the same agent, given both endpoints in one comma-separated `--connect`."""
        cluster.enroll("quick", "quick")
        a, b = two_runtimes(cluster)
        agent = cluster.start_actor(QUICK, f"{a.agents},{b.agents}", label="quick", concurrency=2)
        await runs_complete_on(a, b)
        assert agent.poll() is None, cluster.log_of("quick")
        sessions = {
            e["endpoint"]: e["session"]
            for e in log_events(cluster, "quick")
            if e["event"] == "actor.registered"
        }
        assert sessions == {a.agents: "quick", b.agents: "quick"}


class TestPeersLearned:
    async def test_an_agent_given_one_runtime_serves_the_peer_it_names(
        self, tmp_path: Path
    ) -> None:
        """Runtime A is started with B as its peer; an agent given A alone registers with B
        too, and B's runs, which no other agent serves, complete."""
        with ProcessGroup(tmp_path, keys=None) as group:
            b = group.start_runtime([f"{FLOWS}:ALL"], label="runtime-b", heartbeat=HEARTBEAT)
            a = group.start_runtime(
                [f"{FLOWS}:ALL"],
                label="runtime-a",
                heartbeat=HEARTBEAT,
                extra=["--peer", b.agents],
            )
            group.start_actor(QUICK, a.agents, label="quick", concurrency=2)
            await runs_complete_on(b, a)
            learned = await wait_for_log(
                group, "quick", lambda e: e["event"] == "actor.peer_learned"
            )
            assert (learned["endpoint"], learned["named_by"]) == (b.agents, a.agents)
