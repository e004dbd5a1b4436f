"""A blueprint with a role served by a model: the lead pipeline's writer against a scripted
OpenAI-compatible server on loopback, every other role and the tool host deterministic.

What a user relies on: the model's drafts go through the same approval as any, and
its calls, with their tokens, are in the record (`baton inspect`) and the report
(`baton report`), read by the commands a user runs.
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

from examples.lead_pipeline import demo
from protocols import TERMINAL_STATUSES
from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.testing.model_server import ModelServer
from tests.integration.conftest import HEARTBEAT, REPO, wait_for

pytestmark = [pytest.mark.integration]

TOKENS_IN, TOKENS_OUT = 412, 87
DRAFT = {
    "final": {
        "outputs": {"draft": {"subject": "Your workflows and Baton", "body": "Hello, ..."}},
        "rationale": "a short first email proposing a call",
        "confidence": 0.7,
        "caveats": [],
    },
    "usage": {"prompt_tokens": TOKENS_IN, "completion_tokens": TOKENS_OUT},
    "model": "scripted-writer",
}


def baton(cluster: ProcessGroup, *args: str) -> Any:
    assert cluster.keys is not None
    done = subprocess.run(
        [sys.executable, "-m", "runtime", *args, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "BATON_KEYS": str(cluster.keys), "BATON_PRINCIPAL": "operator"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start(cluster: ProcessGroup, journal: Path, model_url: str) -> RuntimeProcess:
    served = demo.actors({"BATON_MODEL_URL": model_url})
    assert demo.MODEL_WRITER in [spec for spec, *_ in served]
    for _, principal, role, _ in served:
        cluster.enroll(principal, role)
    for person, roles in demo.PEOPLE.items():
        cluster.enroll(person, *roles)
    runtime = cluster.start_runtime(
        ["examples.lead_pipeline:workflow"], heartbeat=HEARTBEAT, store=f"sqlite:///{journal}"
    )
    env = {"BATON_MODEL_URL": model_url, "BATON_MODEL": "scripted-writer"}
    for spec, principal, _, concurrency in served:
        cluster.start_actor(
            spec, runtime.agents, concurrency=concurrency, principal=principal, env=env
        )
    return runtime


async def run_the_day(cluster: ProcessGroup, runtime: RuntimeProcess) -> list[str]:
    """Every lead of the demo's day, each approval given by the sales manager; the runs."""
    ((_, leads),) = demo.BATCHES
    async with (
        ControlClient(runtime.control, keys=runtime.operator) as operator,
        ControlClient(runtime.control, keys=cluster.keys_of("sales-manager")) as manager,
    ):
        runs = [await operator.start_run("lead_pipeline", dict(lead)) for lead in leads]
        for run_id in runs:
            record = await wait_for(
                operator, run_id, lambda r: bool(r.pending) or r.status in TERMINAL_STATUSES,
                limit=60,
            )  # fmt: skip
            for decision in await manager.pending(run_id):
                await manager.decide(decision, "approve", comment="fine")
            if record.pending:
                record, timed_out = await operator.wait_run(run_id, max_wait=60)
                assert not timed_out, record.status
        return runs


def test_the_writers_model_calls_are_in_the_record_and_the_report(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    with ModelServer([DRAFT] * 8) as server:
        runtime = start(cluster, journal, server.url)
        runs = anyio.run(run_the_day, cluster, runtime)
        asked = len(server.requests)
    drafted = []
    for run_id in runs:
        record = baton(cluster, "inspect", run_id, "--control", runtime.control)
        calls = [h for h in record["history"] if h["event"] == "model_called"]
        if calls:
            drafted.append(record)
            assert record["status"] == "completed"
            (call,) = calls
            assert call["step"] == "draft_outreach"
            assert call["detail"]["tokens_in"] == TOKENS_IN
            assert call["detail"]["tokens_out"] == TOKENS_OUT
            assert record["data"]["draft"]["subject"] == "Your workflows and Baton"
            assert record["data"]["message_id"]  # sent, after the sales manager approved
    assert drafted, "no run's draft came from the model"
    assert len(drafted) == asked
    report = baton(
        cluster, "report", "lead_pipeline", "--workflow", "examples.lead_pipeline:workflow",
        "--store", f"sqlite:///{journal}",
    )  # fmt: skip
    figures = report[0] if isinstance(report, list) else report
    assert figures["tokens_in"] == TOKENS_IN * asked
    assert figures["tokens_out"] == TOKENS_OUT * asked
    (writer,) = [s for s in figures["steps"] if s["step"] == "draft_outreach"]
    assert (writer["model_calls"], writer["tokens_in"]) == (asked, TOKENS_IN * asked)
