"""Several runtimes on one PostgreSQL database: takeover, one control plane, a server restart.

Real runtimes, agents and tool hosts on loopback, one PostgreSQL server of the
test session's own. A runtime killed with SIGKILL has its runs taken over by
another once its lease lapses; any runtime answers for any run; the database
going away stops nothing that was accepted from completing once it is back.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import anyio
import pytest

from runtime import ControlClient, ControlRefused, RuntimeUnavailable
from runtime.cluster import LocalPostgres
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.cluster_flows"
WORKFLOWS = [f"{FLOWS}:job", f"{FLOWS}:approved"]
LEASE = 1.5
"""Seconds a lease lasts here: short, so that a takeover comes soon after a death."""


def start_runtime(group: ProcessGroup, url: str, label: str) -> RuntimeProcess:
    """A runtime of the cluster on `url`; the actors' and the approver's keys enrolled first."""
    group.enroll("clerk", "clerk")
    group.enroll("books", "tools:books")
    group.enroll("fin", "approver:finance")
    return group.start_runtime(
        WORKFLOWS,
        label=label,
        store=url,
        heartbeat=HEARTBEAT,
        extra=["--lease", str(LEASE), "--cluster-check", "0.3"],
    )


def start_actors(group: ProcessGroup, runtimes: list[RuntimeProcess], tag: str) -> None:
    """A clerk and a books host, each serving every runtime given."""
    connect = ",".join(r.agents for r in runtimes)
    group.start_actor(f"{FLOWS}:Clerk", connect, label=f"clerk-{tag}", principal="clerk",
                      concurrency=16)  # fmt: skip
    group.start_actor(
        f"{FLOWS}:Books", connect, label=f"books-{tag}", principal="books", concurrency=16,
        extra=["--ledger", str(group.workdir / "books.db")],
    )  # fmt: skip


def effects(ledger: Path) -> Counter[str]:
    return Counter(ledger.read_text().split()) if ledger.exists() else Counter()


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "effects.txt"
    os.environ["BATON_TEST_LEDGER"] = str(path)
    os.environ["BATON_TEST_PAUSE"] = "0.5"
    yield path
    os.environ.pop("BATON_TEST_LEDGER", None)
    os.environ.pop("BATON_TEST_PAUSE", None)


async def test_a_killed_runtimes_runs_are_taken_over_and_any_runtime_answers_for_any_run(
    cluster: ProcessGroup, postgres_url: str, ledger: Path
) -> None:
    first = start_runtime(cluster, postgres_url, "first")
    second = start_runtime(cluster, postgres_url, "second")
    start_actors(cluster, [first, second], "both")
    async with (
        ControlClient(first.control, keys=first.operator) as on_first,
        ControlClient(second.control, keys=second.operator) as on_second,
        ControlClient(first.control, keys=cluster.keys_of("fin")) as approver,
    ):
        doomed = [await on_first.start_run("job", {"n": n}) for n in range(12)]
        gated = await on_second.start_run("approved", {"n": 100})
        # A decision waiting on the second runtime is in the inbox asked of the first, and
        # is decided through it.
        with anyio.fail_after(20):
            while True:
                shown = await approver.pending()
                if shown:
                    break
                await anyio.sleep(0.05)
        assert [p.run_id for p in shown] == [gated]
        decided = await approver.decide(shown[0], "approve", comment="fine")
        assert decided.run_id == gated
        # Every run is listed by either runtime.
        listed = {s.run_id for s in await on_first.list_runs(limit=100)}
        assert listed == {*doomed, gated}
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        for run_id in doomed:
            record, timed_out = await on_second.wait_run(run_id, max_wait=60)
            assert not timed_out, run_id
            assert record.status == "completed", (run_id, record.reason)
        record, _ = await on_second.wait_run(gated, max_wait=30)
        assert record.status == "completed"
        taken = [
            entry.message
            for run_id in doomed
            for entry in (await on_second.get_run(run_id)).history
            if entry.event == "run_recovered"
        ]
        assert taken
        assert all("taken over from runtime" in m for m in taken)
        members = await on_second.members()
        assert [m.control for m in members.members] == [second.control]
        assert members.takeovers
        assert members.takeovers[0].by_token == members.here
    counted = effects(ledger)
    assert sorted(counted) == sorted(str(n) for n in [*range(12), 100])
    assert max(counted.values()) == 1, counted


async def test_a_request_about_a_run_of_a_dead_runtime_waits_for_its_takeover(
    cluster: ProcessGroup, postgres_url: str, ledger: Path
) -> None:
    first = start_runtime(cluster, postgres_url, "first")
    second = start_runtime(cluster, postgres_url, "second")
    async with ControlClient(first.control, keys=first.operator) as on_first:
        run_id = await on_first.start_run("job", {"n": 1})
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    async with ControlClient(second.control, keys=second.operator) as on_second:
        # No agent anywhere: the run waits, taken over, and is cancelled through the other.
        record = await on_second.cancel_run(run_id, "no clerk today")
        assert record.status == "cancelled"
        again = await on_second.get_run(run_id)
        assert [e.event for e in again.history][-1] == "run_cancelled"


async def test_postgresql_restarted_under_load_loses_no_accepted_run(
    cluster: ProcessGroup, postgres: LocalPostgres, postgres_url: str, ledger: Path
) -> None:
    runtime = start_runtime(cluster, postgres_url, "runtime")
    start_actors(cluster, [runtime], "one")
    accepted: list[str] = []
    refused: list[str] = []
    async with ControlClient(runtime.control, keys=runtime.operator, timeout=2) as client:
        for n in range(10):
            accepted.append(await client.start_run("job", {"n": n}))
        postgres.stop()
        for n in range(10, 20):
            try:
                accepted.append(await client.start_run("job", {"n": n}))
            except (ControlRefused, RuntimeUnavailable) as exc:
                refused.append(str(exc))
        # The database is away for longer than a lease: the runtime leaves and rejoins.
        await anyio.sleep(LEASE * 2)
        postgres.start()
    async with ControlClient(runtime.control, keys=runtime.operator, timeout=30) as client:
        for n in range(20, 25):
            accepted.append(await client.start_run("job", {"n": n}))
        for run_id in accepted:
            record, timed_out = await client.wait_run(run_id, max_wait=60)
            assert not timed_out, run_id
            assert record.status == "completed", record.reason
    assert runtime.process.poll() is None, "the runtime waits for its database, it does not exit"
    log = cluster.log_of("runtime")
    assert "runtime.left_cluster" in log
    assert "runtime.rejoining" in log
    # While the database was away the runtime waited for it unbound, taking in no request.
    assert "runtime.database_away" in log
    assert refused, "starts while the database was down are refused, not accepted"
    counted = effects(ledger)
    assert max(counted.values()) == 1
    assert len(counted) == len(accepted)
