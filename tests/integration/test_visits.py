"""Every visit of a step is its own work, and a runtime restarted under slow tool calls
loses none of them: real runtimes, agents and a ledger tool host on loopback."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import pytest

from protocols import RunRecord
from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT
from tests.integration.revisions import ROUNDS, expected_effects

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

REVISIONS = "tests.integration.revisions"
SLOW = 2.0
"""Seconds each `apply_text` call takes: long enough for the runtime to die during it."""


def start_runtime(
    cluster: ProcessGroup, database: Path, like: RuntimeProcess | None = None
) -> RuntimeProcess:
    ports = {} if like is None else {"agents": like.agents, "control": like.control}
    return cluster.start_runtime(
        [f"{REVISIONS}:revision"],
        label="runtime" if like is None else "runtime-again",
        heartbeat=HEARTBEAT,
        store=f"sqlite:///{database}",
        **ports,
    )


def start_actors(cluster: ProcessGroup, runtime: RuntimeProcess, effects: Path) -> None:
    env = {"BATON_TEST_LEDGER": str(effects), "BATON_TEST_SLOW": str(SLOW)}
    cluster.start_actor(f"{REVISIONS}:Press", runtime.agents, concurrency=8, env=env)
    cluster.start_actor(f"{REVISIONS}:Drafter", runtime.agents, concurrency=4)
    cluster.start_actor(f"{REVISIONS}:Settler", runtime.agents, concurrency=16)


def enroll(cluster: ProcessGroup) -> None:
    cluster.enroll("press", "tools:press")
    cluster.enroll("drafter", "drafter")
    cluster.enroll("settler", "settler")


def applying(record: RunRecord) -> bool:
    """The run's slow `apply_text` call was forwarded to the host and not yet answered."""
    calls = [h for h in record.history if h.detail.get("tool") == "apply_text"]
    return [h.event for h in calls] == ["tool_called"]


async def test_a_step_a_loop_reaches_again_makes_its_effect_again(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """The second visit of `draft` publishes its own draft and records its own reply, where it
    used to get the first visit's reply from the host's ledger without publishing."""
    effects = tmp_path / "effects.txt"
    enroll(cluster)
    runtime = start_runtime(cluster, tmp_path / "journal.db")
    env = {"BATON_TEST_LEDGER": str(effects)}
    cluster.start_actor(f"{REVISIONS}:Press", runtime.agents, env=env)
    cluster.start_actor(f"{REVISIONS}:Drafter", runtime.agents)
    cluster.start_actor(f"{REVISIONS}:Settler", runtime.agents)
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("revision", {"topic": "tides", "round": 0})
        record, _ = await client.wait_run(run_id, max_wait=30)
    assert record.status == "completed", record.reason
    assert effects.read_text().splitlines() == expected_effects(run_id, "tides")
    assert record.data["text"] == f"tides draft {ROUNDS}"
    keys = [h.detail["idempotency_key"] for h in record.history if h.event == "tool_called"]
    assert keys == [
        f"{run_id}:draft:1:0",
        f"{run_id}:draft:2:0",
        f"{run_id}:settle:1:0",
    ]
    assert not [h for h in record.history if h.event == "tool_completed" and not h.detail["ok"]]


async def test_a_runtime_killed_during_slow_tool_calls_halts_no_run_whose_effect_happened(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """SIGKILL the runtime while the host runs slow calls at full concurrency, start it again:
    every run completes with its effect made exactly once. The repeats the agents send are
    answered when the host's first calls finish, and the host is not sent more than it has
    room for."""
    effects = tmp_path / "effects.txt"
    database = tmp_path / "journal.db"
    enroll(cluster)
    runtime = start_runtime(cluster, database)
    start_actors(cluster, runtime, effects)
    topics = [f"topic-{n}" for n in range(24)]
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        runs = {await client.start_run("revision", {"topic": t, "round": 0}): t for t in topics}
        with anyio.fail_after(30):
            while True:
                records = [await client.get_run(run_id) for run_id in runs]
                if sum(applying(r) for r in records) >= 6:
                    break
                await anyio.sleep(0.02)
    runtime.process.kill()
    runtime.process.wait()
    runtime = start_runtime(cluster, database, like=runtime)
    async with ControlClient(runtime.control, keys=runtime.operator, timeout=10) as client:
        outcomes = [await client.wait_run(run_id, max_wait=60) for run_id in runs]
    statuses = Counter(record.status for record, _ in outcomes)
    assert statuses == {"completed": len(runs)}, [
        (r.run_id, r.status, r.reason) for r, _ in outcomes if r.status != "completed"
    ]
    lines = effects.read_text().splitlines()
    assert Counter(lines) == Counter(
        line for run_id, topic in runs.items() for line in expected_effects(run_id, topic)
    )
