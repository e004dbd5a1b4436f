"""The other supervisors of the cluster, as actors are told of them.

Actors serve every supervisor of a cluster. Each `Welcome` names the agent
planes of the others, so that an actor given one endpoint finds the rest, and
when that set changes every live session hears of it in a `Peers`. What a
supervisor advertises is its static peers (`--peer`) and what it was last
told to announce, in that order, without repeats, at most `MAX_PEERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
import structlog

from protocols import MAX_PEERS, Endpoint

log = structlog.get_logger("baton.runtime")


def no_peers() -> Sequence[str]:
    """The peers of a supervisor that runs alone: none."""
    return ()


def valid_endpoints(endpoints: Sequence[str]) -> list[str]:
    """`endpoints` as the wire carries them; ValueError naming the first that it cannot."""
    if len(endpoints) > MAX_PEERS:
        raise ValueError(f"{len(endpoints)} peers; at most {MAX_PEERS} are advertised")
    for endpoint in endpoints:
        try:
            msgspec.convert(endpoint, Endpoint)
        except msgspec.ValidationError as exc:
            raise ValueError(f"peer {endpoint!r} is not an endpoint: {exc}") from None
    return list(endpoints)


class PeerList:
    """What a supervisor advertises as its peers: the static ones, then the announced."""

    __slots__ = ("_announced", "_static")

    def __init__(self, static: Callable[[], Sequence[str]] = no_peers) -> None:
        self._static = static
        self._announced: list[str] = []

    def announce(self, endpoints: Sequence[str]) -> list[str]:
        """Remember `endpoints` as the announced peers; what is advertised from now on.

        ValueError if one is no endpoint or there are more than `MAX_PEERS`.
        """
        self._announced = valid_endpoints(endpoints)
        return self.advertised()

    def advertised(self) -> list[str]:
        """The endpoints a `Welcome` names now; an invalid static one is left out, and logged,
        since an actor could not decode a welcome that named it."""
        merged = list(dict.fromkeys([*self._static(), *self._announced]))
        kept: list[str] = []
        for endpoint in merged:
            try:
                msgspec.convert(endpoint, Endpoint)
            except msgspec.ValidationError as exc:
                log.warning("peers.invalid", endpoint=endpoint[:300], reason=str(exc))
                continue
            kept.append(endpoint)
        if len(kept) > MAX_PEERS:
            log.warning("peers.too_many", peers=len(kept), advertised=MAX_PEERS)
            del kept[MAX_PEERS:]
        return kept
