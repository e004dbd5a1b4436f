"""The connection: liveness, reconnection, hostile frames, and stopping."""

from __future__ import annotations

import anyio
import msgspec
import pytest
import structlog

from actors import Agent, Context, Result, Task
from actors._cluster import ClusterWorker
from protocols import (
    DEFAULT_MAX_FRAME,
    Assign,
    Bye,
    Heartbeat,
    Register,
    StepResult,
)
from tests.actors.conftest import WAIT, FakeRuntime, serving
from tests.actors.sample import BlockingAgent, EchoAgent

pytestmark = pytest.mark.anyio


def assign(step: str = "s1") -> Assign:
    return Assign(run_id="r1", step=step, attempt=1, inputs={"step": step})


class TestLiveness:
    async def test_a_silent_runtime_is_dropped_and_rejoined(self, runtime: FakeRuntime) -> None:
        """After three silent heartbeat intervals the actor reconnects and registers again."""
        with structlog.testing.capture_logs() as logs:
            async with serving(EchoAgent(), runtime) as worker:
                old, register = await runtime.accept(heartbeat_ms=20)
                new, again = await runtime.expect(Register)
                assert new != old
                assert again == register
                assert worker.statistics().reconnects == 1
        assert "actor.runtime_lost" in [entry["event"] for entry in logs]

    async def test_an_answering_runtime_keeps_the_connection(self, runtime: FakeRuntime) -> None:
        """Heartbeats from the runtime keep the actor on its connection."""
        async with serving(EchoAgent(), runtime) as worker:
            identity, _ = await runtime.accept(heartbeat_ms=100)
            for _ in range(5):
                sender, _ = await runtime.expect(Heartbeat)
                assert sender == identity
                await runtime.send(identity, Heartbeat())
            assert worker.statistics().reconnects == 0

    async def test_work_in_flight_is_reported_on_the_next_connection(
        self, runtime: FakeRuntime
    ) -> None:
        """A task running when the connection was lost sends its result on the new one."""
        agent = BlockingAgent()
        async with serving(agent, runtime):
            old, _ = await runtime.accept(heartbeat_ms=20)
            await runtime.send(old, assign())
            with anyio.fail_after(WAIT):
                await agent.started.wait()
            new, _ = await runtime.expect(Register)
            await runtime.welcome(new)
            agent.release.set()
            sender, result = await runtime.expect(StepResult)
        assert sender == new
        assert result.outputs == {"released": "s1"}

    async def test_bye_from_the_runtime_makes_the_actor_reconnect(
        self, runtime: FakeRuntime
    ) -> None:
        """A runtime that says `Bye` is rejoined on a new connection."""
        async with serving(EchoAgent(), runtime):
            old, _ = await runtime.accept()
            await runtime.send(old, Bye(reason="restarting"))
            new, _ = await runtime.expect(Register)
        assert new != old


class TestHostileFrames:
    @pytest.mark.parametrize(
        ("frames", "reason"),
        [
            pytest.param([b"\xc1"], "malformed", id="not-msgpack"),
            pytest.param([b""], "malformed", id="empty"),
            pytest.param(
                [msgspec.msgpack.encode({"type": "launch"})], "invalid", id="unknown-type"
            ),
            pytest.param(
                [msgspec.msgpack.encode({"type": "assign", "run_id": "r", "step": "s"})],
                "invalid",
                id="missing-fields",
            ),
            pytest.param(
                [msgspec.msgpack.encode(Register(protocol=1, name="n", role="r"))],
                "invalid",
                id="wrong-direction",
            ),
            pytest.param([b"\x00" * (DEFAULT_MAX_FRAME + 1)], "oversize", id="oversize"),
            pytest.param([b"a", b"b"], "multipart", id="multipart"),
        ],
    )
    async def test_a_bad_frame_is_counted_and_the_actor_carries_on(
        self, runtime: FakeRuntime, frames: list[bytes], reason: str
    ) -> None:
        """A frame that does not decode is logged and counted; the next task still runs."""
        with structlog.testing.capture_logs() as logs:
            async with serving(EchoAgent(), runtime) as worker:
                identity, _ = await runtime.accept()
                await runtime.send_raw(identity, *frames)
                await runtime.send(identity, assign())
                _, result = await runtime.receive()
                assert isinstance(result, StepResult)
                assert worker.statistics().bad_frames == 1
        bad = [entry for entry in logs if entry["event"] == "actor.bad_frame"]
        assert [entry["reason"] for entry in bad] == [reason]


class Lifecycle(Agent):
    role = "lifecycle"

    def __init__(self) -> None:
        self.events: list[str] = []

    async def setup(self) -> None:
        self.events.append("setup")

    async def teardown(self) -> None:
        self.events.append("teardown")

    async def handle(self, task: Task, ctx: Context) -> Result:
        ctx.log.info("agent.handled", note="bound")
        return Result(outputs={})


class TestStop:
    async def test_stop_says_bye_and_cancels_work_in_flight(self, runtime: FakeRuntime) -> None:
        """Setting `stop` sends `Bye`, cancels running handlers and returns."""
        agent = BlockingAgent()
        stop = anyio.Event()
        worker = ClusterWorker(agent, endpoints=[runtime.endpoint], stop=stop)
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                identity, _ = await runtime.accept()
                await runtime.send(identity, assign())
                await agent.started.wait()
                stop.set()
                sender, _ = await runtime.expect(Bye)
            assert sender == identity
            assert agent.cancelled.is_set()
        assert worker.statistics().in_flight == 0

    async def test_setup_and_teardown_run_once_around_serving(self, runtime: FakeRuntime) -> None:
        """`setup` runs before the actor registers and `teardown` after it stops."""
        agent = Lifecycle()
        async with serving(agent, runtime):
            await runtime.accept()
            assert agent.events == ["setup"]
        assert agent.events == ["setup", "teardown"]

    async def test_an_actor_is_served_once(self, runtime: FakeRuntime) -> None:
        """A cluster worker cannot be run a second time."""
        async with serving(EchoAgent(), runtime) as worker:
            await runtime.accept()
        with pytest.raises(RuntimeError, match=r"^an actor is served once$"):
            await worker.run()


class TestContextLog:
    async def test_the_handler_log_is_bound_to_the_task(self, runtime: FakeRuntime) -> None:
        """`ctx.log` carries the run, step, attempt and agent of the task."""
        with structlog.testing.capture_logs() as logs:
            async with serving(Lifecycle(), runtime, name="life-1"):
                identity, _ = await runtime.accept()
                await runtime.send(identity, assign())
                await runtime.expect(StepResult)
        entry = next(e for e in logs if e["event"] == "agent.handled")
        assert {k: entry[k] for k in ("run_id", "step", "attempt", "agent", "note")} == {
            "run_id": "r1",
            "step": "s1",
            "attempt": 1,
            "agent": "life-1",
            "note": "bound",
        }
