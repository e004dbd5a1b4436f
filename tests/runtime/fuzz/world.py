"""The world a fuzz example runs in: the supervisor's own core, with no socket.

`World` drives `runtime.supervisor._core.SupervisorCore` as the shell does:
frames to its planes' handlers, each batch committed before what it caused is
recorded as sent, timers fired on a fake clock. `Peers` speaks through a world
with a few frames, for reproductions.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from examples.customer_ops import workflow
from protocols import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    Assign,
    GetRun,
    Message,
    Register,
    RunAccepted,
    StartRun,
    actor_side_codec,
    client_side_control_codec,
)
from runtime import compile_workflow
from runtime.engine._events import JournalEvent
from runtime.engine._run import Run
from runtime.planes._agent_plane import AgentPlane
from runtime.planes._control_plane import ControlPlane
from runtime.security._principals import Principal
from runtime.store import MemoryStore, Store
from runtime.store._journal import ClockReading, JournalRecord
from runtime.supervisor._batch import AGENTS
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore, TimerKey
from runtime.supervisor._fork import ForkAsked
from runtime.supervisor._recovery import PastRead
from runtime.supervisor._timers import Timers
from runtime.testing import FakeClock
from runtime.workflow._definition import Role, Step, Workflow, chain
from runtime.workflow._graph import Graph
from runtime.workflow._policies import Halt, ProceedWithFlag

GRAPH = compile_workflow(workflow)
WORKFLOW = GRAPH.name
HEARTBEAT = 5.0
"""Seconds between heartbeats; a session silent for three of them is lost."""
MAX_ACTIVE_RUNS = 6
"""Low, so that `overloaded` is reached within an example."""
SMALL_FRAME = 4_096
"""A frame limit that makes oversize frames cheap to build."""

ENCODE = msgspec.msgpack.Encoder().encode
JOURNAL = msgspec.msgpack.Decoder(JournalEvent)
"""How the SQLite store reads events back: every event a plane causes must survive it."""

AGENT_ROLES = tuple(sorted(GRAPH.roles))
ROLE_TOOLS = {name: tuple(role.tools) for name, role in GRAPH.roles.items()}
TOOL_NAMES = tuple(sorted({t for tools in ROLE_TOOLS.values() for t in tools}))
STEPS = {name: node for name, node in GRAPH.nodes.items() if isinstance(node, Step)}


class ReadBackStore(MemoryStore):
    """A `MemoryStore` that first writes each event as the SQLite store does and reads it
    back, as recovery and `inspect` would: an event that does not read back is kept, with
    the reason, for the test to judge."""

    def __init__(self) -> None:
        super().__init__()
        self.unreadable: list[tuple[JournalEvent, str]] = []

    def append_nowait(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> bool:
        for record in records:
            try:
                JOURNAL.decode(ENCODE(record.event))
            except msgspec.ValidationError as exc:
                self.unreadable.append((record.event, str(exc)))
        return super().append_nowait(records, reading)


class RecordingCore(SupervisorCore):
    """The supervisor's core, noting each refusal the planes report to it."""

    def __init__(self, graph: Graph, store: Store, config: RuntimeConfig, **options: Any) -> None:
        super().__init__([graph], store, config, **options)
        self.rejects: list[tuple[str, bytes, str, str, bool]] = []
        """(reason, identity, detail, principal, logged) of each refused frame, in order."""

    def reject(self, reason: str, identity: bytes, detail: str = "", principal: str = "") -> bool:
        logged = super().reject(reason, identity, detail, principal)
        self.rejects.append((reason, identity, detail, principal, logged))
        return logged


class World:
    """The supervisor's own core, driven as its shell drives it, with no socket.

    Frames go to the core's planes; after each, the batch is committed to a
    `ReadBackStore` and what it lets leave is recorded as sent, per plane. Time is
    a `FakeClock` that only `tick` moves; runs are numbered (`run-1`, ...), so that
    names the corpus draws meet real runs.
    """

    def __init__(self, *, secure: bool, max_frame: int, graph: Graph = GRAPH) -> None:
        self.secure = secure
        self.clock = FakeClock()
        self.store = ReadBackStore()
        numbers = itertools.count(1)
        config = RuntimeConfig(
            heartbeat=HEARTBEAT, max_frame=max_frame, max_active_runs=MAX_ACTIVE_RUNS,
            restart_budget=0,
        )  # fmt: skip
        self.core = RecordingCore(
            graph, self.store, config, clock=self.clock, secure=secure,
            run_ids=lambda _: f"run-{next(numbers)}",
        )  # fmt: skip
        self.core.schedule_heartbeat()
        self.agent_out: list[tuple[bytes, bytes]] = []
        self.control_out: list[tuple[bytes, bytes]] = []
        self.past: list[PastRead] = []
        """Requests for past records the control plane handed over, to answer off the loop."""
        self.forks: list[ForkAsked] = []
        """Forks the control plane handed over, for their prefixes to be read off the loop."""

    @property
    def agents(self) -> AgentPlane:
        return self.core.agents

    @property
    def control(self) -> ControlPlane:
        return self.core.control

    @property
    def runs(self) -> Mapping[str, Run]:
        return self.core.runs

    @property
    def active(self) -> int:
        return self.core.active_runs

    @property
    def timers(self) -> Timers[TimerKey]:
        return self.core.timers

    @property
    def rejects(self) -> list[tuple[str, bytes, str, str, bool]]:
        return self.core.rejects

    @property
    def unreadable(self) -> list[tuple[JournalEvent, str]]:
        return self.store.unreadable

    @property
    def ended(self) -> Mapping[str, int]:
        """Runs ended, by status."""
        return self.core.statistics().runs_ended

    def agent_frame(
        self, identity: bytes, who: Principal | None, payload: bytes | memoryview, parts: int
    ) -> None:
        """A frame from `identity` on the agent plane, sent under `who`'s key."""
        self.core.agents.on_frame(identity, who, payload, parts)
        self.settle()

    def control_frame(
        self, identity: bytes, who: Principal | None, payload: bytes | memoryview, parts: int
    ) -> None:
        """A request from `identity` on the control plane, sent under `who`'s key."""
        self.core.control.on_frame(identity, who, payload, parts)
        self.settle()

    def tick(self, seconds: float) -> None:
        """Let `seconds` pass and fire the timers that fall due, as the shell's loop does."""
        self.clock.advance(seconds)
        self.core.fire_timers()
        self.settle()

    def settle(self) -> None:
        """Commit what the core journaled, then send what that lets leave, as the shell
        does after each turn: here, each frame is a turn."""
        batch = self.core.batch
        assert batch.append_now(), "a memory store appends at once"
        for plane, identity, payload in batch.live(batch.take_frames()):
            out = self.agent_out if plane == AGENTS else self.control_out
            out.append((identity, payload))
        self.past.extend(self.core.reads.take())
        self.forks.extend(self.core.forks.take())


# --- Small workflows and peers, for reproductions ----------------------------------------------

TINY = compile_workflow(
    Workflow(
        "tiny",
        roles=[Role("worker", tools=["search", "fetch"])],
        steps=[
            Step("a", role="worker", writes=["x"], tools=["search", "fetch"], on_failure=Halt()),
            Step("b", role="worker", reads=["x"], writes=["y"]),
            Step("c", role="worker", reads=["y"], writes=["z"]),
        ],
        edges=chain("a", "b", "c"),
    )
)
"""One worker role, three steps in a row; the first may call two tools and halts on failure."""
FLAGGED = compile_workflow(
    Workflow(
        "flagged",
        roles=[Role("worker")],
        steps=[
            Step("a", role="worker", writes=["x"], on_failure=ProceedWithFlag({"x": 0}, "no x")),
            Step("b", role="worker", reads=["x"], writes=["y"]),
            Step("c", role="worker", reads=["y"], writes=["z"]),
        ],
        edges=chain("a", "b", "c"),
    )
)
"""The first step's failure flags its output, which the second reads."""
AGENT = actor_side_codec()
CLIENT = client_side_control_codec()


class Peers:
    """A world and its peers speaking through the planes, a few frames at a time: for
    reproductions of what the fuzz found."""

    def __init__(self, graph: Graph, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.world = World(secure=False, max_frame=max_frame, graph=graph)
        self.graph = graph

    def agent(self, identity: bytes, message: Message) -> list[bytes]:
        """Send `message` from `identity`; the frames queued for `identity` in return."""
        sent = len(self.world.agent_out)
        self.world.agent_frame(identity, None, ENCODE(message), 1)
        return [frame for peer, frame in self.world.agent_out[sent:] if peer == identity]

    def client(self, message: Message) -> list[bytes]:
        sent = len(self.world.control_out)
        self.world.control_frame(b"client", None, ENCODE(message), 1)
        return [frame for _, frame in self.world.control_out[sent:]]

    def register(self, identity: bytes, name: str, **fields: Any) -> list[bytes]:
        role = fields.pop("role", "worker")
        return self.agent(
            identity, Register(protocol=PROTOCOL_VERSION, name=name, role=role, **fields)
        )

    def start(self) -> str:
        (frame,) = self.client(StartRun(id=1, protocol=PROTOCOL_VERSION, workflow=self.graph.name))
        accepted = CLIENT.decode(frame)
        assert isinstance(accepted, RunAccepted)
        return accepted.run_id

    def assigned(self, identity: bytes) -> list[Assign]:
        return [
            m
            for peer, frame in self.world.agent_out
            if peer == identity and isinstance(m := AGENT.decode(frame), Assign)
        ]

    def record(self, run_id: str) -> bytes:
        (frame,) = self.client(GetRun(id=2, protocol=PROTOCOL_VERSION, run_id=run_id))
        return frame
