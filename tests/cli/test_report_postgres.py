"""`baton report` on a cluster's PostgreSQL database: every run of every runtime, read only."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import psycopg
import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.engine._events import JournalEvent
from runtime.store import JournalRecord, SqliteStore
from runtime.store._leases import Leases
from runtime.store._postgres import PostgresStore
from tests.runtime.test_report import GRAPH as REPORTED
from tests.runtime.test_report import drive

REPORTED_MODULE = "tests.runtime.test_report"
RUNS = 40
runner = CliRunner()


def records(index: int) -> list[JournalRecord]:
    """The journal of run `r<index>` of the reported workload."""
    events: list[tuple[float, JournalEvent]] = []
    drive(REPORTED, index, events)
    return [
        JournalRecord(f"r{index}", seq, at, event)
        for seq, (at, event) in enumerate(events, start=1)
    ]


def report(store: str, *options: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["report", "--store", store, "-w", f"{REPORTED_MODULE}:WORKFLOW", *options]
    )
    return result.exit_code, result.output


@pytest.fixture
def cluster(postgres_url: str) -> str:
    """A database two runtimes journaled the workload into, each its half of the runs."""

    async def write() -> None:
        for first in (0, 1):
            store = PostgresStore(postgres_url)
            await store.open()
            store.fence = await Leases(store).join("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", 600)
            for index in range(first, RUNS, 2):
                await store.append(records(index))
            await store.close()

    anyio.run(write)
    return postgres_url


class TestReportFromPostgres:
    def test_every_runtimes_runs_are_reported(self, cluster: str) -> None:
        status, output = report(cluster, "--json")
        assert status == 0, output
        (figures,) = json.loads(output)
        assert figures["runs"] == RUNS
        steps = {s["step"]: s for s in figures["steps"]}
        assert steps["b"]["first_try_success"] == pytest.approx(0.8)

    def test_the_figures_are_those_of_the_same_runs_in_sqlite(
        self, cluster: str, tmp_path: Path
    ) -> None:
        SqliteStore(tmp_path / "j.db").append_nowait(
            [record for index in range(RUNS) for record in records(index)]
        )
        from_sqlite = report(f"sqlite:///{tmp_path}/j.db", "--json")
        assert report(cluster, "--json") == from_sqlite

    def test_tables_are_printed(self, cluster: str) -> None:
        status, output = report(cluster)
        assert status == 0, output
        rows = {line.split()[0]: line.split() for line in output.splitlines() if line.strip()}
        assert rows["b"][:3] == ["b", str(RUNS), "80.0%"], output

    def test_a_database_no_runtime_used_is_refused_and_left_as_it_was(
        self, postgres_url: str
    ) -> None:
        status, output = report(postgres_url)
        assert status == 2
        assert "no Baton journal in this database: no runtime has used it" in output
        with psycopg.connect(postgres_url) as conn:
            (schema,) = conn.execute("SELECT to_regnamespace('baton')").fetchone() or (None,)
        assert schema is None, "a report created the schema it looked for"

    def test_a_password_in_the_url_is_not_shown(self, postgres_url: str) -> None:
        host = postgres_url.partition("?")[2]
        status, output = report(f"postgresql://baton:hunter2@/no_such_database?{host}")
        assert status == 2
        assert 'database "no_such_database" does not exist' in output
        assert "hunter2" not in output
        assert "baton:***@" in output

    def test_a_backup_stays_sqlite_only(self, cluster: str, tmp_path: Path) -> None:
        result = runner.invoke(app, ["backup", str(tmp_path / "copy.db"), "--store", cluster])
        assert result.exit_code == 2
        assert "only a SQLite journal can be backed up" in result.output
