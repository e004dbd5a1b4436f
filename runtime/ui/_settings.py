"""What a `baton ui` server is: whose key it acts with, where the runtime is, what it may do."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols import ClientKeys

HISTORY_PAGE = 100
"""History entries per page of a run's timeline: a run of 10,000 entries opens as fast
as one of 100."""
RUNS_PAGE = 50
"""Runs per page of the runs list."""
BULK_LIMIT = 10_000
"""The most runs one bulk action acts on: a larger set is narrowed by its filters first."""


@dataclass(frozen=True, slots=True)
class UiSettings:
    """One page server: it reads and acts through `control` as `principal`, whose key it holds.

    `roles` are the principal's roles as its keys directory lists them, used only to
    leave out buttons it may not use: the runtime decides every action regardless.
    """

    control: str
    principal: str
    token: str
    """The access token the printed URL carries; a browser trades it for a session cookie."""
    keys: ClientKeys | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    read_only: bool = False
    timeout: float = 10.0
    """Seconds a request to the runtime may take before the page says it does not answer."""

    def may_approve(self, groups: list[str]) -> bool:
        """Whether this principal holds the approver role of one of `groups` (any, insecure)."""
        if self.read_only:
            return False
        if self.keys is None:
            return True
        return any(f"approver:{group}" in self.roles for group in groups)

    @property
    def may_operate(self) -> bool:
        """Whether actions on runs (cancel, resume, fork, bulk) are offered."""
        if self.read_only:
            return False
        return self.keys is None or "operator" in self.roles
