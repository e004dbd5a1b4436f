"""A peer with a valid key that takes over a dead agent's ZeroMQ routing id gets nothing of
that agent's: real runtime, raw CURVE peers on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import zmq
from zmq.utils.monitor import parse_monitor_message

from protocols import PROTOCOL_VERSION, Assign, ClientKeys, Register, Welcome, actor_side_codec
from runtime import ControlClient
from runtime.launch import ProcessGroup

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"
HEARTBEAT = 2.0
"""Long heartbeats: before, a session outlived its connection by three of them."""
ROUTING_ID = b"agent-routing-id"
CODEC = actor_side_codec()


@contextmanager
def peer(endpoint: str, keys: ClientKeys) -> Iterator[zmq.Socket[bytes]]:
    """A bare DEALER on `endpoint` under `keys`, with the routing id of the agent under test."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 20)
    sock.setsockopt(zmq.ROUTING_ID, ROUTING_ID)
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server
    try:
        yield sock
    finally:
        sock.close(linger=0)
        ctx.term()


def handshake(sock: zmq.Socket[bytes], endpoint: str) -> None:
    """Connect `sock` and return once its CURVE handshake succeeded (the runtime accepted it
    under this routing id)."""
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        sock.connect(endpoint)
        assert monitor.poll(10_000), "the handshake did not succeed within 10 s"
        event = parse_monitor_message(monitor.recv_multipart())
        assert event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)


async def test_a_routing_id_taken_over_receives_nothing_of_the_dead_agents_session(
    cluster: ProcessGroup,
) -> None:
    """An agent holding a step closes without a goodbye; another key's connection takes its
    routing id and only listens. The agent's session ends at once (its step fails as
    `agent_lost`), and the newcomer receives no heartbeat and no assignment of the dead
    agent's, for two heartbeats and a new run of the agent's role."""
    cluster.enroll("worker", "worker")
    cluster.enroll("intruder", "finisher")
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
    worker, intruder = cluster.keys_of("worker"), cluster.keys_of("intruder")
    assert worker is not None
    assert intruder is not None
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        with peer(runtime.agents, worker) as agent:
            agent.connect(runtime.agents)
            agent.send(
                CODEC.encode(
                    Register(protocol=PROTOCOL_VERSION, name="w", role="worker", capacity=2)
                )
            )
            assert agent.poll(10_000)
            assert isinstance(CODEC.decode(agent.recv()), Welcome)
            first = await client.start_run("survivor", {"n": 1})
            assert agent.poll(10_000)
            assert isinstance(CODEC.decode(agent.recv()), Assign)
        # The agent's connection closed without a goodbye, and another key's connection
        # takes its routing id at once, well within a heartbeat.
        with peer(runtime.agents, intruder) as newcomer:
            handshake(newcomer, runtime.agents)
            second = await client.start_run("survivor", {"n": 2})
            received: list[object] = []
            # Whatever the runtime would send the dead agent's session leaves within this
            # window: two heartbeats, and the new run's assignment.
            until = time.monotonic() + 2 * HEARTBEAT
            while (left := until - time.monotonic()) > 0:
                if newcomer.poll(int(left * 1000) + 1):
                    received.append(CODEC.decode(newcomer.recv()))
        assert received == []
        record = await client.get_run(first)
        lost = record.steps["work"].attempts[0]
        assert (lost.failure, lost.message) == (
            "agent_lost",
            "agent worker was lost (its connection closed)",
        )
        waiting = await client.get_run(second)
        assert waiting.steps["work"].status == "queued"
