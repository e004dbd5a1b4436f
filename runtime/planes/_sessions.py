"""Connected actors as the supervisor sees them, and how work is placed on them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from protocols import MAX_NAME, ActorKind, ToolSpec
from runtime.security._principals import Principal

TaskKey = tuple[str, str, int]
"""(run_id, step, attempt): one attempt of one step."""


class Session:
    """One registered actor process on the agent plane."""

    __slots__ = (
        "attached",
        "capacity",
        "carried",
        "connected",
        "fd",
        "identity",
        "in_flight",
        "kind",
        "last_seen",
        "live",
        "name",
        "principal",
        "role",
        "tool_calls",
        "tools",
    )

    def __init__(
        self,
        identity: bytes,
        name: str,
        role: str,
        *,
        kind: ActorKind,
        tools: frozenset[str],
        capacity: int,
        now: float,
        principal: Principal | None = None,
    ) -> None:
        self.identity = identity
        self.principal = principal
        """Whose key the session authenticated with; None only on an insecure runtime."""
        self.name = name
        self.role = role
        self.kind: ActorKind = kind
        self.tools = tools
        self.capacity = capacity
        self.in_flight: set[TaskKey] = set()
        self.tool_calls: set[int] = set()
        """Runtime call ids this tool host is serving."""
        self.attached: set[int] = set()
        """Runtime call ids sent to this host as repeats of calls it was already running
        when it registered: answered when those finish, and taking no room of their own."""
        self.carried = 0
        """Work the actor says it runs that the runtime did not place on it (from an earlier
        session, or not yet cancelled): it takes room all the same."""
        self.fd = -1
        """The descriptor of the session's connection in the runtime (-1: not known), so that
        the connection's closing ends the session at once."""
        self.live = True
        """False once the session ended: nothing still queued for it may be sent."""
        self.last_seen = now
        self.connected = now
        """When the session registered, on the runtime's monotonic clock."""

    @property
    def key(self) -> bytes:
        """The session's public key (Z85), or b"" on an insecure runtime."""
        return b"" if self.principal is None else self.principal.public_key

    @property
    def principal_name(self) -> str:
        return "" if self.principal is None else self.principal.name

    @property
    def placed(self) -> int:
        """Jobs the runtime placed on the actor and has not had answered."""
        return len(self.in_flight) + len(self.tool_calls)

    @property
    def load(self) -> int:
        return self.placed + self.carried

    def carry(self, jobs: int) -> None:
        """Count `jobs` the runtime did not place as taking room, up to the capacity."""
        self.carried = max(0, min(jobs, self.capacity - self.placed))

    def reported(self, in_flight: int) -> None:
        """The actor says it runs `in_flight` jobs: what the runtime did not place counts too.

        Jobs placed but not yet arrived, or finished but not yet answered, make the
        report lower than the runtime's own count, never higher.
        """
        self.carry(in_flight - self.placed)

    def fill(self) -> None:
        """The actor said it had no room: count it full until it reports or answers again."""
        self.carry(self.capacity)

    @property
    def free(self) -> int:
        return self.capacity - self.load


@dataclass(frozen=True, slots=True)
class PendingToolCall:
    """A tool call between an agent and a host, under the runtime's own call id."""

    call: int
    agent: Session
    agent_call: int
    run_id: str
    step: str
    attempt: int
    tool: str
    args: dict[str, Any]
    idempotency_key: str


class Pool:
    """Sessions of one role (or serving one tool), picked in turn among those with room."""

    __slots__ = ("_turn", "sessions")

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self._turn = itertools.count()

    def add(self, session: Session) -> None:
        self.sessions.append(session)

    def remove(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.remove(session)

    def pick(self) -> Session | None:
        """The next session with free capacity, rotating so that load spreads."""
        sessions = self.sessions
        count = len(sessions)
        if count == 0:
            return None
        first = next(self._turn) % count
        for offset in range(count):
            session = sessions[(first + offset) % count]
            if session.free > 0:
                return session
        return None


class Registry:
    """Every live session, by identity, by name, by role and by tool."""

    def __init__(self) -> None:
        self.by_identity: dict[bytes, Session] = {}
        self.by_key: dict[bytes, Session] = {}
        """Live sessions by public key: one per key."""
        self.by_name: dict[str, Session] = {}
        self.roles: dict[str, Pool] = {}
        self.tools: dict[str, Pool] = {}
        self.specs: dict[str, ToolSpec] = {}
        self.specs_changed = 0
        """Counts the registrations that brought specs: what was made of `specs` before the
        last one may be out of date."""
        self.holders: dict[TaskKey, Session] = {}
        self.by_fd: dict[int, Session] = {}
        self.running_keys: dict[str, Session] = {}
        """Idempotency keys of calls that a host said, when it registered, it was running."""

    def unique_name(self, wanted: str) -> str:
        """`wanted`, or it with the first free `-N` suffix: still a valid name."""
        if wanted not in self.by_name:
            return wanted
        for n in itertools.count(2):
            suffix = f"-{n}"
            candidate = wanted[: MAX_NAME - len(suffix)] + suffix
            if candidate not in self.by_name:
                return candidate
        raise AssertionError("unreachable")

    def add(self, session: Session, specs: list[ToolSpec]) -> None:
        self.by_identity[session.identity] = session
        if session.key:
            self.by_key[session.key] = session
        self.by_name[session.name] = session
        if session.fd >= 0:
            self.by_fd[session.fd] = session
        if session.kind == "agent":
            self.roles.setdefault(session.role, Pool()).add(session)
        else:
            for tool in session.tools:
                self.tools.setdefault(tool, Pool()).add(session)
            for spec in specs:
                self.specs[spec.name] = spec
            if specs:
                self.specs_changed += 1

    def remove(self, session: Session) -> None:
        session.live = False
        self.by_identity.pop(session.identity, None)
        if self.by_key.get(session.key) is session:
            del self.by_key[session.key]
        self.by_name.pop(session.name, None)
        if self.by_fd.get(session.fd) is session:
            del self.by_fd[session.fd]
        pool = self.roles.get(session.role)
        if pool is not None and session.kind == "agent":
            pool.remove(session)
        for tool in session.tools if session.kind == "tool_host" else ():
            pool = self.tools.get(tool)
            if pool is not None:
                pool.remove(session)
        for key in session.in_flight:
            self.holders.pop(key, None)
        if session.kind == "tool_host":
            for call_key in [k for k, host in self.running_keys.items() if host is session]:
                del self.running_keys[call_key]

    def count_by_role(self) -> dict[str, int]:
        return {role: len(pool.sessions) for role, pool in self.roles.items() if pool.sessions}
