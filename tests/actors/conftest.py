"""A fake runtime for actor tests: a real ROUTER socket speaking the real codecs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import pytest
import zmq
import zmq.asyncio

from actors import Agent, ToolHost
from actors._cluster import ClusterWorker
from protocols import (
    PROTOCOL_VERSION,
    ActorMessage,
    Heartbeat,
    Message,
    Register,
    ToolSpec,
    Welcome,
    runtime_side_agent_codec,
)

M = TypeVar("M", bound=Message)

WAIT = 5.0
"""Upper bound on any single wait in these tests; a healthy run takes milliseconds."""


@pytest.fixture
def anyio_backend() -> str:
    # pyzmq's async sockets only work on asyncio.
    return "asyncio"


class FakeRuntime:
    """Plays the runtime's agent plane: receives what actors send, sends what the test says."""

    def __init__(self, context: zmq.asyncio.Context) -> None:
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.codec = runtime_side_agent_codec()

    async def receive(self, *, heartbeats: bool = False) -> tuple[bytes, ActorMessage]:
        """The next message from any actor; heartbeats are skipped unless asked for."""
        with anyio.fail_after(WAIT):
            while True:
                identity, frame = await self.socket.recv_multipart()
                message = self.codec.decode(frame)
                if heartbeats or not isinstance(message, Heartbeat):
                    return identity, message

    async def expect(self, kind: type[M], *, heartbeats: bool = False) -> tuple[bytes, M]:
        identity, message = await self.receive(heartbeats=heartbeats or kind is Heartbeat)
        assert isinstance(message, kind), f"expected {kind.__name__}, got {message!r}"
        return identity, message

    async def send(self, identity: bytes, message: Message) -> None:
        await self.socket.send_multipart([identity, self.codec.encode(message)])

    async def send_raw(self, identity: bytes, *frames: bytes) -> None:
        await self.socket.send_multipart([identity, *frames])

    async def accept(
        self,
        *,
        heartbeat_ms: int = 60_000,
        tool_specs: list[ToolSpec] | None = None,
        peers: list[str] | None = None,
    ) -> tuple[bytes, Register]:
        """Await a `Register` and welcome its sender."""
        identity, register = await self.expect(Register)
        await self.welcome(identity, heartbeat_ms=heartbeat_ms, tool_specs=tool_specs, peers=peers)
        return identity, register

    async def welcome(
        self,
        identity: bytes,
        *,
        heartbeat_ms: int = 60_000,
        tool_specs: list[ToolSpec] | None = None,
        peers: list[str] | None = None,
    ) -> None:
        welcome = Welcome(
            protocol=PROTOCOL_VERSION,
            session=f"session-{identity.hex()}",
            heartbeat_ms=heartbeat_ms,
            tool_specs=tool_specs or [],
            peers=peers or [],
        )
        await self.send(identity, welcome)


@asynccontextmanager
async def fake_runtimes(count: int) -> AsyncIterator[list[FakeRuntime]]:
    """`count` fake runtimes on loopback, as the supervisors of one cluster."""
    context = zmq.asyncio.Context()
    fakes = [FakeRuntime(context) for _ in range(count)]
    try:
        yield fakes
    finally:
        for fake in fakes:
            fake.socket.close(linger=0)
        context.term()


@pytest.fixture
async def runtime() -> AsyncIterator[FakeRuntime]:
    async with fake_runtimes(1) as (fake,):
        yield fake


@asynccontextmanager
async def serving(
    actor: Agent | ToolHost, *runtimes: FakeRuntime, **options: Any
) -> AsyncIterator[ClusterWorker]:
    """Run `actor` against `runtimes` for the body of the block, then stop it."""
    stop = anyio.Event()
    endpoints = [runtime.endpoint for runtime in runtimes]
    worker = ClusterWorker(actor, endpoints=endpoints, stop=stop, **options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        try:
            yield worker
        finally:
            stop.set()
