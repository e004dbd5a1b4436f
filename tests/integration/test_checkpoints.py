"""Human checkpoints with real processes: who may decide, what they saw, and durability.

Every refused decision leaves the run waiting and is in its history with the principal;
a run waiting for a person survives a runtime killed and started again.
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

from protocols import PendingDecision
from runtime import ControlClient, ControlRefused
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT, REPO, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


def start(cluster: ProcessGroup, store: str = "memory://") -> RuntimeProcess:
    """The test flows, a spender, a finisher, a fragile agent, and the people who decide."""
    cluster.enroll("spender", "spender")
    cluster.enroll("finisher", "finisher")
    cluster.enroll("fragile", "fragile")
    cluster.enroll("fin", "approver:finance")
    cluster.enroll("fin-2", "approver:finance")
    cluster.enroll("cfo", "approver:cfo")
    cluster.enroll("ops", "approver:ops")
    cluster.enroll("legal", "approver:legal")
    cluster.enroll("boss", "operator", "approver:finance")
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT, store=store)
    for agent in ("Spender", "Finisher", "Fragile"):
        cluster.start_actor(f"{FLOWS}:{agent}", runtime.agents)
    return runtime


def as_(cluster: ProcessGroup, runtime: RuntimeProcess, principal: str) -> ControlClient:
    return ControlClient(runtime.control, keys=cluster.keys_of(principal))


async def held(client: ControlClient, run_id: str) -> PendingDecision:
    record = await wait_for(client, run_id, lambda r: bool(r.pending))
    (pending,) = record.pending
    return pending


def baton(cluster: ProcessGroup, runtime: RuntimeProcess, principal: str, *args: str) -> Any:
    assert cluster.keys is not None
    done = subprocess.run(
        [sys.executable, "-m", "runtime", *args, "--control", runtime.control, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "BATON_KEYS": str(cluster.keys), "BATON_PRINCIPAL": principal},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class TestAuthority:
    async def test_only_an_approver_of_the_group_other_than_the_starter_decides_once(
        self, cluster: ProcessGroup
    ) -> None:
        """Another group, the starter under separation of duties, a stale version: refused,
        the run still waits, each refusal in its history. Then one decision, and a second
        one refused."""
        runtime = start(cluster)
        async with as_(cluster, runtime, "boss") as boss:
            run_id = await boss.start_run("spend", {"amount": 500})
            shown = await held(boss, run_id)
            assert shown.reviewed == {"amount": 500}
            with pytest.raises(ControlRefused) as own:
                await boss.decide(shown, "approve")
            assert own.value.code == "unauthorized"
            assert "separation of duties" in own.value.message
        async with as_(cluster, runtime, "legal") as legal:
            with pytest.raises(ControlRefused) as outsider:
                await legal.decide(shown, "approve")
            assert outsider.value.code == "unauthorized"
            assert await legal.pending() == []
        async with as_(cluster, runtime, "fin") as fin:
            stale = PendingDecision(**{**_fields(shown), "digest": "0" * 20})
            with pytest.raises(ControlRefused) as old:
                await fin.decide(stale, "approve")
            assert old.value.code == "stale"
            record = await fin.decide(shown, "approve", comment="within budget")
            with pytest.raises(ControlRefused) as again:
                await fin.decide(shown, "approve")
            assert again.value.code == "wrong_state"
        async with as_(cluster, runtime, "boss") as boss:
            final, timed_out = await boss.wait_run(run_id, max_wait=20)
        assert record.steps["spend"].status in ("queued", "running", "completed")
        assert [h.event for h in record.history].count("refused") == 3
        assert not timed_out
        assert final.status == "completed"
        refused = [(h.principal, h.detail["code"]) for h in final.history if h.event == "refused"]
        assert refused == [
            ("boss", "unauthorized"),
            ("legal", "unauthorized"),
            ("fin", "stale"),
            ("fin", "wrong_state"),
        ]
        (made,) = [h for h in final.history if h.event == "decision_made"]
        assert made.principal == "fin"
        assert made.message.startswith("approve: within budget (shown version ")
        assert made.detail["digest"] == shown.digest
        assert made.detail["version"] <= made.seq

    async def test_two_approvers_racing_make_one_decision(self, cluster: ProcessGroup) -> None:
        runtime = start(cluster)
        async with as_(cluster, runtime, "boss") as boss:
            run_id = await boss.start_run("spend", {"amount": 700})
            shown = await held(boss, run_id)
        outcomes: list[str] = []

        async def decide(principal: str, decision: Any) -> None:
            async with as_(cluster, runtime, principal) as client:
                try:
                    await client.decide(shown, decision)
                    outcomes.append(f"{principal}: {decision}")
                except ControlRefused as exc:
                    outcomes.append(f"{principal}: {exc.code}")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(decide, "fin", "approve")
            tasks.start_soon(decide, "fin-2", "reject")
        async with as_(cluster, runtime, "boss") as boss:
            final, _ = await boss.wait_run(run_id, max_wait=20)
        made = [h for h in final.history if h.event == "decision_made"]
        assert len(made) == 1
        assert sorted(o.split(": ")[1] for o in outcomes) in (
            ["approve", "wrong_state"],
            ["reject", "wrong_state"],
        )
        decided = made[0].detail["decision"]
        assert final.status == ("completed" if decided == "approve" else "halted")


class TestDurable:
    async def test_a_run_waits_through_a_runtime_killed_and_is_decided_after(
        self, cluster: ProcessGroup, tmp_path: Path
    ) -> None:
        database = tmp_path / "journal.db"
        runtime = start(cluster, store=f"sqlite:///{database}")
        async with as_(cluster, runtime, "boss") as boss:
            run_id = await boss.start_run("spend", {"amount": 900})
            shown = await held(boss, run_id)
        runtime.process.kill()
        runtime.process.wait()
        again = cluster.start_runtime(
            [f"{FLOWS}:ALL"],
            label="runtime-2",
            heartbeat=HEARTBEAT,
            store=f"sqlite:///{database}",
            agents=runtime.agents,
            control=runtime.control,
        )
        async with as_(cluster, again, "fin") as fin:
            (still,) = await fin.pending()
            assert (still.digest, still.reviewed) == (shown.digest, shown.reviewed)
            await fin.decide(still, "approve")
        async with as_(cluster, again, "boss") as boss:
            final, timed_out = await boss.wait_run(run_id, max_wait=20)
        assert not timed_out
        assert final.status == "completed"
        assert final.data["receipt"] == "spent 900"

    async def test_unanswered_it_escalates_to_the_next_group(self, cluster: ProcessGroup) -> None:
        runtime = start(cluster)
        async with as_(cluster, runtime, "boss") as boss:
            run_id = await boss.start_run("spend_timed", {"amount": 300})
            first = await held(boss, run_id)
            assert first.approvers == ["finance"]
            record = await wait_for(
                boss, run_id, lambda r: bool(r.pending) and r.pending[0].approvers == ["cfo"]
            )
        (escalated,) = record.pending
        async with as_(cluster, runtime, "fin") as fin:
            assert await fin.pending() == []
            with pytest.raises(ControlRefused) as late:
                await fin.decide(escalated, "approve")
            assert late.value.code == "unauthorized"
        async with as_(cluster, runtime, "cfo") as cfo:
            await cfo.decide(escalated, "reject", comment="not this quarter")
        async with as_(cluster, runtime, "boss") as boss:
            final, _ = await boss.wait_run(run_id, max_wait=20)
        assert final.status == "halted"
        assert "rejected by cfo: not this quarter" in final.reason
        events = [h.event for h in final.history]
        assert events.index("decision_escalated") < events.index("decision_made")


class TestCommandLine:
    async def test_inbox_approve_with_an_edit_and_escalation(self, cluster: ProcessGroup) -> None:
        """What a person types: the inbox, an approval that edits the value under review,
        and a failed step passed with the value given."""
        runtime = start(cluster)
        async with as_(cluster, runtime, "boss") as boss:
            spend_id = await boss.start_run("spend", {"amount": 250})
            fragile_id = await boss.start_run("fragile", {})
            await held(boss, spend_id)
            await held(boss, fragile_id)
        inbox = baton(cluster, runtime, "fin", "inbox")
        assert [(p["run_id"], p["step"]) for p in inbox] == [(spend_id, "spend")]
        approved = baton(
            cluster, runtime, "fin", "approve", spend_id, "spend", "--edit", "amount=200",
            "--comment", "capped at 200",
        )  # fmt: skip
        assert approved["provenance"]["amount"]["edited_by"] == "fin"
        skipped = baton(
            cluster, runtime, "ops", "escalation", fragile_id, "try", "skip", "--edit", "x=42"
        )
        assert skipped["data"]["x"] == 42
        async with as_(cluster, runtime, "boss") as boss:
            spent, _ = await boss.wait_run(spend_id, max_wait=20)
            passed, _ = await boss.wait_run(fragile_id, max_wait=20)
        assert spent.status == "completed"
        assert spent.data["receipt"] == "spent 200"
        assert passed.status == "completed"
        assert passed.provenance["x"].edited_by == "ops"


def _fields(pending: PendingDecision) -> dict[str, Any]:
    return {f: getattr(pending, f) for f in pending.__struct_fields__}
