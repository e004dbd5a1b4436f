"""A journal that cannot take a write: the runtime stops and says why, and loses nothing
it had accepted; started again on the journal, it carries on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime import ControlClient, RuntimeUnavailable
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"


def start(
    cluster: ProcessGroup, store: str, label: str, like: RuntimeProcess | None = None
) -> RuntimeProcess:
    endpoints: dict[str, str] = {}
    if like is not None:
        endpoints = {"agents": like.agents, "control": like.control}
    return cluster.start_runtime(
        [f"{FLOWS}:ALL"], label=label, heartbeat=HEARTBEAT, store=store, **endpoints
    )


async def completed_run(runtime: RuntimeProcess) -> str:
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("flaky", {"n": 1})
        assert (await client.wait_outcome(run_id, max_wait=30)).status == "completed"
    return run_id


async def start_until_refused(client: ControlClient, accepted: list[str]) -> None:
    """Start runs, noting each accepted, until one is not (at most 500)."""
    for n in range(500):
        accepted.append(await client.start_run("flaky", {"n": n}))


async def refused_start(runtime: RuntimeProcess) -> None:
    """A start the runtime cannot journal is never accepted: no reply, the runtime is gone."""
    async with ControlClient(runtime.control, keys=runtime.operator, timeout=3) as client:
        with pytest.raises(RuntimeUnavailable):
            await client.start_run("flaky", {"n": 2})


async def still_there(runtime: RuntimeProcess, run_id: str) -> None:
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        assert (await client.get_run(run_id)).status == "completed"
        assert [r.run_id for r in await client.list_runs()] == [run_id]


class TestStoreFaults:
    """Disk full and a locked journal, made for real (no root needed)."""

    async def test_a_full_journal_stops_the_runtime_and_loses_nothing(
        self, cluster: ProcessGroup, tmp_path: Path
    ) -> None:
        """A size cap the journal reaches is a real "disk full": starts are accepted until a
        commit fails, the runtime stops and says why, and without the cap every accepted run
        completes."""
        for role in ("flaky", "finisher"):
            cluster.enroll(role, role)
        database = tmp_path / "journal.db"
        with sqlite3.connect(database) as db:
            db.execute("PRAGMA journal_mode=WAL")
        runtime = start(cluster, f"sqlite:///{database}", "runtime")
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        done = await completed_run(runtime)
        cluster.stop(runtime.process)
        with sqlite3.connect(database) as db:
            (pages,) = db.execute("PRAGMA page_count").fetchone()
        cap = pages + 2
        full = start(cluster, f"sqlite:///{database}?max_pages={cap}", "runtime-full", runtime)
        accepted = [done]
        async with ControlClient(full.control, keys=full.operator, timeout=3) as client:
            with pytest.raises(RuntimeUnavailable):
                await start_until_refused(client, accepted)
        assert full.process.wait(10) == 1
        said = cluster.log_of("runtime-full")
        assert "database or disk is full" in said
        assert "the runtime stopped" in said
        again = start(cluster, f"sqlite:///{database}", "runtime-again", runtime)
        async with ControlClient(again.control, keys=again.operator) as client:
            outcomes = [(await client.wait_outcome(r, max_wait=30)).status for r in accepted]
            journaled = {r.run_id for r in await client.list_runs(limit=1_000)}
        assert set(outcomes) == {"completed"}
        # Every run ever accepted is there; any other was never answered.
        assert set(accepted) <= journaled

    @pytest.mark.parametrize("commit", ["inline", "thread"])
    async def test_a_locked_journal_stops_the_runtime_and_loses_nothing(
        self, cluster: ProcessGroup, tmp_path: Path, commit: str
    ) -> None:
        """Another writer holding the journal past the busy timeout: the commit fails, made
        on the loop's thread or in a worker thread alike."""
        for role in ("flaky", "finisher"):
            cluster.enroll(role, role)
        database = tmp_path / "journal.db"
        runtime = start(cluster, f"sqlite:///{database}?commit={commit}", "runtime")
        cluster.start_actor(f"{FLOWS}:Flaky", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Finisher", runtime.agents)
        done = await completed_run(runtime)
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            await refused_start(runtime)
            assert runtime.process.wait(10) == 1
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert "database is locked" in cluster.log_of("runtime")
        again = start(cluster, f"sqlite:///{database}", "runtime-again", runtime)
        await still_there(again, done)
