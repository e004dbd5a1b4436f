"""How a cluster's runtimes keep their leases: lengths and paces, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LEASE = 5.0
"""Seconds a lease lasts unless renewed; a dead runtime's runs are taken over after it."""
DEFAULT_CHECK = 1.0
"""Seconds between looks for runs without a live owner."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """How long a lease lasts and how often the cluster is looked at."""

    lease: float = DEFAULT_LEASE
    check: float = DEFAULT_CHECK

    @property
    def renew_every(self) -> float:
        return self.lease / 3

    @property
    def margin(self) -> float:
        """How long before the database's expiry this runtime stops counting its lease held:
        room for the renewal's own round trip and for clocks that drift apart."""
        return min(1.0, self.lease / 5)
