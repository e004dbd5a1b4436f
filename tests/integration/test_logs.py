"""What real processes write to their JSON logs: each line about a run names the run, step,
attempt, agent and principal it is about, at the level an operator filters on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime import ControlClient, ControlRefused
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT, completed_runs, wait_for
from tests.integration.test_checkpoints import as_, held, start

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


def lines_of(cluster: ProcessGroup, label: str) -> list[dict[str, Any]]:
    """The JSON lines of a child's log (a crash's traceback may sit between them)."""
    text = cluster.log_of(label)
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def events(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == name]


async def test_runtime_agent_and_tool_host_lines_are_bound_to_the_attempt(
    cluster: ProcessGroup,
) -> None:
    cluster.enroll("till", "tools:till")
    cluster.enroll("charger", "charger")
    cluster.enroll("quick", "quick")
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
    till = cluster.start_actor(f"{FLOWS}:Till", runtime.agents, label="till")
    charger = cluster.start_actor(f"{FLOWS}:Charger", runtime.agents)
    quick = cluster.start_actor(f"{FLOWS}:Quick", runtime.agents)
    (charged,) = await completed_runs(runtime, "charge", {"amount": 10})
    (flaky,) = await completed_runs(runtime, "quick", {"n": 3})
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        # No clerk is connected: the run waits until it is cancelled.
        stopped = await client.start_run("guarded", {"account": "a-1"})
        await client.cancel_run(stopped, "not today")
    for process in (charger, till, quick, runtime.process):
        assert cluster.stop(process) == 0

    ran = lines_of(cluster, "runtime")
    (failed,) = events(ran, "step.failed")
    assert failed["level"] == "warning"
    assert {k: failed[k] for k in ("run_id", "workflow", "step", "attempt", "agent")} == {
        "run_id": flaky,
        "workflow": "quick",
        "step": "one",
        "attempt": 1,
        "agent": "quick",
    }
    assert "every third run's first try fails" in failed["message"]
    (retry,) = events(ran, "retry.scheduled")
    assert (retry["level"], retry["run_id"], retry["step"]) == ("info", flaky, "one")
    # Routine progress is debug, below the default level: not in the log.
    assert events(ran, "step.completed") == []
    # A run that completes is routine too; one a person cancelled is not.
    (ended,) = events(ran, "run.ended")
    assert (ended["level"], ended["run_id"], ended["status"]) == ("info", stopped, "cancelled")

    (charging,) = events(lines_of(cluster, "Charger"), "charger.charging")
    # `session` is the name the runtime's record gives the agent; `agent` its own.
    assert {k: charging[k] for k in ("run_id", "step", "attempt", "session", "role")} == {
        "run_id": charged,
        "step": "settle",
        "attempt": 1,
        "session": "charger",
        "role": "charger",
    }
    assert charging["agent"].startswith("charger-")
    assert charging["amount"] == 10
    (executed,) = events(lines_of(cluster, "till"), "tool.executed")
    assert {k: executed[k] for k in ("run_id", "step", "attempt", "tool", "ok")} == {
        "run_id": charged,
        "step": "settle",
        "attempt": 1,
        "tool": "charge",
        "ok": True,
    }


async def test_decisions_and_refusals_name_the_principal(cluster: ProcessGroup) -> None:
    runtime = start(cluster)
    async with as_(cluster, runtime, "boss") as boss:
        run_id = await boss.start_run("spend", {"amount": 500})
        shown = await held(boss, run_id)
    async with as_(cluster, runtime, "legal") as legal:
        with pytest.raises(ControlRefused):
            await legal.decide(shown, "approve")
    async with as_(cluster, runtime, "fin") as fin:
        await fin.decide(shown, "approve", comment="within budget")
    async with as_(cluster, runtime, "boss") as boss:
        record, _ = await boss.wait_run(run_id, max_wait=20)
    assert record.status == "completed"
    assert cluster.stop(runtime.process) == 0

    ran = [line for line in lines_of(cluster, "runtime") if line.get("run_id") == run_id]
    (opened,) = events(ran, "checkpoint.opened")
    assert (opened["level"], opened["step"]) == ("info", "spend")
    (refused,) = events(ran, "request.refused")
    assert (refused["level"], refused["principal"]) == ("warning", "legal")
    (made,) = events(ran, "decision.made")
    assert (made["level"], made["principal"], made["step"]) == ("info", "fin", "spend")
    assert made["message"].startswith("approve: within budget")
    # In the order the history has them.
    assert opened["seq"] < refused["seq"] < made["seq"]


async def test_a_restart_logs_each_run_it_takes_up(cluster: ProcessGroup, tmp_path: Path) -> None:
    """Each run a restarted runtime takes up is a line of its own, as is a run parked for
    having been taken up too often, and the operator who lets it carry on."""
    store = f"sqlite:///{tmp_path / 'journal.db'}"

    def restarted(label: str) -> RuntimeProcess:
        return cluster.start_runtime(
            [f"{FLOWS}:ALL"], label=label, store=store, heartbeat=HEARTBEAT,
            extra=["--recovery-budget", "1"],
        )  # fmt: skip

    first = restarted("runtime-1")
    async with ControlClient(first.control, keys=first.operator) as client:
        # Held at its checkpoint: in flight with no agent connected.
        run_id = await client.start_run("spend", {"amount": 500})
        await wait_for(client, run_id, lambda r: bool(r.pending))
    killed(first)
    killed(restarted("runtime-2"))
    third = restarted("runtime-3")
    async with ControlClient(third.control, keys=third.operator) as client:
        assert (await client.resume_run(run_id)).status == "waiting"
    assert cluster.stop(third.process) == 0

    (recovered,) = events(lines_of(cluster, "runtime-2"), "run.recovered")
    assert {k: recovered[k] for k in ("level", "run_id", "workflow")} == {
        "level": "info",
        "run_id": run_id,
        "workflow": "spend",
    }
    ran = lines_of(cluster, "runtime-3")
    assert events(ran, "run.recovered") == []
    (stuck,) = events(ran, "run.stuck")
    assert (stuck["level"], stuck["run_id"]) == ("warning", run_id)
    assert "restarted 2 times in a row" in stuck["message"]
    (resumed,) = events(ran, "run.resumed")
    assert {k: resumed[k] for k in ("level", "run_id", "workflow", "principal")} == {
        "level": "info",
        "run_id": run_id,
        "workflow": "spend",
        "principal": "operator",
    }


def killed(runtime: RuntimeProcess) -> None:
    runtime.process.kill()
    runtime.process.wait()
