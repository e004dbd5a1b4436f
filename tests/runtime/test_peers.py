"""The cluster's other supervisors, as the agent plane tells actors of them: in each
`Welcome`, and in a `Peers` to every live session when they change. The supervisor's core
driven through its frames, without sockets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pytest
import structlog

from protocols import (
    MAX_PEERS,
    PROTOCOL_VERSION,
    Bye,
    Message,
    Peers,
    Register,
    Welcome,
    actor_side_codec,
)
from runtime.store import MemoryStore
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore
from runtime.testing import FakeClock
from tests.runtime.fuzz.world import TINY

AGENT = actor_side_codec()
ENCODE = msgspec.msgpack.Encoder().encode
B = "tcp://127.0.0.1:7720"
C = "tcp://127.0.0.1:7730"


class Supervisor:
    """A supervisor's core with its batches committed after each frame, as its shell does."""

    def __init__(
        self, static: Sequence[str] = (), peers: Callable[[], Sequence[str]] | None = None
    ) -> None:
        config = RuntimeConfig(peers=tuple(static))
        self.core = SupervisorCore([TINY], MemoryStore(), config, clock=FakeClock(), peers=peers)
        self.sent: list[tuple[bytes, Any]] = []

    def frame(self, identity: bytes, message: Message) -> None:
        self.core.agents.on_frame(identity, None, ENCODE(message), 1)
        self.settle()

    def settle(self) -> None:
        batch = self.core.batch
        assert batch.append_now(), "a memory store appends at once"
        for _, identity, payload in batch.live(batch.take_frames()):
            self.sent.append((identity, AGENT.decode(payload)))

    def register(self, identity: bytes) -> Welcome:
        """Register an agent as `identity`; the welcome it gets."""
        register = Register(protocol=PROTOCOL_VERSION, name=identity.decode(), role="worker")
        self.frame(identity, register)
        (welcome,) = self.received(identity, Welcome)
        return welcome

    def received(self, identity: bytes, kind: type[Any]) -> list[Any]:
        return [m for peer, m in self.sent if peer == identity and isinstance(m, kind)]


class TestWelcome:
    def test_a_lone_supervisor_names_no_peers(self) -> None:
        """With no peers, a welcome names none, and its frame carries no field for them."""
        supervisor = Supervisor()
        assert supervisor.register(b"a").peers == []
        welcome = Welcome(protocol=PROTOCOL_VERSION, session="a", heartbeat_ms=1_000)
        assert "peers" not in msgspec.msgpack.decode(ENCODE(welcome))

    def test_static_peers_then_those_given_without_repeats(self) -> None:
        """A welcome names the configured peers, then what `peers` gives, each once."""
        supervisor = Supervisor(static=[B], peers=lambda: [C, B])
        assert supervisor.register(b"a").peers == [B, C]

    def test_what_peers_gives_is_read_at_each_welcome(self) -> None:
        """The peers are asked for each time an actor is welcomed, so they may change."""
        live = [B]
        supervisor = Supervisor(peers=lambda: list(live))
        assert supervisor.register(b"a").peers == [B]
        live.append(C)
        assert supervisor.register(b"b").peers == [B, C]

    def test_an_invalid_peer_is_left_out_and_logged(self) -> None:
        """A peer no actor could decode is not advertised: the welcome names the others."""
        supervisor = Supervisor(peers=lambda: ["tcp://a b:1", B, "x" * 300])
        with structlog.testing.capture_logs() as logs:
            assert supervisor.register(b"a").peers == [B]
        invalid = [e["endpoint"] for e in logs if e["event"] == "peers.invalid"]
        assert invalid == ["tcp://a b:1", "x" * 300]

    def test_at_most_the_bound_is_advertised(self) -> None:
        """Beyond `MAX_PEERS`, the first ones are advertised and the excess is logged."""
        many = [f"tcp://127.0.0.1:{8000 + n}" for n in range(MAX_PEERS + 3)]
        supervisor = Supervisor(static=many)
        with structlog.testing.capture_logs() as logs:
            assert supervisor.register(b"a").peers == many[:MAX_PEERS]
        (excess,) = [e for e in logs if e["event"] == "peers.too_many"]
        assert (excess["peers"], excess["advertised"]) == (MAX_PEERS + 3, MAX_PEERS)


class TestAnnounce:
    def test_every_live_session_hears_of_new_peers(self) -> None:
        """`announce_peers` sends one `Peers` to each live session, not to one that left."""
        supervisor = Supervisor(static=[B])
        for identity in (b"a", b"b", b"gone"):
            supervisor.register(identity)
        supervisor.frame(b"gone", Bye(reason="done"))
        supervisor.core.agents.announce_peers([C])
        supervisor.settle()
        assert supervisor.received(b"a", Peers) == [Peers(endpoints=[B, C])]
        assert supervisor.received(b"b", Peers) == [Peers(endpoints=[B, C])]
        assert supervisor.received(b"gone", Peers) == []

    def test_the_next_welcome_names_what_was_announced(self) -> None:
        """An actor welcomed after an announcement is told the same peers."""
        supervisor = Supervisor()
        supervisor.core.agents.announce_peers([B, C])
        supervisor.settle()
        assert supervisor.register(b"a").peers == [B, C]
        supervisor.core.agents.announce_peers([C])
        supervisor.settle()
        assert supervisor.register(b"b").peers == [C]
        assert supervisor.received(b"a", Peers) == [Peers(endpoints=[C])]

    @pytest.mark.parametrize(
        ("endpoints", "message"),
        [
            pytest.param(
                ["tcp://127.0.0.1:1", "127.0.0.1:2"],
                "peer '127.0.0.1:2' is not an endpoint: Expected `str` matching regex "
                "'^[a-z][a-z0-9+.-]*://\\\\S+$'",
                id="no-transport",
            ),
            pytest.param(
                [f"tcp://127.0.0.1:{n}" for n in range(MAX_PEERS + 1)],
                "65 peers; at most 64 are advertised",
                id="too-many",
            ),
        ],
    )
    def test_peers_that_cannot_travel_are_refused(self, endpoints: list[str], message: str) -> None:
        """An announcement an actor could not decode raises, and nothing is sent."""
        supervisor = Supervisor()
        supervisor.register(b"a")
        with pytest.raises(ValueError, match=r"^\d+ peers|^peer ") as caught:
            supervisor.core.agents.announce_peers(endpoints)
        assert str(caught.value) == message
        supervisor.settle()
        assert supervisor.received(b"a", Peers) == []
        assert supervisor.register(b"b").peers == []
