"""Blueprints with roles served by models, against a scripted OpenAI-compatible server on
loopback, every other role and the tool hosts deterministic.

What a user relies on: the model's drafts go through the same approval as any, and
its calls, with their tokens, are in the record (`baton inspect`) and the report
(`baton report`), read by the commands a user runs; and `baton demo NAME` runs each
blueprint with its model agents once a model endpoint is configured.
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


def baton(cluster: ProcessGroup | None, *args: str) -> Any:
    """What `baton ARGS --json` prints, as the operator of `cluster`'s keys if given."""
    env = dict(os.environ)
    if cluster is not None:
        assert cluster.keys is not None
        env |= {"BATON_KEYS": str(cluster.keys), "BATON_PRINCIPAL": "operator"}
    done = subprocess.run(
        [sys.executable, "-m", "runtime", *args, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
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


def _final(outputs: dict[str, Any], rationale: str, *said: str) -> dict[str, Any]:
    """A reply giving `outputs`, for the first request whose messages say each of `said`."""
    return {
        "for": list(said),
        "final": {"outputs": outputs, "rationale": rationale, "confidence": 0.8, "caveats": []},
        "usage": {"prompt_tokens": TOKENS_IN, "completion_tokens": TOKENS_OUT},
        "model": "scripted",
    }


CLASSIFY, WRITE = "You triage customer requests", "You write a short, friendly reply"
RECONCILE, NARRATE = "reconciliation accountant", "variance narrative"
MODEL_DEMOS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "customer_ops": ("demo.db", [
        _final({"category": "billing"}, "a double charge", CLASSIFY, "charged twice"),
        _final({"category": "billing"}, "an invoice", CLASSIFY, "invoice higher"),
        _final({"category": "general"}, "a password", CLASSIFY, "change my password"),
        _final({"category": "billing"}, "a refund", CLASSIFY, "went through twice"),
        _final({"draft": "Hello Ada, we have refunded 19.99 EUR."}, "refund", WRITE, "Ada"),
        _final({"draft": "Hello Grace, every charge is correct."}, "explain", WRITE, "Grace"),
        _final({"draft": "Hello Alan, see the help centre."}, "answer", WRITE, "Alan"),
        _final({"draft": "Hello Barbara, we refunded 12.50 EUR."}, "refund", WRITE, "Barbara"),
    ]),
    "month_end_close": ("demo-month_end_close.db", [
        *[_final({"kinds": {"CARD-88": "unexplained"}}, "no evidence", RECONCILE, "CARD-88")] * 2,
        *[_final({"kinds": {"WIRE-8812": "unexplained"}}, "unknown payee", RECONCILE,
                 "WIRE-8812")] * 2,
        _final({"narrative": "October ties out."}, "figures", NARRATE, "2026-10"),
        *[_final({"narrative": "November: a wire is unexplained."}, "figures", NARRATE,
                 "2026-11")] * 2,
    ]),
    "lead_pipeline": ("demo-lead_pipeline.db", [
        *[_final({"draft": {"subject": "Baton", "body": "Hello"}}, "a first email",
                 "first sales email")] * 3,
    ]),
}  # fmt: skip
"""Each blueprint's journal in the demo's folder, and its model's script: one reply for
each call its model agents make over the demo's runs."""


@pytest.mark.parametrize("name", list(MODEL_DEMOS))
def test_baton_demo_runs_each_blueprint_with_its_model_agents(name: str, tmp_path: Path) -> None:
    """With `BATON_MODEL_URL` set, the demo's model agents ask the model (every reply of the
    script is used, none asked for twice), every run still completes, and the calls with
    their tokens are in the demo's records and in `baton report`."""
    journal, script = MODEL_DEMOS[name]
    with ModelServer(script) as server:
        done = subprocess.run(
            [sys.executable, "-m", "runtime", "demo", name, "--agents-port", "0",
             "--control-port", "0"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "COLUMNS": "200", "BATON_MODEL_URL": server.url,
                 "BATON_MODEL": "scripted"},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert server.remaining == 0, "a model agent made fewer calls than the script expects"
        calls = len(server.requests)
    assert calls == len(script)
    assert f"served by scripted at {server.url}" in done.stdout
    assert "model calls: " in done.stdout
    report = baton(
        None, "report", name, "--workflow",
        f"examples.{name}:workflow", "--store", f"sqlite:///{tmp_path / '.baton' / journal}",
    )  # fmt: skip
    figures = report[0] if isinstance(report, list) else report
    assert figures["tokens_in"] == TOKENS_IN * calls
    assert figures["tokens_out"] == TOKENS_OUT * calls
