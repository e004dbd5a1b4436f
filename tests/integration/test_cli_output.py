"""What `baton` prints into a pipe at 80 columns, from a real runtime: one whole line per row.

A pipe is what grep, cut and awk read: each table is a header line and then
tab-separated rows, ids are never cut with "…", and no value is wrapped onto
the next line however narrow the width.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import anyio
import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import REPO, wait_for

pytestmark = [pytest.mark.integration]

FLOWS = "tests.integration.flows"
DECISION = "a decision on step 'spend' by approver:finance"
"""The note of a run held at its checkpoint: longer than its column would be at 80."""


@dataclass(frozen=True)
class Scene:
    """A runtime with two runs held at a checkpoint and one waiting for an agent."""

    cluster: ProcessGroup
    runtime: RuntimeProcess
    held: list[str]
    waiting: str

    def piped(self, *args: str) -> list[str]:
        """The lines `baton ARGS` writes to a pipe, the terminal it would have had 80 wide."""
        assert self.cluster.keys is not None
        env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
        done = subprocess.run(
            [sys.executable, "-m", "runtime", *args, "--control", self.runtime.control],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**env, "BATON_KEYS": str(self.cluster.keys), "COLUMNS": "80"},
        )
        assert done.returncode == 0, done.stderr
        assert "…" not in done.stdout
        return done.stdout.splitlines()


@pytest.fixture
def scene(cluster: ProcessGroup) -> Scene:
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"])

    async def start() -> tuple[list[str], str]:
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            held = [await client.start_run("spend", {"amount": 500}) for _ in range(2)]
            waiting = await client.start_run("flaky", {"n": 1})
            for run_id in held:
                await wait_for(client, run_id, lambda r: bool(r.pending))
            return held, waiting

    held, waiting = anyio.run(start)
    return Scene(cluster, runtime, held, waiting)


class TestPiped:
    def test_runs_are_one_line_each(self, scene: Scene) -> None:
        """`baton runs | cut -f1` gives the whole ids; each note stays on its row."""
        lines = scene.piped("runs")
        assert lines[0] == "run\tworkflow\tstatus\tstarted (UTC)\tnote"
        rows = [line.split("\t") for line in lines[1:]]
        assert [row[:3] for row in rows] == [
            [scene.waiting, "flaky", "waiting"],
            *([run_id, "spend", "waiting"] for run_id in reversed(scene.held)),
        ]
        assert [row[4] for row in rows[1:]] == [DECISION, DECISION]
        assert max(map(len, lines)) > 80

    def test_inbox_commands_can_be_grepped(self, scene: Scene) -> None:
        """Each decision's lines, and the command to decide it, are whole lines."""
        lines = scene.piped("inbox")
        assert lines[0] == "2 decision(s) waiting"
        for run_id in scene.held:
            heads = [line for line in lines if line.startswith(f"run {run_id}  step spend#1")]
            assert len(heads) == 1
            assert "  checkpoint before  since " in heads[0]
            assert f"  approve: baton approve {run_id} spend [--edit KEY=JSON]" in lines
            assert f"  reject: baton reject {run_id} spend" in lines
        assert max(map(len, lines)) > 80

    def test_a_record_is_sections_of_rows(self, scene: Scene) -> None:
        """`baton inspect`: the head, then each table under its title, a row a line."""
        run_id = scene.held[0]
        lines = scene.piped("inspect", run_id)
        assert lines[0] == f"run {run_id}  waiting"
        assert lines[1].startswith("workflow spend v1  fingerprint ")
        data = lines.index("data")
        assert lines[data + 1 : data + 3] == [
            "key\tvalue\twritten by\tagent\tconf.\trationale\tapproved / edited by\t"
            "flags / caveats",
            'amount\t500\tinput\t\t\t"given by operator when the run started"\t\t',
        ]
        steps = lines.index("steps")
        assert lines[steps + 1 : steps + 4] == [
            "step\tstatus\tvisits\tattempts\tlast",
            "spend\tawaiting_decision\t1\t0\t",
            "finish\tpending\t0\t0\t",
        ]
        history = lines.index("history")
        assert lines[history + 1] == "seq\tat (UTC)\tevent\tstep\tagent\tprincipal\tmessage"
        events = [line.split("\t") for line in lines[history + 2 :]]
        assert [(e[0], e[2], e[3], e[6]) for e in events] == [
            ("1", "run_started", "", "spend 1"),
            ("2", "checkpoint_opened", "spend#1", "a large spend: approve or reject by finance"),
        ]

    def test_history_is_the_same_rows(self, scene: Scene) -> None:
        """`baton history` prints the history section alone, without its title."""
        history = scene.piped("history", scene.held[0])
        inspected = scene.piped("inspect", scene.held[0])
        assert history == inspected[inspected.index("history") + 1 :]
