"""The runtime, agents and tool hosts as separate processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
import zmq.asyncio

from protocols import (
    ControlError,
    Error,
    actor_side_codec,
    client_side_control_codec,
)
from runtime import ControlClient, ControlRefused, compile_workflow
from runtime.engine._events import JournalEvent
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.planes._views import record_view
from runtime.store import JournalRecord, replay
from runtime.workflow._catalog import Catalog
from tests.integration.conftest import HEARTBEAT, wait_for
from tests.integration.flows import ALL

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

EXAMPLE = "examples.customer_ops:workflow"
AGENTS = "examples.customer_ops.agents"
FLOWS = "tests.integration.flows"


EXAMPLE_ROLES = ("classifier", "billing", "history", "policy", "checker", "sender")


def start_example(cluster: ProcessGroup, *, writers: int = 2) -> RuntimeProcess:
    """The example's runtime and actors, and `fin`, an approver of group finance."""
    cluster.enroll("fin", "approver:finance")
    cluster.enroll("backoffice", "tools:backoffice")
    for role in EXAMPLE_ROLES:
        cluster.enroll(role, role)
    for n in range(writers):
        cluster.enroll(f"writer-{n}", "writer")
    runtime = cluster.start_runtime([EXAMPLE], heartbeat=HEARTBEAT)
    cluster.start_actor(
        "examples.customer_ops.backoffice:Backoffice", runtime.agents, concurrency=4
    )
    for name in ("Classifier", "BillingAgent", "HistoryAgent", "PolicyAgent", "Checker", "Sender"):
        cluster.start_actor(f"{AGENTS}:{name}", runtime.agents)
    for n in range(writers):
        cluster.start_actor(f"{AGENTS}:Writer", runtime.agents, principal=f"writer-{n}")
    return runtime


def start_flows(cluster: ProcessGroup, *roles: str, store: str = "memory://") -> RuntimeProcess:
    """A runtime of the test flows, with a principal for each of `roles` (named after it)."""
    for role in roles:
        cluster.enroll(role, role)
    return cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT, store=store)


def request(customer: str, text: str) -> dict[str, Any]:
    return {"request": {"customer_id": customer, "name": "Ada", "text": text}}


def history_index(record: Any, event: str, step: str) -> int:
    return next(i for i, h in enumerate(record.history) if h.event == event and h.step == step)


class TestExampleWorkflow:
    """The customer-operations example, run by its agents as processes."""

    async def test_billing_request_completes_with_full_provenance(
        self, cluster: ProcessGroup
    ) -> None:
        """Every key written by a step names its agent, rationale and confidence; the refund,
        over the example's limit, waits for an approver of group finance, who is recorded."""
        runtime = start_example(cluster)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("customer_ops", request("c-100", "charged twice"))
            held = await wait_for(client, run_id, lambda r: bool(r.pending))
            assert held.status == "waiting"
            assert held.steps["policy"].status == "awaiting_decision"
            assert "decision" not in held.data
            async with ControlClient(runtime.control, keys=cluster.keys_of("fin")) as approver:
                (shown,) = await approver.pending()
                assert shown.reviewed == {"decision": {"action": "refund", "amount": 1999}}
                await approver.decide(shown, "approve", comment="duplicate charge confirmed")
            record, timed_out = await client.wait_run(run_id, max_wait=30)
        assert not timed_out
        assert record.status == "completed"
        assert record.data["decision"] == {"action": "refund", "amount": 1999}
        assert record.provenance["decision"].approved_by == "fin"
        (made,) = [h for h in record.history if h.event == "decision_made"]
        assert (made.principal, made.detail["digest"]) == ("fin", shown.digest)
        written = set(record.data) - {"request"}
        assert set(record.provenance) == written | {"request"}
        for key, prov in record.provenance.items():
            assert prov.agent or key == "request", key
            assert prov.rationale, key
            assert 0 < prov.confidence <= 1, key
        assert record.fingerprint
        assert record.workflow == "customer_ops"

    async def test_fan_out_joins_before_policy(self, cluster: ProcessGroup) -> None:
        """Billing lookup and account history both finish before the policy step is dispatched."""
        runtime = start_example(cluster)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("customer_ops", request("c-200", "invoice question"))
            record, _ = await client.wait_run(run_id, max_wait=30)
        policy = history_index(record, "step_dispatched", "policy")
        assert history_index(record, "step_succeeded", "billing_lookup") < policy
        assert history_index(record, "step_succeeded", "account_history") < policy
        assert record.steps["policy"].visits == 1
        assert record.steps["general_answer"].status == "skipped"

    async def test_branch_skips_the_billing_side(self, cluster: ProcessGroup) -> None:
        """A general request takes the default route; the billing branch is skipped."""
        runtime = start_example(cluster)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("customer_ops", request("c-300", "change password"))
            record, _ = await client.wait_run(run_id, max_wait=30)
        assert record.status == "completed"
        for step in ("billing_lookup", "account_history", "policy"):
            assert record.steps[step].status == "skipped"
        assert record.provenance["decision"].step == "general_answer"

    async def test_exhausted_retries_proceed_with_a_flag_that_travels(
        self, cluster: ProcessGroup
    ) -> None:
        """The history step fails twice, writes its default, and the flag reaches the reply."""
        runtime = start_example(cluster)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("customer_ops", request("c-404", "charged twice"))
            record, _ = await client.wait_run(run_id, max_wait=30)
        flag = "account history unavailable: decided without it"
        assert record.status == "completed"
        assert record.steps["account_history"].status == "flagged"
        assert [a.outcome for a in record.steps["account_history"].attempts] == ["failed", "failed"]
        assert record.data["history"] == []
        for key in ("history", "decision", "draft", "message_id"):
            assert flag in record.flags[key], key
        assert "invoices" not in record.flags


class TestPolicies:
    """Failure policies with real agents."""

    async def test_retry_then_success(self, cluster: ProcessGroup) -> None:
        """A failed first attempt is retried and the run completes."""
        runtime = start_flows(cluster, "flaky", "finisher")
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("flaky", {"n": 21})
            outcome = await client.wait_outcome(run_id, max_wait=30)
            record = await client.get_run(run_id)
        assert (outcome.run_id, outcome.status) == (run_id, "completed")
        assert record.status == "completed"
        attempts = record.steps["wobble"].attempts
        assert [(a.outcome, a.failure) for a in attempts] == [
            ("failed", "error"),
            ("succeeded", None),
        ]
        assert "first tries always fail" in attempts[0].message
        assert record.data["w"] == 42
        assert record.data["done"] is True

    async def test_agent_killed_mid_step_is_retried_on_another_instance(
        self, cluster: ProcessGroup
    ) -> None:
        """SIGKILL of the agent holding a step: agent_lost, then the other instance finishes it."""
        for name in ("worker-a", "worker-b"):
            cluster.enroll(name, "worker")
        runtime = start_flows(cluster)
        agents = {
            name: cluster.start_actor(
                f"{FLOWS}:StallsOnFirstAttempt", runtime.agents, principal=name
            )
            for name in ("worker-a", "worker-b")
        }
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("survivor", {"n": 1})
            running = await wait_for(client, run_id, lambda r: r.steps["work"].status == "running")
            holder = running.steps["work"].attempts[0].agent
            os.kill(agents[holder].pid, signal.SIGKILL)
            record, timed_out = await client.wait_run(run_id, max_wait=30)
        assert not timed_out
        assert record.status == "completed"
        first, second = record.steps["work"].attempts
        assert (first.agent, first.failure) == (holder, "agent_lost")
        assert second.agent != holder
        assert second.outcome == "succeeded"
        assert record.provenance["r"].agent == second.agent


class TestBoundedAutonomy:
    """Tool calls outside the allowlist never reach a tool host."""

    async def test_refused_tool_is_recorded_and_never_executed(
        self, cluster: ProcessGroup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The clerk's step allows read_balance only; wire_money is refused and the run halts."""
        ledger = tmp_path / "ledger.txt"
        monkeypatch.setenv("BATON_TEST_LEDGER", str(ledger))
        cluster.enroll("bank", "tools:bank")
        runtime = start_flows(cluster, "clerk")
        cluster.start_actor(f"{FLOWS}:Bank", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Clerk", runtime.agents)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("guarded", {"account": "acc-1"})
            record, _ = await client.wait_run(run_id, max_wait=30)
        assert record.status == "halted"
        refused = [h for h in record.history if h.event == "tool_refused"]
        assert len(refused) == 1
        assert refused[0].detail["tool"] == "wire_money"
        assert refused[0].message == (
            "tool 'wire_money' is not allowed in step 'check': it is not one of the step's tools"
        )
        assert record.steps["check"].attempts[0].failure == "tool_refused"
        assert refused[0].principal == "clerk"
        assert ledger.read_text().splitlines() == ["read_balance acc-1"]
        executed = [
            json.loads(line)["tool"]
            for line in cluster.log_of("Bank").splitlines()
            if '"tool.executed"' in line
        ]
        assert executed == ["read_balance"]

    async def test_agent_for_an_unknown_role_is_refused(self, cluster: ProcessGroup) -> None:
        """Registration for a role no loaded workflow has ends the agent with exit status 2."""
        runtime = start_flows(cluster, "stranger")
        stranger = cluster.start_actor(f"{FLOWS}:Stranger", runtime.agents, label="stranger")
        assert stranger.wait(20) == 2
        assert "no loaded workflow has role 'stranger'" in cluster.log_of("stranger")


class TestEffectsAtMostOnce:
    """A step retried after its tool call does not repeat the side effect."""

    async def test_retried_step_gets_the_recorded_charge(
        self, cluster: ProcessGroup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Attempt 1 charges and fails; attempt 2 calls charge with the same key and gets the
        first receipt from the till's ledger; the customer is charged once."""
        effects = tmp_path / "effects.txt"
        monkeypatch.setenv("BATON_TEST_LEDGER", str(effects))
        cluster.enroll("till", "tools:till")
        runtime = start_flows(cluster, "payer")
        cluster.start_actor(f"{FLOWS}:Till", runtime.agents, label="till")
        cluster.start_actor(f"{FLOWS}:Payer", runtime.agents)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("pay", {"amount": 1999})
            record, timed_out = await client.wait_run(run_id, max_wait=30)
        assert not timed_out
        assert record.status == "completed"
        assert [a.outcome for a in record.steps["settle"].attempts] == ["failed", "succeeded"]
        calls = [h for h in record.history if h.event == "tool_called"]
        assert [c.attempt for c in calls] == [1, 2]
        assert len({c.detail["idempotency_key"] for c in calls}) == 1
        assert record.data["receipt"] == "receipt for 1999"
        assert effects.read_text().splitlines() == ["charge 1999"]
        lines = cluster.log_of("till").splitlines()
        events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
        assert [e for e in events if e.startswith("tool.")] == ["tool.executed", "tool.replayed"]


class TestBadInput:
    """Garbage on either plane gets typed errors and does not stop a running workflow."""

    async def test_garbage_on_both_planes_while_a_workflow_runs(
        self, cluster: ProcessGroup
    ) -> None:
        """From an authenticated peer: random, truncated, multi-part and wrong-type frames;
        typed errors come back, and the run still completes."""
        cluster.enroll("prankster", "classifier", "viewer")
        runtime = start_example(cluster, writers=1)
        keys = cluster.keys_of("prankster")
        assert keys is not None
        ctx = zmq.asyncio.Context()
        agent_plane = ctx.socket(zmq.DEALER)
        control_plane = ctx.socket(zmq.DEALER)
        for sock, endpoint in ((agent_plane, runtime.agents), (control_plane, runtime.control)):
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_secretkey = keys.secret
            sock.curve_publickey = keys.public
            sock.curve_serverkey = keys.server
            sock.connect(endpoint)
        garbage = [
            b"",
            b"\xff\xfe\xfd",
            b"\x81\xa4type\xa2\xff\xfe",
            msgspec.msgpack.encode({"type": "register", "protocol": "one"}),
            msgspec.msgpack.encode({"type": "nope"}),
            msgspec.msgpack.encode([[[[[[[[[[[1]]]]]]]]]]]),
            os.urandom(512),
        ]
        try:
            async with ControlClient(runtime.control, keys=runtime.operator) as client:
                run_id = await client.start_run("customer_ops", request("c-200", "invoice"))
                for frame in garbage:
                    await agent_plane.send(frame)
                    await control_plane.send(frame)
                await agent_plane.send_multipart([b"two", b"frames"])
                agent_codec = actor_side_codec()
                control_codec = client_side_control_codec()
                agent_replies = [agent_codec.decode(await agent_plane.recv()) for _ in range(8)]
                control_replies = [
                    control_codec.decode(await control_plane.recv()) for _ in garbage
                ]
                record, timed_out = await client.wait_run(run_id, max_wait=30)
        finally:
            agent_plane.close(linger=0)
            control_plane.close(linger=0)
            ctx.term()
        assert all(isinstance(r, Error) for r in agent_replies)
        assert {r.code for r in agent_replies} <= {"malformed", "invalid_message"}
        assert all(isinstance(r, ControlError) for r in control_replies)
        assert not timed_out
        assert record.status == "completed"


def db_rows(database: Path, run_id: str) -> list[tuple[int, float, bytes]]:
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT seq, at, body FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()


class TestSqliteJournal:
    """With a SQLite store, every event of a run is in the journal file."""

    @pytest.mark.parametrize("commit", ["inline", "thread"])
    async def test_run_is_journaled(
        self, cluster: ProcessGroup, tmp_path: Path, commit: str
    ) -> None:
        """The journal holds the run's events in order, the run completes as with memory, and
        folding the journal file from scratch gives the very record the runtime served."""
        database = tmp_path / "journal.db"
        runtime = start_flows(
            cluster, "flaky", "finisher", store=f"sqlite:///{database}?commit={commit}"
        )
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("flaky", {"n": 1})
            record, _ = await client.wait_run(run_id, max_wait=30)
        assert record.status == "completed"
        with sqlite3.connect(database) as db:
            rows = db.execute(
                "SELECT seq, body FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
        events = [msgspec.msgpack.decode(body)["event"] for _, body in rows]
        journal = [
            JournalRecord(run_id, seq, at, msgspec.msgpack.decode(body, type=JournalEvent))
            for seq, at, body in db_rows(database, run_id)
        ]
        graphs = Catalog(map(compile_workflow, ALL))
        assert record_view(replay(graphs, journal)) == record
        assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
        assert events == [
            "run_started",
            "step_dispatched",
            "step_failed",
            "timer_fired",
            "step_dispatched",
            "step_succeeded",
            "step_dispatched",
            "step_succeeded",
        ]


class TestRecovery:
    """The runtime killed mid-run: a new one on the same journal finishes what it left."""

    async def test_sigkill_mid_step_then_restart_finishes_the_run(
        self, cluster: ProcessGroup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A step out with its agent when the runtime dies is dispatched again under the same
        attempt by the next runtime; its agent's result completes the run; an ended run is
        still there to inspect."""
        gate = tmp_path / "gate"
        monkeypatch.setenv("BATON_TEST_GATE", str(gate))
        database = tmp_path / "journal.db"
        runtime = start_flows(cluster, "gated", "finisher", store=f"sqlite:///{database}")
        cluster.start_actor(f"{FLOWS}:Gated", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        gate.touch()
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            done_before = await client.start_run("gated", {"n": 1})
            await client.wait_outcome(done_before, max_wait=30)
        gate.unlink()
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("gated", {"n": 2})
            await wait_for(client, run_id, lambda r: r.steps["hold"].status == "running")
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
        gate.touch()
        async with ControlClient(again.control, keys=again.operator) as client:
            record, timed_out = await client.wait_run(run_id, max_wait=30)
            before = await client.get_run(done_before)
        assert not timed_out
        assert record.status == "completed"
        events = [h.event for h in record.history]
        assert events.index("run_recovered") < events.index("step_requeued")
        assert [(a.attempt, a.outcome) for a in record.steps["hold"].attempts] == [(1, "succeeded")]
        assert record.data["w"] == 2
        assert before.status == "completed"


class TestTimeTravel:
    """`inspect --at` rebuilds a past record from the journal; `history` lists the events."""

    async def test_the_record_as_it_was_after_an_event(self, cluster: ProcessGroup) -> None:
        """At the version of wobble's success, w is written and finish is yet to run."""
        runtime = start_flows(cluster, "flaky", "finisher", store="memory://")
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("flaky", {"n": 4})
            final, _ = await client.wait_run(run_id, max_wait=30)
            version = next(
                h.seq for h in final.history if (h.event, h.step) == ("step_succeeded", "wobble")
            )
            past = await client.get_run(run_id, at=version)
            with pytest.raises(ControlRefused) as refused:
                await client.get_run(run_id, at=final.history[-1].seq + 1)
        assert final.status == "completed"
        # The finish step was queued then, not yet dispatched: the run waited for an agent.
        assert past.status == "waiting"
        assert past.steps["finish"].status == "queued"
        assert past.data == {"n": 4, "w": 8}
        assert [h.seq for h in past.history] == [h.seq for h in final.history][: len(past.history)]
        assert refused.value.code == "invalid_input"

    def test_cli_history_and_inspect_at(self, cluster: ProcessGroup) -> None:
        """The commands a user types, as processes: history's seqs feed inspect --at."""
        runtime = start_flows(cluster, "flaky", "finisher")
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        assert cluster.keys is not None
        common = ["--control", runtime.control, "--keys", str(cluster.keys), "--json"]

        def baton(*args: str) -> Any:
            done = subprocess.run(
                [sys.executable, "-m", "runtime", *args, *common],
                capture_output=True,
                check=False,
                timeout=60,
            )
            assert done.returncode in (0, 1), done.stderr.decode()
            return json.loads(done.stdout)

        started = baton("run", "flaky", "--input", '{"n": 5}', "--wait")
        events = baton("history", started["run_id"])
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        first = next(e for e in events if e["event"] == "step_dispatched")
        past = baton("inspect", started["run_id"], "--at", str(first["seq"]))
        assert past["status"] == "running"
        assert past["steps"]["wobble"]["status"] == "running"
