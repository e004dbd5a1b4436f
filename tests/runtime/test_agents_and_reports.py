"""Two reads for a page: the agents connected with their roles' load, and a workflow's report.

The supervisor's core on its own, as in `test_supervisor_core`: requests go to
its control plane's handler, answers are read once the batch is committed.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocols import (
    PROTOCOL_VERSION,
    AgentsReply,
    AgentView,
    Assign,
    ControlError,
    GetReport,
    ListAgents,
    Message,
    Register,
    ReportReply,
    RoleView,
    StartRun,
    StepFailure,
    StepResult,
    actor_side_codec,
    client_side_control_codec,
)
from runtime.observe._report import report
from runtime.planes._reports import runs_to_report
from runtime.security._principals import Principal
from runtime.store import MemoryStore
from runtime.supervisor._batch import AGENTS
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore
from runtime.testing import FakeClock
from runtime.testing._clock import START_WALL
from runtime.workflow._definition import Role, Step, Workflow
from runtime.workflow._graph import compile_workflow
from runtime.workflow._policies import Halt

GRAPH = compile_workflow(
    Workflow(
        "one",
        roles=[Role("worker", tools=["lookup"])],
        inputs=["note"],
        steps=[
            Step(
                "a",
                role="worker",
                reads=["note"],
                writes=["x"],
                tools=["lookup"],
                on_failure=Halt(),
            )
        ],
    )
)
ENCODE = msgspec.msgpack.Encoder().encode
AGENT = actor_side_codec()
CLIENT = client_side_control_codec()

VIEWER = Principal("vic", b"v" * 40, frozenset({"viewer"}))
OPERATOR = Principal("olga", b"o" * 40, frozenset({"operator"}))
AGENT_KEY = Principal("w", b"w" * 40, frozenset({"worker"}))


class Runtime:
    """A core on a fake clock, driven by hand."""

    def __init__(self, *, secure: bool = False, restart_budget: int = 5) -> None:
        self.clock = FakeClock()
        config = RuntimeConfig(restart_budget=restart_budget)
        self.core = SupervisorCore([GRAPH], MemoryStore(), config, clock=self.clock, secure=secure)
        self._requests = 0

    def register(self, identity: bytes, name: str, **fields: Any) -> None:
        message = Register(protocol=PROTOCOL_VERSION, name=name, **fields)
        self.core.agents.on_frame(identity, None, ENCODE(message), 1)

    def from_agent(self, identity: bytes, message: Message) -> None:
        self.core.agents.on_frame(identity, None, ENCODE(message), 1)

    def start(self, note: str = "hi") -> None:
        self.ask(StartRun(id=0, protocol=PROTOCOL_VERSION, workflow="one", inputs={"note": note}))

    def ask(self, request: Any, principal: Principal | None = None) -> list[Any]:
        """Send `request` (its id replaced by a fresh one); every message that leaves."""
        self._requests += 1
        request = msgspec.structs.replace(request, id=self._requests)
        self.core.control.on_frame(b"client", principal, ENCODE(request), 1)
        return self.sent()

    def answer(self, request: Any, principal: Principal | None = None) -> Any:
        """The control plane's one answer to `request`."""
        (reply,) = [m for m in self.ask(request, principal) if not isinstance(m, Assign)]
        return reply

    def sent(self) -> list[Any]:
        assert self.core.batch.append_now()
        frames = self.core.batch.live(self.core.batch.take_frames())
        return [
            AGENT.decode(payload) if plane == AGENTS else CLIENT.decode(payload)
            for plane, _, payload in frames
        ]


LIST_AGENTS = ListAgents(id=0, protocol=PROTOCOL_VERSION)


def get_report(since: float | None = None, workflow: str = "one") -> GetReport:
    return GetReport(id=0, protocol=PROTOCOL_VERSION, workflow=workflow, since=since)


class TestListAgents:
    """`ListAgents`: every live session, and each role with instances, a queue or a crash loop."""

    def test_each_session_with_its_capacity_load_and_connection_time(self) -> None:
        """Two agents of a role and a tool host are listed by role and name; the role sums
        its instances' capacity and the steps they run."""
        runtime = Runtime()
        runtime.register(b"w1", "w1", role="worker", capacity=2, tools=["lookup"])
        runtime.clock.advance(5)
        runtime.register(b"w2", "w2", role="worker", capacity=3)
        runtime.register(b"bank", "bank", role="bank", kind="tool_host", tools=["lookup"])
        for index in range(3):
            runtime.start(f"n{index}")
        runtime.clock.advance(60)
        found = runtime.answer(LIST_AGENTS)
        assert isinstance(found, AgentsReply)
        assert found.agents == [
            AgentView(
                name="bank", role="bank", kind="tool_host", capacity=1, tools=["lookup"],
                connected_at=START_WALL + 5,
            ),
            AgentView(
                name="w1", role="worker", kind="agent", capacity=2, running=2, tools=["lookup"],
                connected_at=START_WALL,
            ),
            AgentView(
                name="w2", role="worker", kind="agent", capacity=3, running=1,
                connected_at=START_WALL + 5,
            ),
        ]  # fmt: skip
        assert found.roles == [
            RoleView(role="worker", instances=2, capacity=5, running=3, queued=0)
        ]

    def test_steps_waiting_for_room_are_queued_on_their_role(self) -> None:
        """With one agent of capacity 1 and three runs, one step runs and two wait."""
        runtime = Runtime()
        runtime.register(b"w1", "w1", role="worker")
        for index in range(3):
            runtime.start(f"n{index}")
        (role,) = runtime.answer(LIST_AGENTS).roles
        assert (role.instances, role.capacity, role.running, role.queued) == (1, 1, 1, 2)

    def test_a_role_with_steps_queued_and_no_agent_is_listed(self) -> None:
        runtime = Runtime()
        runtime.start()
        found = runtime.answer(LIST_AGENTS)
        assert found.agents == []
        assert found.roles == [
            RoleView(role="worker", instances=0, capacity=0, running=0, queued=1)
        ]

    def test_a_finished_step_no_longer_counts_as_running(self) -> None:
        runtime = Runtime()
        runtime.register(b"w1", "w1", role="worker")
        runtime.start()
        (run_id,) = runtime.core.runs
        runtime.from_agent(b"w1", StepResult(run_id=run_id, step="a", attempt=1, outputs={"x": 1}))
        runtime.sent()
        (agent,) = runtime.answer(LIST_AGENTS).agents
        assert agent.running == 0

    def test_an_agent_that_leaves_is_no_longer_listed(self) -> None:
        """Its entry and its role (with nothing queued) go."""
        runtime = Runtime()
        runtime.register(b"w1", "w1", role="worker")
        runtime.register(b"w2", "w2", role="worker")
        runtime.sent()
        runtime.core.agents.unreachable(b"w1")
        found = runtime.answer(LIST_AGENTS)
        assert [a.name for a in found.agents] == ["w2"]
        runtime.core.agents.unreachable(b"w2")
        assert runtime.answer(LIST_AGENTS) == AgentsReply(id=found.id + 1, agents=[], roles=[])

    def test_a_crash_looping_role_says_so_until_its_window_passes(self) -> None:
        """Over its restart budget a role is listed as crash-looping, with no instance; once
        the losses are older than the window it is no longer listed."""
        runtime = Runtime(restart_budget=1)
        for name in ("w1", "w2"):
            runtime.register(name.encode(), name, role="worker")
            runtime.core.agents.unreachable(name.encode())
        found = runtime.answer(LIST_AGENTS)
        assert found.roles == [
            RoleView(
                role="worker", instances=0, capacity=0, running=0, queued=0, crash_looping=True
            )
        ]
        runtime.clock.advance(RuntimeConfig().restart_window + 1)
        assert runtime.answer(LIST_AGENTS).roles == []


class TestGetReport:
    """`GetReport`: the figures `baton report` gives, over the runs the runtime holds."""

    @staticmethod
    def finished_runs(runtime: Runtime, outcomes: list[bool]) -> list[str]:
        """Runs whose one step succeeds or fails as `outcomes` say, a minute apart."""
        runtime.register(b"w1", "w1", role="worker")
        runs: list[str] = []
        for index, succeeds in enumerate(outcomes):
            runtime.start(f"n{index}")
            run_id = max(runtime.core.runs, key=lambda r: runtime.core.runs[r].created_at)
            result: Message = (
                StepResult(run_id=run_id, step="a", attempt=1, outputs={"x": index})
                if succeeds
                else StepFailure(run_id=run_id, step="a", attempt=1, reason="error", message="no")
            )
            runtime.from_agent(b"w1", result)
            runtime.sent()
            runs.append(run_id)
            runtime.clock.advance(60)
        return runs

    def test_the_figures_of_the_runs_held(self) -> None:
        """Three runs, one halted: the reply holds the report `baton report` makes of them."""
        runtime = Runtime()
        self.finished_runs(runtime, [True, False, True])
        reply = runtime.answer(get_report())
        assert isinstance(reply, ReportReply)
        figures = reply.report
        assert (figures.workflow, figures.runs, reply.total) == ("one", 3, 3)
        assert figures.outcomes == {"completed": 2, "halted": 1}
        assert figures.completion_rate == pytest.approx(2 / 3)
        (step,) = figures.steps
        assert (step.step, step.visits, step.failures) == ("a", 3, {"error": 1})
        assert figures == report(GRAPH, runtime.core.runs.values())

    def test_since_leaves_out_runs_created_before(self) -> None:
        runtime = Runtime()
        runs = self.finished_runs(runtime, [True, False, True])
        second = runtime.core.runs[runs[1]].created_at
        reply = runtime.answer(get_report(since=second))
        assert (reply.report.runs, reply.total) == (2, 2)
        assert reply.report.outcomes == {"completed": 1, "halted": 1}

    def test_a_workflow_not_loaded_is_refused_as_a_start_would_be(self) -> None:
        runtime = Runtime()
        refused = runtime.answer(get_report(workflow="nope"))
        assert isinstance(refused, ControlError)
        assert refused.code == "unknown_workflow"
        assert refused.message == "no workflow named 'nope' is loaded (loaded: one)"

    def test_no_runs_make_an_empty_report(self) -> None:
        reply = Runtime().answer(get_report())
        assert (reply.report.runs, reply.report.completion_rate, reply.total) == (0, None, 0)

    def test_past_the_bound_the_newest_runs_are_covered(self) -> None:
        """Of more runs than a report may cover, the newest are taken, and all are counted."""
        runtime = Runtime()
        runs = self.finished_runs(runtime, [True] * 5)
        held = runtime.core.runs.values()
        chosen, total = runs_to_report(held, "one", None, limit=2)
        assert total == 5
        assert {run.run_id for run in chosen} == set(runs[-2:])
        assert runs_to_report(held, "other", None, limit=2) == ([], 0)


class TestAuthority:
    """Both are reads: a viewer or an operator may ask; any other key is refused."""

    REQUESTS = pytest.mark.parametrize(
        ("request_", "action"),
        [(LIST_AGENTS, "list agents"), (get_report(), "get report")],
        ids=["list_agents", "get_report"],
    )

    @REQUESTS
    @pytest.mark.parametrize("principal", [VIEWER, OPERATOR], ids=["viewer", "operator"])
    def test_a_reader_is_answered(self, request_: Any, action: str, principal: Principal) -> None:
        reply = Runtime(secure=True).answer(request_, principal)
        assert isinstance(reply, AgentsReply | ReportReply)

    @REQUESTS
    def test_an_agent_key_is_refused_saying_what_it_needs(self, request_: Any, action: str) -> None:
        refused = Runtime(secure=True).answer(request_, AGENT_KEY)
        assert isinstance(refused, ControlError)
        assert refused.code == "unauthorized"
        assert refused.message == (
            f"principal 'w' may not {action}: it needs role 'operator' or 'viewer'"
        )

    @REQUESTS
    def test_no_principal_is_refused_on_a_secure_runtime(self, request_: Any, action: str) -> None:
        refused = Runtime(secure=True).answer(request_, None)
        assert isinstance(refused, ControlError)
        assert refused.code == "unauthorized"
