"""Crashes placed exactly: the runtime or a tool host dies at a named point, and nothing is
lost or done twice.

Each test arms one point with `BATON_KILL_AT`, lets the process kill itself there with
SIGKILL, starts it again unarmed, and checks the run and the till's own record of charges.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runtime import ControlClient
from runtime.engine._events import JournalEvent
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"
DIED_WITHIN = 20.0
"""Seconds a process armed at a point may take to reach it and die."""


def runtime_on(
    cluster: ProcessGroup,
    database: Path,
    *,
    label: str,
    kill_at: str = "",
    like: RuntimeProcess | None = None,
) -> RuntimeProcess:
    """A runtime of the test flows on the journal `database`, on the ports of `like` if given."""
    ports = {} if like is None else {"agents": like.agents, "control": like.control}
    env = {"BATON_KILL_AT": kill_at} if kill_at else None
    return cluster.start_runtime(
        [f"{FLOWS}:ALL"],
        label=label,
        heartbeat=HEARTBEAT,
        store=f"sqlite:///{database}",
        env=env,
        **ports,
    )


def died_at(
    cluster: ProcessGroup, process: subprocess.Popen[bytes], label: str, point: str
) -> None:
    """`process` killed itself at `point`, and said so last."""
    assert process.wait(DIED_WITHIN) == -signal.SIGKILL
    lines = [json.loads(x) for x in cluster.log_of(label).splitlines() if x.startswith("{")]
    assert (lines[-1]["event"], lines[-1]["kill_point"]) == ("process.killed", point)


def journal_events(database: Path, run_id: str) -> list[str]:
    decoder = msgspec.msgpack.Decoder(JournalEvent)
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT body FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
        return [type(decoder.decode(body)).__name__ for (body,) in rows]


def charged(path: Path) -> list[str]:
    """The charges the till really made, from its own file."""
    return path.read_text().splitlines() if path.exists() else []


def tool_events(cluster: ProcessGroup, label: str) -> list[str]:
    lines = [json.loads(x) for x in cluster.log_of(label).splitlines() if x.startswith("{")]
    return [x["event"] for x in lines if x["event"].startswith("tool.")]


@pytest.fixture
def charges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The till's own list of charges it really made, one line each."""
    path = tmp_path / "charges.txt"
    monkeypatch.setenv("BATON_TEST_LEDGER", str(path))
    return path


@pytest.fixture
def enrolled(cluster: ProcessGroup) -> ProcessGroup:
    cluster.enroll("till", "tools:till")
    cluster.enroll("charger", "charger")
    return cluster


class TestRuntimeKilled:
    async def test_after_a_dispatch_is_persisted_and_before_it_is_sent(
        self, enrolled: ProcessGroup, tmp_path: Path, charges: Path
    ) -> None:
        """The journal says the step went to an agent that never got it: the next runtime
        sends it again under the same attempt, and the customer is charged once."""
        cluster, database = enrolled, tmp_path / "journal.db"
        first = runtime_on(cluster, database, label="runtime-1", kill_at="dispatch-persisted")
        async with ControlClient(first.control, keys=first.operator) as client:
            # No charger yet: the run is accepted and answered, its step waits in the queue.
            run_id = await client.start_run("charge", {"amount": 700})
            await wait_for(client, run_id, lambda r: r.status == "waiting")
        cluster.start_actor(f"{FLOWS}:Till", first.agents, label="till")
        cluster.start_actor(f"{FLOWS}:Charger", first.agents)
        died_at(cluster, first.process, "runtime-1", "dispatch-persisted")
        assert journal_events(database, run_id) == ["RunStarted", "StepDispatched"]
        assert charged(charges) == [], "the assignment left before the runtime died"

        second = runtime_on(cluster, database, label="runtime-2", like=first)
        async with ControlClient(second.control, keys=second.operator) as client:
            record, timed_out = await client.wait_run(run_id, max_wait=30)
        assert not timed_out
        assert record.status == "completed"
        assert [(a.attempt, a.outcome) for a in record.steps["settle"].attempts] == [
            (1, "succeeded")
        ]
        assert "step_requeued" in [h.event for h in record.history]
        assert charged(charges) == ["charge 700"]

    async def test_after_a_result_arrives_and_before_it_is_committed(
        self, enrolled: ProcessGroup, tmp_path: Path, charges: Path
    ) -> None:
        """The result never reached the journal: the step runs again under the same attempt,
        its charge call carries the same key, and the till answers from its ledger."""
        cluster, database = enrolled, tmp_path / "journal.db"
        first = runtime_on(cluster, database, label="runtime-1", kill_at="result-received")
        cluster.start_actor(f"{FLOWS}:Till", first.agents, label="till")
        cluster.start_actor(f"{FLOWS}:Charger", first.agents)
        async with ControlClient(first.control, keys=first.operator) as client:
            run_id = await client.start_run("charge", {"amount": 800})
        died_at(cluster, first.process, "runtime-1", "result-received")
        assert "StepSucceeded" not in journal_events(database, run_id)
        assert charged(charges) == ["charge 800"]

        second = runtime_on(cluster, database, label="runtime-2", like=first)
        async with ControlClient(second.control, keys=second.operator) as client:
            record, timed_out = await client.wait_run(run_id, max_wait=30)
        assert not timed_out
        assert record.status == "completed"
        assert record.data["receipt"] == "receipt for 800"
        assert [(a.attempt, a.outcome) for a in record.steps["settle"].attempts] == [
            (1, "succeeded")
        ]
        assert charged(charges) == ["charge 800"]
        assert tool_events(cluster, "till") == ["tool.executed", "tool.replayed"]


async def till_killed_at(cluster: ProcessGroup, database: Path, point: str, amount: int) -> Any:
    """A charge whose first till dies at `point`; a second till serves the retry. The record."""
    runtime = runtime_on(cluster, database, label="runtime")
    till = cluster.start_actor(
        f"{FLOWS}:Till", runtime.agents, label="till-1", env={"BATON_KILL_AT": point}
    )
    cluster.start_actor(f"{FLOWS}:Charger", runtime.agents)
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("charge", {"amount": amount})
        died_at(cluster, till, "till-1", point)
        cluster.start_actor(f"{FLOWS}:Till", runtime.agents, label="till-2")
        record, timed_out = await client.wait_run(run_id, max_wait=30)
    assert not timed_out
    return record


class TestToolHostKilled:
    async def test_after_the_effect_and_before_the_ledger_knows_it(
        self, enrolled: ProcessGroup, tmp_path: Path, charges: Path
    ) -> None:
        """The charge happened but its outcome is unknown: the call asked again of the next
        till, and the retry's, are refused rather than charging again, and the run stops
        saying so."""
        record = await till_killed_at(enrolled, tmp_path / "journal.db", "tool-executed", 900)
        assert record.status == "halted"
        assert charged(charges) == ["charge 900"]
        assert tool_events(enrolled, "till-2") == ["tool.not_rerun", "tool.not_rerun"]
        attempts = record.steps["settle"].attempts
        assert [a.outcome for a in attempts] == ["failed", "failed"]
        assert "outcome unknown" in attempts[-1].message

    async def test_after_the_ledger_knows_it_and_before_the_reply(
        self, enrolled: ProcessGroup, tmp_path: Path, charges: Path
    ) -> None:
        """The reply was lost with the host: the call is asked again of the next till, which
        answers with the recorded receipt, and the attempt is not spent."""
        record = await till_killed_at(enrolled, tmp_path / "journal.db", "tool-settled", 1000)
        assert record.status == "completed"
        assert record.data["receipt"] == "receipt for 1000"
        assert charged(charges) == ["charge 1000"]
        assert tool_events(enrolled, "till-2") == ["tool.replayed"]
        assert [a.outcome for a in record.steps["settle"].attempts] == ["succeeded"]
