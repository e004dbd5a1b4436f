"""The cluster's peers on the wire: `Welcome.peers` and `Peers`, bounded as every field is."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocols import (
    MAX_ENDPOINT,
    MAX_PEERS,
    PROTOCOL_VERSION,
    Peers,
    ProtocolError,
    Welcome,
    actor_side_codec,
    runtime_side_agent_codec,
)

ENCODE = msgspec.msgpack.Encoder().encode
PATTERN = "^[a-z][a-z0-9+.-]*://\\\\S+$"
"""The endpoint pattern as msgspec quotes it in its messages."""


def welcome() -> dict[str, Any]:
    """A welcome's fields, as a map to add to."""
    return {"type": "welcome", "protocol": PROTOCOL_VERSION, "session": "s", "heartbeat_ms": 10}


def refused(fields: dict[str, Any]) -> str:
    """The detail of the refusal of the frame made of `fields`, as an actor decodes it."""
    with pytest.raises(ProtocolError) as caught:
        actor_side_codec().decode(ENCODE(fields))
    assert caught.value.reason == "invalid"
    return caught.value.detail


def longest_endpoint() -> str:
    return "tcp://" + "h" * (MAX_ENDPOINT - len("tcp://:7710")) + ":7710"


class TestPeersMessage:
    """`Peers` carries at most `MAX_PEERS` endpoints of at most `MAX_ENDPOINT` characters."""

    def test_round_trip(self) -> None:
        """Endpoints at their bounds reach the actor as sent."""
        endpoints = [longest_endpoint()] + [f"tcp://127.0.0.1:{n}" for n in range(MAX_PEERS - 1)]
        message = Peers(endpoints=endpoints)
        assert actor_side_codec().decode(runtime_side_agent_codec().encode(message)) == message

    def test_an_empty_list_is_the_default(self) -> None:
        """`Peers` with no endpoints encodes as its tag alone and decodes as an empty list."""
        frame = runtime_side_agent_codec().encode(Peers())
        assert msgspec.msgpack.decode(frame) == {"type": "peers"}
        assert actor_side_codec().decode(frame) == Peers(endpoints=[])

    @pytest.mark.parametrize(
        ("endpoints", "detail"),
        [
            pytest.param(
                ["tcp://127.0.0.1:1"] * (MAX_PEERS + 1),
                "Expected `array` of length <= 64 - at `$.endpoints`",
                id="too-many",
            ),
            pytest.param(
                [longest_endpoint() + "0"],
                "Expected `str` of length <= 256 - at `$.endpoints[0]`",
                id="too-long",
            ),
            pytest.param([""], "Expected `str` of length >= 1 - at `$.endpoints[0]`", id="empty"),
            pytest.param(
                ["127.0.0.1:7710"],
                f"Expected `str` matching regex '{PATTERN}' - at `$.endpoints[0]`",
                id="no-transport",
            ),
            pytest.param(
                ["tcp://127.0.0.1:1", "tcp://a b:1"],
                f"Expected `str` matching regex '{PATTERN}' - at `$.endpoints[1]`",
                id="whitespace",
            ),
            pytest.param(
                [7710], "Expected `str`, got `int` - at `$.endpoints[0]`", id="not-a-string"
            ),
        ],
    )
    def test_out_of_bounds(self, endpoints: list[Any], detail: str) -> None:
        """Too many, too long, empty or malformed endpoints are invalid, with the path."""
        assert refused({"type": "peers", "endpoints": endpoints}) == detail

    def test_unknown_fields_are_refused(self) -> None:
        """`Peers` is strict about its fields, as every message is."""
        fields = {"type": "peers", "endpoints": [], "weights": [1]}
        assert refused(fields) == "Object contains unknown field `weights`"

    def test_the_runtime_never_receives_it(self) -> None:
        """`Peers` goes from the runtime to actors only."""
        with pytest.raises(ProtocolError) as caught:
            runtime_side_agent_codec().decode(ENCODE(Peers()))
        assert caught.value.detail == "Invalid value 'peers' - at `$.type`"


class TestWelcomePeers:
    """`Welcome.peers` is bounded as `Peers.endpoints` is, and optional."""

    def test_a_welcome_without_peers_names_none(self) -> None:
        """A welcome that names no peers decodes with an empty list: one supervisor."""
        assert actor_side_codec().decode(ENCODE(welcome())) == Welcome(
            protocol=PROTOCOL_VERSION, session="s", heartbeat_ms=10, peers=[]
        )

    def test_peers_travel_with_the_welcome(self) -> None:
        """The endpoints a welcome names reach the actor in order."""
        message = Welcome(
            protocol=PROTOCOL_VERSION,
            session="s",
            heartbeat_ms=10,
            peers=["tcp://127.0.0.1:7720", "ipc:///tmp/baton-b"],
        )
        decoded = actor_side_codec().decode(runtime_side_agent_codec().encode(message))
        assert decoded == message

    @pytest.mark.parametrize(
        ("peers", "detail"),
        [
            pytest.param(
                ["tcp://127.0.0.1:1"] * (MAX_PEERS + 1),
                "Expected `array` of length <= 64 - at `$.peers`",
                id="too-many",
            ),
            pytest.param(
                [longest_endpoint() + "0"],
                "Expected `str` of length <= 256 - at `$.peers[0]`",
                id="too-long",
            ),
            pytest.param(
                "tcp://127.0.0.1:1",
                "Expected `array`, got `str` - at `$.peers`",
                id="not-a-list",
            ),
        ],
    )
    def test_out_of_bounds(self, peers: Any, detail: str) -> None:
        """A welcome whose peers are out of bounds is invalid, with the path."""
        assert refused({**welcome(), "peers": peers}) == detail
