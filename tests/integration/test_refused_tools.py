"""A tool call outside the step, as the agent that made it and the run's history show it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup
from tests.integration.conftest import HEARTBEAT
from tests.integration.test_security import wait_for_log

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

REFUSAL = "tool 'wire_money' is not allowed in step 'pay': it is not one of the step's tools"


async def test_the_agent_logs_each_refusal_once_and_the_history_has_no_stale_report(
    cluster: ProcessGroup,
) -> None:
    """Each attempt's refused call is one warning in the agent's log, without a traceback;
    the agent sends no report for the attempt the runtime failed, so neither its log nor
    the run's history (which goes on to the retry) has a "stale" refusal."""
    cluster.enroll("teller", "teller")
    runtime = cluster.start_runtime(["tests.integration.overreach:overreach"], heartbeat=HEARTBEAT)
    agent = cluster.start_actor(
        "tests.integration.overreach:Teller", runtime.agents, label="teller"
    )
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        run_id = await client.start_run("overreach", {"account": "acc-1"})
        record, _ = await client.wait_run(run_id, max_wait=30)
    assert record.status == "halted"
    assert [a.failure for a in record.steps["pay"].attempts] == ["tool_refused", "tool_refused"]
    history = [h.event for h in record.history]
    assert history.count("tool_refused") == 2
    assert "refused" not in history
    # The run halts as soon as the runtime refuses the second call; the agent logs the refusal
    # when the reply reaches it, which may be just after.
    await wait_for_log(
        cluster,
        "teller",
        lambda e: e.get("run_id") == run_id and e.get("attempt") == 2,
    )
    cluster.stop(agent)
    lines = [json.loads(line) for line in cluster.log_of("teller").splitlines()]
    about = _about(cluster, run_id)
    assert [(line["event"], line["attempt"]) for line in about] == [
        ("actor.tool_refused", 1),
        ("actor.tool_refused", 2),
    ]
    assert {(line["level"], line["tool"], line["message"]) for line in about} == {
        ("warning", "wire_money", REFUSAL)
    }
    assert not [line for line in lines if "exception" in line]
    assert not [line for line in lines if line["event"] == "actor.runtime_error"]


def _about(cluster: ProcessGroup, run_id: str) -> list[dict[str, Any]]:
    """The teller's log lines about `run_id`."""
    lines = [json.loads(line) for line in cluster.log_of("teller").splitlines() if line.strip()]
    return [line for line in lines if line.get("run_id") == run_id]
