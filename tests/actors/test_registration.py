"""Registration: what an actor declares, how it is welcomed, refused or ignored."""

from __future__ import annotations

import re

import anyio
import pytest

from actors import RegistrationRefused, tool_specs
from actors._cluster import ClusterWorker
from protocols import PROTOCOL_VERSION, Error, Heartbeat, Register, Welcome
from tests.actors.conftest import WAIT, FakeRuntime, serving
from tests.actors.sample import CallingAgent, EchoAgent, MathHost

pytestmark = pytest.mark.anyio


async def refused_with(runtime: FakeRuntime, answer: Error | Welcome) -> RegistrationRefused:
    """Run a worker whose registration the runtime answers with `answer`; return its refusal."""

    async def answer_register() -> None:
        identity, _ = await runtime.expect(Register)
        await runtime.send(identity, answer)

    worker = ClusterWorker(EchoAgent(), endpoints=[runtime.endpoint])
    async with anyio.create_task_group() as tg:
        tg.start_soon(answer_register)
        with anyio.fail_after(WAIT), pytest.raises(RegistrationRefused) as info:
            await worker.run()
    return info.value


class TestRegister:
    async def test_an_agent_declares_role_allowlist_and_capacity(
        self, runtime: FakeRuntime
    ) -> None:
        """An agent registers its role, its tool allowlist and its concurrency as capacity."""
        async with serving(CallingAgent(), runtime, concurrency=3):
            _, register = await runtime.expect(Register)
        assert register.protocol == PROTOCOL_VERSION
        assert (register.role, register.kind, register.capacity) == ("caller", "agent", 3)
        assert register.tools == ["add", "mul", "boom"]
        assert register.specs == []
        assert re.fullmatch(r"caller-\d+-[0-9a-f]{4}", register.name)

    async def test_a_tool_host_declares_its_tools_and_specs(self, runtime: FakeRuntime) -> None:
        """A tool host registers as `tool_host` with the names and specs of its tools."""
        async with serving(MathHost(), runtime):
            _, register = await runtime.expect(Register)
        assert (register.role, register.kind) == ("math", "tool_host")
        assert register.tools == ["add", "mul", "boom", "opaque"]
        assert register.specs == tool_specs(MathHost)

    async def test_an_explicit_name_is_used(self, runtime: FakeRuntime) -> None:
        """`name=` replaces the generated actor name."""
        async with serving(EchoAgent(), runtime, name="echo-7"):
            _, register = await runtime.expect(Register)
        assert register.name == "echo-7"


class TestWelcome:
    async def test_welcome_starts_heartbeats(self, runtime: FakeRuntime) -> None:
        """Once welcomed, the actor sends heartbeats at the interval the runtime chose."""
        async with serving(EchoAgent(), runtime) as worker:
            identity, _ = await runtime.accept(heartbeat_ms=20)
            beat_from, beat = await runtime.expect(Heartbeat)
        assert (beat_from, beat) == (identity, Heartbeat(in_flight=0))
        assert worker.statistics().reconnects == 0

    async def test_a_welcome_in_another_protocol_is_fatal(self, runtime: FakeRuntime) -> None:
        """A runtime that answers in another protocol version refuses the actor."""
        welcome = Welcome(protocol=PROTOCOL_VERSION + 1, session="s", heartbeat_ms=1_000)
        refusal = await refused_with(runtime, welcome)
        assert refusal.code == "incompatible_protocol"


class TestRefusal:
    @pytest.mark.parametrize(
        "code",
        [
            "incompatible_protocol",
            "role_refused",
            "tool_refused",
            "unauthorized",
            "invalid_message",
        ],
    )
    async def test_a_refusal_is_raised(self, runtime: FakeRuntime, code: str) -> None:
        """A registration refused for good raises `RegistrationRefused` with code and message."""
        refusal = await refused_with(runtime, Error(code=code, message="not you"))  # type: ignore[arg-type]
        assert (refusal.code, refusal.message) == (code, "not you")
        assert str(refusal) == f"registration refused ({code}): not you"


class TestRetry:
    async def test_an_unanswered_registration_is_retried_on_a_new_socket(
        self, runtime: FakeRuntime
    ) -> None:
        """With no answer in time, the actor reconnects and registers again."""
        async with serving(EchoAgent(), runtime, register_timeout=0.05) as worker:
            first, register = await runtime.expect(Register)
            second, again = await runtime.expect(Register)
            assert first != second
            assert again == register
            assert worker.statistics().reconnects >= 1

    async def test_not_registered_re_registers_on_the_same_socket(
        self, runtime: FakeRuntime
    ) -> None:
        """`Error(not_registered)` makes a welcomed actor register again on its socket."""
        async with serving(EchoAgent(), runtime) as worker:
            identity, register = await runtime.accept()
            await runtime.send(identity, Error(code="not_registered", message="who are you?"))
            again_from, again = await runtime.expect(Register)
            assert (again_from, again) == (identity, register)
            assert worker.statistics().reconnects == 0
