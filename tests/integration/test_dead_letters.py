"""Runs that cannot make progress by themselves: visibly stuck with a reason, and operable.

A run of a workflow version the runtime no longer loads, a run that keeps being taken up
by runtimes that die, and a role whose agents keep dying: none is lost, none loops, and
an operator can resume or cancel what waits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from protocols import TERMINAL_STATUSES
from runtime import ControlClient, ControlRefused
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT, REPO, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


def restart(
    cluster: ProcessGroup,
    database: Path,
    workflows: list[str],
    *,
    label: str,
    like: RuntimeProcess | None = None,
    extra: tuple[str, ...] = (),
) -> RuntimeProcess:
    ports = {} if like is None else {"agents": like.agents, "control": like.control}
    return cluster.start_runtime(
        workflows,
        label=label,
        heartbeat=HEARTBEAT,
        store=f"sqlite:///{database}",
        extra=extra,
        **ports,
    )


def killed(runtime: RuntimeProcess) -> None:
    runtime.process.kill()
    runtime.process.wait()


def baton(cluster: ProcessGroup, runtime: RuntimeProcess, *args: str) -> Any:
    """A `baton` command as a user types it, with --json; its parsed output."""
    assert cluster.keys is not None
    done = subprocess.run(
        [sys.executable, "-m", "runtime", *args, "--control", runtime.control],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "BATON_KEYS": str(cluster.keys)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file whose existence lets the `gated` agent finish its step."""
    path = tmp_path / "gate"
    monkeypatch.setenv("BATON_TEST_GATE", str(path))
    return path


class TestGraphVersions:
    async def test_a_run_of_an_unloaded_version_waits_visibly_then_finishes_on_it(
        self, cluster: ProcessGroup, tmp_path: Path, gate: Path
    ) -> None:
        """Runs of `gated` version 1 meet a runtime that loads only version 2: they are stuck,
        saying what to load; one is cancelled; new runs start on version 2; a runtime that
        loads version 1 with --previous lets the other finish on version 1."""
        database = tmp_path / "journal.db"
        cluster.enroll("gated", "gated")
        cluster.enroll("finisher", "finisher")
        first = restart(cluster, database, [f"{FLOWS}:ALL"], label="runtime-1")
        cluster.start_actor(f"{FLOWS}:Gated", first.agents, concurrency=4)
        cluster.start_actor(f"{FLOWS}:Finisher", first.agents)
        async with ControlClient(first.control, keys=first.operator) as client:
            kept = await client.start_run("gated", {"n": 1})
            dropped = await client.start_run("gated", {"n": 2})
            for run_id in (kept, dropped):
                await wait_for(client, run_id, lambda r: r.steps["hold"].status == "running")
        killed(first)

        second = restart(cluster, database, [f"{FLOWS}:ALL_V2"], label="runtime-2", like=first)
        async with ControlClient(second.control, keys=second.operator) as client:
            stuck = await client.list_runs(status="stuck")
            assert {s.run_id for s in stuck} == {kept, dropped}
            assert all("version '1'" in s.reason and "--previous" in s.reason for s in stuck)
            with pytest.raises(ControlRefused) as refused:
                await client.resume_run(kept)
            assert refused.value.code == "wrong_state"
            assert "cannot be resumed by this runtime" in refused.value.message
            cancelled = await client.cancel_run(dropped, reason="superseded by version 2")
            assert (cancelled.status, cancelled.reason) == ("cancelled", "superseded by version 2")
            record = await client.get_run(kept)
            assert (record.status, record.version) == ("stuck", "1")
            assert [h.event for h in record.history][:2] == ["run_started", "step_dispatched"]
            fresh = await client.start_run("gated", {"n": 3})
            assert (await client.get_run(fresh)).version == "2"
        cluster.stop(second.process)

        third = restart(
            cluster,
            database,
            [f"{FLOWS}:ALL_V2"],
            label="runtime-3",
            like=first,
            extra=("--previous", f"{FLOWS}:gated"),
        )
        await anyio.Path(gate).touch()
        async with ControlClient(third.control, keys=third.operator) as client:
            finished, timed_out = await client.wait_run(kept, max_wait=30)
            newer, newer_timed_out = await client.wait_run(fresh, max_wait=30)
            gone = await client.get_run(dropped)
        assert not timed_out
        assert (finished.status, finished.version) == ("completed", "1")
        assert finished.data["done"] is True
        assert not newer_timed_out
        assert (newer.status, newer.version) == ("completed", "2")
        assert (gone.status, gone.reason) == ("cancelled", "superseded by version 2")
        cancel = next(h for h in gone.history if h.event == "run_cancelled")
        assert cancel.principal == "operator"


class TestRecoveryBudget:
    async def test_a_run_taken_up_too_often_is_parked_then_resumed_by_an_operator(
        self, cluster: ProcessGroup, tmp_path: Path, gate: Path
    ) -> None:
        """With a budget of one recovery without progress, the second restart parks the run
        as stuck; `baton resume` lets it finish."""
        database = tmp_path / "journal.db"
        budget = ("--recovery-budget", "1")
        cluster.enroll("gated", "gated")
        cluster.enroll("finisher", "finisher")
        first = restart(cluster, database, [f"{FLOWS}:ALL"], label="runtime-1", extra=budget)
        cluster.start_actor(f"{FLOWS}:Gated", first.agents, concurrency=4)
        cluster.start_actor(f"{FLOWS}:Finisher", first.agents)
        async with ControlClient(first.control, keys=first.operator) as client:
            run_id = await client.start_run("gated", {"n": 5})
            await wait_for(client, run_id, lambda r: r.steps["hold"].status == "running")
        killed(first)
        second = restart(
            cluster, database, [f"{FLOWS}:ALL"], label="runtime-2", like=first, extra=budget
        )
        async with ControlClient(second.control, keys=second.operator) as client:
            record = await client.get_run(run_id)
            assert record.status != "stuck"
            await wait_for(client, run_id, lambda r: r.steps["hold"].status == "running")
        killed(second)
        third = restart(
            cluster, database, [f"{FLOWS}:ALL"], label="runtime-3", like=first, extra=budget
        )
        listed = baton(cluster, third, "runs", "--status", "stuck", "--json")
        assert [r["run_id"] for r in listed] == [run_id]
        assert "restarted 2 times in a row" in listed[0]["reason"]
        resumed = baton(cluster, third, "resume", run_id, "--json")
        assert resumed["status"] in ("running", "waiting")
        await anyio.Path(gate).touch()
        async with ControlClient(third.control, keys=third.operator) as client:
            record, timed_out = await client.wait_run(run_id, max_wait=30)
        assert not timed_out
        assert record.status == "completed"
        events = [(h.event, h.principal) for h in record.history]
        assert ("run_stuck", "") in events
        assert ("run_resumed", "operator") in events


class TestRestartBudget:
    async def test_a_role_whose_agents_keep_dying_stops_taking_attempts(
        self, cluster: ProcessGroup, tmp_path: Path
    ) -> None:
        """Each `doomed` agent dies on the attempt it takes, and is restarted, as a process
        manager would. With a budget of 2 lost instances, the third loss makes the role
        crash-looping: the step's remaining attempts fail at once, and no more agents die."""
        cluster.enroll("doomed", "doomed")
        runtime = cluster.start_runtime(
            [f"{FLOWS}:ALL"],
            heartbeat=HEARTBEAT,
            extra=["--restart-budget", "2", "--restart-window", "60"],
        )
        died = 0
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("doomed", {})
            for n in range(6):
                agent = cluster.start_actor(f"{FLOWS}:Crasher", runtime.agents, label=f"doomed-{n}")
                with anyio.fail_after(30):
                    while agent.poll() is None:
                        if (await client.get_run(run_id)).status in TERMINAL_STATUSES:
                            break
                        await anyio.sleep(0.05)
                if agent.poll() is None:
                    break
                assert agent.returncode == 3
                died += 1
            record, timed_out = await client.wait_run(run_id, max_wait=30)
        assert not timed_out
        assert record.status == "halted"
        assert died == 3
        attempts = record.steps["try"].attempts
        assert len(attempts) == 6
        assert all(a.failure == "agent_lost" for a in attempts)
        assert all("was lost" in a.message for a in attempts[:3])
        assert all("crash-looping" in a.message for a in attempts[3:])
        lines = [json.loads(x) for x in cluster.log_of("runtime").splitlines() if x[:1] == "{"]
        looping = [x for x in lines if x["event"] == "role.crash_looping"]
        assert [(x["role"], x["lost"]) for x in looping] == [("doomed", 3)]
