"""The gate reads a ROUTER part by part: what each handler call gets, and what an idle
socket costs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq

from runtime._gate import Gate
from runtime._principals import Principal
from runtime._rate import RateLimiter

Call = tuple[bytes, bytes, int]


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    dealer = ctx.socket(zmq.DEALER)
    for sock in (router, dealer):
        sock.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:*")
    dealer.setsockopt(zmq.ROUTING_ID, b"peer")
    dealer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
    try:
        yield router, dealer
    finally:
        router.close(linger=0)
        dealer.close(linger=0)
        ctx.term()


def open_gate(refused: list[str]) -> Gate:
    def refuse(reason: str, identity: bytes, detail: str, principal: str) -> bool:
        refused.append(reason)
        return True

    limiter = RateLimiter(rate=1_000, burst=1_000, clock=time.monotonic)
    return Gate("agents", None, limiter, refuse, refused.append, lambda *_: None)


def drain_until(gate: Gate, router: zmq.Socket[bytes], calls: list[Call], count: int) -> None:
    def handler(
        identity: bytes,
        principal: Principal | None,
        payload: bytes | memoryview,
        parts: int,
        frame: object = None,
    ) -> None:
        calls.append((identity, bytes(payload), parts))

    deadline = time.monotonic() + 5
    while len(calls) < count and time.monotonic() < deadline:
        router.poll(100)
        gate.drain(router, handler, 100)


class TestGate:
    def test_each_message_whole_with_its_number_of_parts(
        self, pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]
    ) -> None:
        """A message of several parts is one call with its first part and how many came;
        the message after it arrives intact."""
        router, dealer = pair
        dealer.send(b"one")
        dealer.send_multipart([b"a", b"b", b"c"])
        dealer.send(b"two")
        calls: list[Call] = []
        refused: list[str] = []
        drain_until(open_gate(refused), router, calls, 3)
        assert calls == [(b"peer", b"one", 1), (b"peer", b"a", 3), (b"peer", b"two", 1)]
        assert refused == []

    def test_an_idle_socket_gives_nothing_and_raises_nothing(
        self, pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]
    ) -> None:
        router, _ = pair
        calls: list[Call] = []
        drain_until(open_gate([]), router, calls, 0)
        open_gate([]).drain(router, lambda *_: calls.append((b"", b"", 0)), 100)
        assert calls == []
