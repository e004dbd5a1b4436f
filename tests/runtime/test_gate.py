"""The gate reads a ROUTER part by part: what each handler call gets, what an idle socket
costs, and what a message of many parts costs its sender and the turns that read it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq

from runtime.planes._gate import PARTS_PER_TURN, Gate, Handler
from runtime.planes._rate import RateLimiter
from runtime.security._principals import Principal

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


def open_gate(refused: list[str], limiter: RateLimiter | None = None) -> Gate:
    def refuse(reason: str, identity: bytes, detail: str, principal: str) -> bool:
        refused.append(reason)
        return True

    if limiter is None:
        limiter = RateLimiter(rate=1_000, burst=1_000, clock=time.monotonic)
    return Gate(
        "agents", None, limiter, refuse=refuse, count=refused.append, limited=lambda *_: None
    )


def recorder(calls: list[Call]) -> Handler:
    def handler(
        identity: bytes,
        principal: Principal | None,
        payload: bytes | memoryview,
        parts: int,
        frame: object = None,
    ) -> None:
        calls.append((identity, bytes(payload), parts))

    return handler


def drain_until(gate: Gate, router: zmq.Socket[bytes], calls: list[Call], count: int) -> int:
    """Drain until `count` calls were made (or 5 s passed); how many drains it took."""
    handler = recorder(calls)
    drains = 0
    deadline = time.monotonic() + 5
    while len(calls) < count and time.monotonic() < deadline:
        router.poll(100)
        gate.drain(router, handler, 100)
        drains += 1
    return drains


def send_parts(dealer: zmq.Socket[bytes], count: int) -> None:
    for _ in range(count - 1):
        dealer.send(b"", zmq.SNDMORE)
    dealer.send(b"")


class Clock:
    """A hand-turned monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


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

    def test_a_message_of_many_parts_is_read_over_several_turns(
        self, pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]
    ) -> None:
        """No turn reads more than its share of a long message's parts; the message is
        handed on once, whole in its count, and the one after it arrives intact."""
        router, dealer = pair
        count = 3 * PARTS_PER_TURN
        send_parts(dealer, count)
        dealer.send(b"after")
        gate = open_gate([], RateLimiter(rate=10, burst=1e6, clock=Clock()))
        calls: list[Call] = []
        drains = drain_until(gate, router, calls, 2)
        assert calls == [(b"peer", b"", count), (b"peer", b"after", 1)]
        assert drains >= 3
        assert not gate.reading

    def test_each_part_costs_its_sender_a_token(
        self, pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]
    ) -> None:
        """A message of more parts than the sender's burst passes once, then the sender is
        cut off until its rate has paid for every part."""
        router, dealer = pair
        clock = Clock()
        refused: list[str] = []
        gate = open_gate(refused, RateLimiter(rate=10, burst=10, clock=clock))
        send_parts(dealer, 1_000)
        dealer.send(b"next")
        calls: list[Call] = []
        drain_until(gate, router, calls, 1)
        deadline = time.monotonic() + 5
        while not refused and time.monotonic() < deadline:
            router.poll(100)
            gate.drain(router, recorder(calls), 100)
        assert calls == [(b"peer", b"", 1_000)]
        assert refused == ["rate_limited"]
        clock.now += 100
        dealer.send(b"paid")
        drain_until(gate, router, calls, 2)
        assert calls[1:] == [(b"peer", b"paid", 1)]
