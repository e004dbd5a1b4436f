"""Loading an actor by name, and running it as a whole process."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
import structlog
import zmq

from actors import ActorLoadError, load_actor, run_actor
from protocols import Bye, Error, Heartbeat, runtime_side_agent_codec
from tests.actors.conftest import WAIT, FakeRuntime
from tests.actors.sample import EchoAgent, MathHost

ROOT = Path(__file__).resolve().parents[2]


class TestLoadActor:
    @pytest.mark.parametrize(
        ("spec", "kind"),
        [("tests.actors.sample:EchoAgent", EchoAgent), ("tests.actors.sample:MathHost", MathHost)],
    )
    def test_a_class_is_imported_and_instantiated(self, spec: str, kind: type) -> None:
        """`module:Class` names an Agent or ToolHost subclass, built with no arguments."""
        assert type(load_actor(spec)) is kind

    @pytest.mark.parametrize(
        ("spec", "reason"),
        [
            ("tests.actors.sample", "expected 'package.module:ClassName'"),
            ("tests.actors.absent:Agent", "no module named 'tests.actors.absent'"),
            (
                "tests.actors.sample:Absent",
                "module 'tests.actors.sample' has no attribute 'Absent'",
            ),
            ("tests.actors.sample:NotAnActor", "NotAnActor is not an Agent or ToolHost subclass"),
            ("tests.actors.sample:Unnamed", "declares no role"),
            ("tests.actors.sample:tool", "tool is not an Agent or ToolHost subclass"),
        ],
    )
    def test_what_cannot_run_is_refused_with_the_reason(self, spec: str, reason: str) -> None:
        """A spec that names no runnable actor raises `ActorLoadError` saying why."""
        with pytest.raises(ActorLoadError) as info:
            load_actor(spec)
        assert (info.value.target, info.value.reason) == (spec, reason)
        assert str(info.value) == f"cannot load actor {spec!r}: {reason}"


class TestRunActor:
    def test_an_actor_that_cannot_load_exits_2(self) -> None:
        """`run_actor` returns 2 when the spec names no actor."""
        assert run_actor("tests.actors.sample:Absent", "tcp://127.0.0.1:1", 1) == 2

    def test_an_impossible_concurrency_exits_2(self) -> None:
        """`run_actor` returns 2 for a concurrency outside [1, 4096]."""
        assert run_actor("tests.actors.sample:EchoAgent", "tcp://127.0.0.1:1", 0) == 2

    @pytest.mark.parametrize(
        "endpoints",
        [
            pytest.param([], id="none"),
            pytest.param([f"tcp://127.0.0.1:{n}" for n in range(1, 66)], id="over-64"),
            pytest.param(["tcp://127.0.0.1:1", "tcp://127.0.0.1"], id="unusable"),
        ],
    )
    def test_endpoints_that_cannot_be_served_exit_2(self, endpoints: list[str]) -> None:
        """`run_actor` returns 2 with no endpoint, over 64, or one ZeroMQ cannot use."""
        with structlog.testing.capture_logs() as logs:
            assert run_actor("tests.actors.sample:EchoAgent", endpoints, 1) == 2
        assert {e["event"] for e in logs} & {"actor.bad_endpoints", "actor.endpoint_refused"}

    def test_a_refused_registration_exits_2(self) -> None:
        """`run_actor` returns 2 when the runtime refuses the actor."""
        context = zmq.Context()
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        codec = runtime_side_agent_codec()

        def refuse() -> None:
            if router.poll(int(WAIT * 1000)):
                identity, _ = router.recv_multipart()
                refusal = Error(code="role_refused", message="no echo here")
                router.send_multipart([identity, codec.encode(refusal)])

        thread = threading.Thread(target=refuse)
        thread.start()
        try:
            assert run_actor("tests.actors.sample:EchoAgent", f"tcp://127.0.0.1:{port}", 1) == 2
        finally:
            thread.join()
            router.close()
            context.term()

    @pytest.mark.anyio
    @pytest.mark.integration
    async def test_sigterm_stops_the_process_cleanly(self, runtime: FakeRuntime) -> None:
        """SIGTERM makes an actor process say `Bye` and exit 0."""
        script = (
            "import sys; from actors import run_actor; "
            "sys.exit(run_actor('tests.actors.sample:EchoAgent', sys.argv[1], 2))"
        )
        command = [sys.executable, "-c", script, runtime.endpoint]
        async with await anyio.open_process(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as process:
            identity, _ = await runtime.accept(heartbeat_ms=20)
            await runtime.expect(Heartbeat)
            process.send_signal(signal.SIGTERM)
            sender, _ = await runtime.expect(Bye)
            with anyio.fail_after(WAIT):
                status = await process.wait()
        assert sender == identity
        assert status == 0
