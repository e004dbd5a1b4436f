"""`baton agents`: the roles' load and the connected actors, as a pipe and as JSON read them.

The runtime's answer is given by hand: what is shown of it is the point here
(the answer itself is tested against real processes in the integration suite).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from protocols import AgentsReply, AgentView, RoleView
from runtime.cli import app
from runtime.client._client import ControlClient, ControlRefused
from runtime.testing._clock import START_WALL

runner = CliRunner()
CONTROL = ["--control", "tcp://127.0.0.1:9", "--insecure"]
FOUND = AgentsReply(
    id=1,
    agents=[
        AgentView(
            name="bank", role="bank", kind="tool_host", principal="bank", capacity=4,
            running=1, tools=["read_balance", "wire_money"], connected_at=START_WALL,
        ),
        AgentView(
            name="clerk-1", role="clerk", kind="agent", principal="clerk-1", capacity=2,
            running=2, connected_at=START_WALL + 90,
        ),
    ],
    roles=[
        RoleView(role="clerk", instances=1, capacity=2, running=2, queued=3),
        RoleView(role="doomed", instances=0, capacity=0, running=0, queued=0, crash_looping=True),
    ],
)  # fmt: skip


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> None:
    async def agents(self: ControlClient) -> AgentsReply:
        return FOUND

    monkeypatch.setattr(ControlClient, "agents", agents)


@pytest.mark.usefixtures("answered")
class TestAgents:
    def test_roles_then_actors_one_line_each_in_a_pipe(self) -> None:
        """Each sheet is its title, a header line and tab-separated rows."""
        result = runner.invoke(app, ["agents", *CONTROL])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == [
            "2 role(s)",
            "role\tinstances\tcapacity\trunning\tqueued\tcrash-looping",
            "clerk\t1\t2\t2\t3\tno",
            "doomed\t0\t0\t0\t0\tyes",
            "2 actor(s) connected",
            "name\trole\tkind\tprincipal\tcapacity\trunning\tconnected (UTC)\ttools",
            "bank\tbank\ttool host\tbank\t4\t1\t2023-11-14 22:13:20\tread_balance, wire_money",
            "clerk-1\tclerk\tagent\tclerk-1\t2\t2\t2023-11-14 22:14:50\t-",
        ]

    def test_json_holds_roles_and_agents_with_every_field(self) -> None:
        result = runner.invoke(app, ["agents", *CONTROL, "--json"])
        assert result.exit_code == 0, result.output
        shown = json.loads(result.output)
        assert [r["role"] for r in shown["roles"]] == ["clerk", "doomed"]
        assert shown["roles"][1]["crash_looping"] is True
        assert shown["agents"][1] == {
            "type": "agent",
            "name": "clerk-1",
            "role": "clerk",
            "kind": "agent",
            "principal": "clerk-1",
            "capacity": 2,
            "running": 2,
            "connected_at": START_WALL + 90,
        }


def test_a_refusal_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key that may not read gets the runtime's reason and exit status 2."""

    async def agents(self: ControlClient) -> AgentsReply:
        raise ControlRefused(
            "unauthorized",
            "principal 'w' may not list agents: it needs role 'operator' or 'viewer'",
        )

    monkeypatch.setattr(ControlClient, "agents", agents)
    result = runner.invoke(app, ["agents", *CONTROL])
    assert result.exit_code == 2
    assert "may not list agents: it needs role 'operator' or 'viewer'" in result.output
