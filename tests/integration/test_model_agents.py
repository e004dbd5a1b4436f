"""A model agent end to end: the runtime, the agent and its tool host as processes, the
model a scripted server on loopback."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup
from runtime.testing.model_server import ModelServer
from tests.integration.test_runtime_end_to_end import HEARTBEAT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.model_flows"
ANSWER = {
    "outputs": {"total": 5, "note": "added with the tool"},
    "rationale": "add(2, 3)",
    "confidence": 0.9,
    "caveats": [],
}


async def _registered(client: ControlClient, role: str) -> None:
    """Return once an actor of `role` is connected (polled), failing after a bound."""
    with anyio.fail_after(20):
        while True:
            reply = await client.agents()
            if any(agent.role == role for agent in reply.agents):
                return
            await anyio.sleep(0.02)


class TestModelAgent:
    async def test_a_model_step_is_recorded_with_its_calls(self, cluster: ProcessGroup) -> None:
        """The model's tool call goes through the runtime, each model call is in the run's
        history with its tokens, and the answer is the step's outputs."""
        script: list[dict[str, Any]] = [
            {
                "tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}],
                "usage": {"prompt_tokens": 120, "completion_tokens": 14},
            },
            {"final": ANSWER, "usage": {"prompt_tokens": 160, "completion_tokens": 30}},
        ]
        cluster.enroll("summer", "summer")
        cluster.enroll("calc", "tools:calc")
        runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
        with ModelServer(script) as server:
            cluster.start_actor(f"{FLOWS}:Calc", runtime.agents)
            async with ControlClient(runtime.control, keys=runtime.operator) as client:
                # The step's tool specs are those the hosts registered when it is dispatched.
                await _registered(client, "calc")
                env = {"BATON_MODEL_URL": server.url, "BATON_MODEL_KEY": "sk-test"}
                cluster.start_actor(f"{FLOWS}:Summer", runtime.agents, env=env)
                run_id = await client.start_run("sums", {"a": 2, "b": 3})
                record, _ = await client.wait_run(run_id, max_wait=30)
        assert record.status == "completed", record.reason
        assert record.data["total"] == 5
        assert record.provenance["total"].rationale == "add(2, 3)"
        calls = [h for h in record.history if h.event == "model_called"]
        assert [
            (h.detail["index"], h.detail["tokens_in"], h.detail["tokens_out"]) for h in calls
        ] == [
            (0, 120, 14),
            (1, 160, 30),
        ]
        assert [h.agent for h in calls] == ["summer", "summer"]
        assert [h.event for h in record.history].count("tool_called") == 1
        first = server.requests[0].body
        assert [t["function"]["name"] for t in first["tools"]] == ["add"]
        brief = json.loads(first["messages"][1]["content"].split("\n", 1)[1])
        assert brief["outputs"] == {"total": "int", "note": "str"}
        assistant = server.requests[1].body["messages"][2]
        assert (assistant["role"], assistant["content"]) == ("assistant", "")
        assert server.requests[0].headers["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({}, "no model URL: set BATON_MODEL_URL or the agent's `model_url` attribute"),
        (
            {"BATON_MODEL_URL": "http://127.0.0.1:9/v1", "BATON_MODEL_RESPONSE_FORMAT": "yaml"},
            "response format 'yaml' is none of",
        ),
    ],
    ids=["no-url", "bad-format"],
)
def test_a_model_agent_without_a_usable_configuration_stops_saying_why(
    cluster: ProcessGroup, env: dict[str, str], said: str
) -> None:
    """The agent process exits with status 2 before it registers, its log naming what to
    set, and no traceback."""
    cluster.enroll("summer", "summer")
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
    clean = {"BATON_MODEL_URL": "", "BATON_MODEL": "", "BATON_MODEL_RESPONSE_FORMAT": "", **env}
    agent = cluster.start_actor(f"{FLOWS}:Summer", runtime.agents, principal="summer", env=clean)
    assert agent.wait(timeout=30) == 2
    log = cluster.log_of("summer")
    assert "actor.load_failed" in log
    assert said in log
    assert "Traceback" not in log
