"""The supervisor's core on its own: no socket, a real store, a fake clock.

Frames go to its planes' handlers as the shell would hand them over; what they
cause may leave only once the batch that journaled it is committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from protocols import (
    PROTOCOL_VERSION,
    Assign,
    Cancel,
    ControlReply,
    Message,
    Register,
    RunAccepted,
    RuntimeMessage,
    StartRun,
    Welcome,
    actor_side_codec,
    client_side_control_codec,
)
from runtime.store import MemoryStore, SqliteStore, Store
from runtime.supervisor._batch import AGENTS
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore
from runtime.testing import FakeClock
from runtime.workflow._definition import Role, Step, Workflow
from runtime.workflow._graph import compile_workflow
from runtime.workflow._policies import Halt

pytestmark = pytest.mark.anyio

GRAPH = compile_workflow(
    Workflow(
        "one",
        roles=[Role("worker")],
        inputs=["note"],
        steps=[Step("a", role="worker", reads=["note"], timeout=5.0, on_failure=Halt())],
    )
)
"""One step, which times out after 5 s and then halts the run."""
ENCODE = msgspec.msgpack.Encoder().encode
AGENT = actor_side_codec()
CLIENT = client_side_control_codec()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def core_on(store: Store, clock: FakeClock | None = None) -> SupervisorCore:
    return SupervisorCore([GRAPH], store, RuntimeConfig(), clock=clock or FakeClock())


def register(core: SupervisorCore, identity: bytes = b"agent") -> None:
    message = Register(protocol=PROTOCOL_VERSION, name="w", role="worker")
    core.agents.on_frame(identity, None, ENCODE(message), 1)


def start(core: SupervisorCore, note: str = "hi", request: int = 1) -> None:
    message = StartRun(id=request, protocol=PROTOCOL_VERSION, workflow="one", inputs={"note": note})
    core.control.on_frame(b"client", None, ENCODE(message), 1)


def sent(core: SupervisorCore) -> list[Message]:
    """Commit the batch, then what it lets leave, decoded by each peer's codec."""
    assert core.batch.append_now()
    decoded: list[Any] = []
    for plane, _, payload in core.batch.live(core.batch.take_frames()):
        decoded.append(AGENT.decode(payload) if plane == AGENTS else CLIENT.decode(payload))
    return decoded


def of(kind: type[Any], messages: list[Message]) -> list[Any]:
    return [m for m in messages if isinstance(m, kind)]


class TestPersistThenSend:
    async def test_an_assignment_leaves_once_its_dispatch_is_in_the_journal(self) -> None:
        """Nothing the planes answer is handed over before the batch that journaled it is
        committed; then the run's start and its dispatch are in the store."""
        store = MemoryStore()
        core = core_on(store)
        register(core)
        start(core)
        (run_id,) = core.runs
        assert await store.journal(run_id) == []
        messages = sent(core)
        assert [type(m) for m in messages] == [Welcome, Assign, RunAccepted]
        journaled = [type(r.event).__name__ for r in await store.journal(run_id)]
        assert journaled == ["RunStarted", "StepDispatched"]

    async def test_a_batch_the_store_refuses_sends_nothing(self, tmp_path: Path) -> None:
        """With the journal full, the start whose commit failed is never answered, the core
        says why, and every start that was answered is in the journal."""
        path = tmp_path / "journal.db"
        SqliteStore(path)
        store = SqliteStore(path, max_pages=8)
        core = core_on(store)
        answered: list[ControlReply] = []
        for request in range(1, 100):
            start(core, "n" * 2_000, request)
            if not core.batch.append_now():
                break
            answered += of(RunAccepted, sent(core))
        assert core.batch.failure is not None
        assert "database or disk is full" in core.batch.failure.reason
        assert answered
        assert core.batch.take_frames() == []
        await store.close()
        reopened = SqliteStore(path)
        assert {a.run_id for a in answered} <= set(await reopened.run_ids())
        await reopened.close()


class TestTimeOnAFakeClock:
    async def test_a_step_times_out_when_the_clock_passes_its_timeout(self) -> None:
        """No result within the step's 5 s: its timer fires on the monotonic clock, the agent
        is told to stop, and the run halts."""
        clock = FakeClock()
        core = core_on(MemoryStore(), clock)
        register(core)
        start(core)
        sent(core)
        (run_id,) = core.runs
        clock.advance(4.9)
        core.fire_timers()
        assert of(Cancel, sent(core)) == []
        clock.advance(0.2)
        core.fire_timers()
        (cancel,) = of(Cancel, sent(core))
        assert (cancel.run_id, cancel.step) == (run_id, "a")
        assert core.runs[run_id].status == "halted"
        assert core.runs[run_id].steps["a"].attempts[-1].failure == "timeout"


class TestTakingUpAJournal:
    async def test_a_step_in_flight_is_assigned_again_under_its_attempt(self) -> None:
        """A core started on the journal of one that stopped takes the run up, and gives its
        step to the next agent under the attempt it had."""
        store = MemoryStore()
        first = core_on(store)
        register(first)
        start(first)
        (before,) = of(Assign, sent(first))
        second = core_on(store)
        await second.recover()
        register(second, b"another")
        after: list[RuntimeMessage] = of(Assign, sent(second))
        assert [(a.run_id, a.step, a.attempt) for a in after] == [
            (before.run_id, before.step, before.attempt)
        ]
        history = [h.event for h in second.runs[before.run_id].history]
        assert "run_recovered" in history
