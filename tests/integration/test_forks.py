"""Forks run by real processes: a runtime, its agents and the `baton` command on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocols import RunRecord
from runtime import ControlClient
from runtime.client._client import ControlRefused
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT, REPO, wait_for

pytestmark = pytest.mark.anyio

FORKS = "tests.integration.forks"
ROLES = ("drafter", "reviewer", "publisher")


LEASE = 1.0
"""A short lease, so that a runtime of a cluster takes over a killed one's runs soon."""


def start(
    cluster: ProcessGroup, store: str = "memory://", label: str = "runtime"
) -> RuntimeProcess:
    """A runtime of the article workflow with an agent of each role."""
    for role in ROLES:
        cluster.enroll(role, role)
    cluster.enroll("vic", "viewer")
    extra = ["--lease", str(LEASE), "--cluster-check", "0.3"] if "postgres" in store else []
    runtime = cluster.start_runtime(
        [f"{FORKS}:article"], label=label, heartbeat=HEARTBEAT, store=store, extra=extra
    )
    start_agents(cluster, runtime)
    return runtime


def start_agents(cluster: ProcessGroup, runtime: RuntimeProcess) -> None:
    for role in ROLES:
        cluster.start_actor(f"{FORKS}:{role.capitalize()}", runtime.agents, principal=role)


def ledger(cluster: ProcessGroup) -> list[dict[str, Any]]:
    path = cluster.workdir / "ledgers" / "article.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def version_after(record: RunRecord, event: str, step: str) -> int:
    return next(h.seq for h in record.history if h.event == event and h.step == step)


def baton(
    cluster: ProcessGroup, runtime: RuntimeProcess, *args: str
) -> subprocess.CompletedProcess[str]:
    """`baton ARGS` as the operator, against `runtime`."""
    assert cluster.keys is not None
    command = [sys.executable, "-m", "runtime", *args, "--control", runtime.control,
               "--keys", str(cluster.keys)]  # fmt: skip
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


class TestForkingARun:
    async def test_a_fork_runs_only_what_came_after_with_the_value_given(
        self, cluster: ProcessGroup
    ) -> None:
        """Forked with `baton fork` once `draft` completed, with another text: `draft` is not
        run again, `review` and `publish` read the text given, the fork names its parent and
        who gave the value, and the parent's record is as it was."""
        runtime = start(cluster)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            parent_id = await client.start_run("article", {"topic": "owls"})
            parent, _ = await client.wait_run(parent_id, max_wait=30)
            assert parent.status == "completed", parent.reason
            at = version_after(parent, "step_succeeded", "draft")
            done = baton(cluster, runtime, "fork", parent_id, "--at", str(at),
                         "--set", 'text="owls, revised"', "--reason", "a better draft",
                         "--json")  # fmt: skip
            assert done.returncode == 0, done.stderr
            answer = json.loads(done.stdout)
            fork_id = answer["run_id"]
            assert answer == {"run_id": fork_id, "forked_from": parent_id, "forked_at": at}
            fork, timed_out = await client.wait_run(fork_id, max_wait=30)
            again = await client.get_run(parent_id)
        assert not timed_out
        assert fork.status == "completed", fork.reason
        steps = [(line["run_id"], line["step"]) for line in ledger(cluster)]
        assert [s for r, s in steps if r == fork_id] == ["review", "publish"]
        assert [s for r, s in steps if r == parent_id] == ["draft", "review", "publish"]
        review = next(line for line in ledger(cluster) if line["run_id"] == fork_id)
        assert review["inputs"] == {"text": "owls, revised"}
        assert fork.data["verdict"] == "read: owls, revised"
        assert fork.data["url"] == "/read: owls, revised"
        assert (fork.forked_from, fork.forked_at) == (parent_id, at)
        assert fork.provenance["text"].edited_by == "operator"
        assert fork.provenance["topic"] == parent.provenance["topic"]
        (entry,) = [h for h in fork.history if h.event == "run_forked"]
        assert entry.message == (
            f"forked from run {parent_id} at version {at} by operator; text given by operator: "
            "a better draft"
        )
        after = [h for h in fork.history if h.seq > entry.seq and h.event == "step_dispatched"]
        assert [h.step for h in after] == ["review", "publish"]
        assert (again.seq, again.history, again.data) == (parent.seq, parent.history, parent.data)
        assert (again.forked_from, again.forked_at) == ("", 0)

    async def test_refusals(self, cluster: ProcessGroup) -> None:
        """A version the run never had, a run the runtime does not know, and a principal who
        may only read are refused, each with its code; `baton fork` says why and exits 2."""
        runtime = start(cluster)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            parent_id = await client.start_run("article", {"topic": "owls"})
            parent, _ = await client.wait_run(parent_id, max_wait=30)
            with pytest.raises(ControlRefused) as out_of_range:
                await client.fork_run(parent_id, parent.seq + 1)
            with pytest.raises(ControlRefused) as unknown:
                await client.fork_run("no-such-run", 1)
            async with ControlClient(runtime.control, keys=cluster.keys_of("vic")) as viewer:
                with pytest.raises(ControlRefused) as refused:
                    await viewer.fork_run(parent_id, 2)
            runs = await client.list_runs()
        assert (out_of_range.value.code, out_of_range.value.message) == (
            "invalid_input",
            f"run {parent_id!r} has versions 1 to {parent.seq}, not {parent.seq + 1}",
        )
        assert unknown.value.code == "unknown_run"
        assert (refused.value.code, refused.value.message) == (
            "unauthorized", "principal 'vic' may not fork run: it needs role 'operator'",
        )  # fmt: skip
        assert [r.run_id for r in runs] == [parent_id]
        done = baton(cluster, runtime, "fork", parent_id, "--at", "2", "--set", "nope=1")
        assert done.returncode == 2
        assert "'nope' is neither an input nor a step's output" in done.stderr + done.stdout


class TestForkAcrossARestart:
    @pytest.mark.parametrize("kind", ["sqlite", "postgres"])
    async def test_a_fork_killed_mid_step_completes_on_the_same_journal(
        self, cluster: ProcessGroup, tmp_path: Path, kind: str, request: pytest.FixtureRequest
    ) -> None:
        """The runtime is killed while the fork's `review` is out; another started on the
        same journal (SQLite: restarted; PostgreSQL: taking the runs over once the lease
        lapsed) takes the fork up from its journal alone and the fork completes, still
        naming its parent, with `draft` never run again."""
        if kind == "sqlite":
            store = f"sqlite:///{tmp_path / 'journal.db'}"
        else:
            store = request.getfixturevalue("postgres_url")
        runtime = start(cluster, store)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            parent_id = await client.start_run("article", {"topic": "owls"})
            parent, _ = await client.wait_run(parent_id, max_wait=30)
            at = version_after(parent, "step_succeeded", "draft")
            fork_id = await client.fork_run(parent_id, at, values={"text": "hold"})
            await wait_for(client, fork_id, lambda r: r.steps["review"].status == "running")
        runtime.process.kill()
        runtime.process.wait()
        (cluster.workdir / "ledgers" / "release").touch()
        again = start(cluster, store, "runtime-again")
        async with ControlClient(again.control, keys=again.operator) as client:
            fork, timed_out = await client.wait_run(fork_id, max_wait=30)
            after = await client.get_run(parent_id)
        assert not timed_out
        assert fork.status == "completed", fork.reason
        assert (fork.forked_from, fork.forked_at) == (parent_id, at)
        assert fork.data["url"] == "/read: hold"
        events = [h.event for h in fork.history]
        assert events.index("run_forked") < events.index("run_recovered")
        (recovered,) = [h for h in fork.history if h.event == "run_recovered"]
        assert ("taken over" in recovered.message) == (kind == "postgres")
        steps = [line["step"] for line in ledger(cluster) if line["run_id"] == fork_id]
        assert "draft" not in steps
        assert steps[-1] == "publish"
        assert (after.seq, after.history) == (parent.seq, parent.history)
