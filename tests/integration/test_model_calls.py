"""Model calls reported by real agent processes: in the run's history with their tokens,
in the report, and sent again with the task when the agent that made them is killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT, REPO, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOW = "tests.integration.model_caller:drafting"


def baton(cluster: ProcessGroup, *args: str) -> Any:
    """A `baton` command as an operator types it, with --json; its parsed output."""
    assert cluster.keys is not None
    done = subprocess.run(
        [sys.executable, "-m", "runtime", *args, "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "BATON_KEYS": str(cluster.keys)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def writer(
    cluster: ProcessGroup, runtime: RuntimeProcess, name: str, out: Path, mode: str
) -> subprocess.Popen[bytes]:
    assert cluster.keys is not None
    args = [runtime.agents, str(cluster.keys), name, str(out), mode]
    return cluster.start_module(name, "tests.integration.model_caller", args)


def assignments(out: Path) -> list[dict[str, Any]]:
    """The assignments an agent received, as written (fields left at their default are
    not on the wire)."""
    return [json.loads(line) for line in out.read_text().splitlines()]


async def test_a_killed_agents_model_call_goes_with_the_task_to_the_next(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """The first agent's call is journaled before it dies; the next attempt's assignment
    carries its reply, so the next agent makes only the call still missing; `inspect` shows
    both calls with their tokens, and `report` sums them."""
    cluster.enroll("writer-1", "writer")
    cluster.enroll("writer-2", "writer")
    journal = tmp_path / "journal.db"
    runtime = cluster.start_runtime([FLOW], store=f"sqlite:///{journal}", heartbeat=HEARTBEAT)
    first_out, second_out = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first = writer(cluster, runtime, "writer-1", first_out, "hold")
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("drafting", {"topic": "owls"})
        await wait_for(client, run_id, lambda r: any(e.event == "model_called" for e in r.history))
        first.kill()
        first.wait()
        writer(cluster, runtime, "writer-2", second_out, "finish")
        record, _ = await client.wait_run(run_id, max_wait=20)
    assert record.status == "completed", record.reason
    (sent_first,) = assignments(first_out)
    assert (sent_first["attempt"], sent_first.get("model_replies", [])) == (1, [])
    assert sent_first["outputs"] == {"text": "str", "words": "int"}
    (sent_second,) = assignments(second_out)
    assert sent_second["attempt"] == 2
    assert sent_second["model_replies"] == [
        {
            "type": "model_reply",
            "index": 0,
            "request_digest": f"{run_id}/draft/0/owls",
            "reply": {"text": "draft 0 on owls"},
        }
    ]
    inspected = baton(cluster, "inspect", run_id, "--control", runtime.control)
    calls = [e for e in inspected["history"] if e["event"] == "model_called"]
    assert [(e["attempt"], e["agent"], e["detail"]["index"]) for e in calls] == [
        (1, "writer-1", 0),
        (2, "writer-2", 1),
    ]
    assert [(e["detail"]["tokens_in"], e["detail"]["tokens_out"]) for e in calls] == [
        (812, 96),
        (430, 61),
    ]
    assert calls[0]["message"] == "model gpt-4o-mini: 812 in, 96 out, 1,240 ms, finish stop"
    (figures,) = baton(cluster, "report", "--store", f"sqlite:///{journal}", "-w", FLOW)
    (draft,) = figures["steps"]
    assert (draft["model_calls"], draft["tokens_in"], draft["tokens_out"]) == (2, 1242, 157)
    assert (figures["tokens_in"], figures["tokens_out"]) == (1242, 157)
    assert figures["tokens_per_run"] == 1242 + 157
