"""Registration and the life of a session: who may register as what, the welcome, what
a returning actor still runs, and the end of a session however it comes.

A session ends when the actor says bye, goes silent, its connection closes,
another key's connection takes its routing id, or its principal loses the
authority it registered with. Its tasks then fail as `agent_lost` and its
tool calls are asked again or fail; a death without a bye counts against its
role's restart budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from protocols import (
    PROTOCOL_VERSION,
    ActorMessage,
    Codec,
    Error,
    ErrorCode,
    Heartbeat,
    Peers,
    Register,
    Welcome,
    clip,
)
from runtime.planes._agent_host import AgentHost, Outlet
from runtime.planes._broker import ToolBroker
from runtime.planes._peers import PeerList
from runtime.planes._placement import Placement
from runtime.planes._refusals import REPLY_TEXT
from runtime.planes._sessions import Registry, Session
from runtime.security._authenticator import PrincipalBook
from runtime.security._principals import Principal
from runtime.workflow._graph import Graph

log = structlog.get_logger("baton.runtime")


class Registrar:
    """Admits actors as sessions, keeps them alive with heartbeats, and ends them."""

    def __init__(
        self,
        host: AgentHost,
        outlet: Outlet,
        codec: Codec[ActorMessage],
        registry: Registry,
        *,
        placement: Placement,
        broker: ToolBroker,
        graphs: Sequence[Graph],
        heartbeat: float,
        secure: bool,
        peers: PeerList,
    ) -> None:
        self._host = host
        self._outlet = outlet
        self._codec = codec
        self._registry = registry
        self._placement = placement
        self._broker = broker
        self._heartbeat = heartbeat
        self._secure = secure
        self._peers = peers
        self._role_tools: dict[str, set[str]] = {}
        """Per role, the tools any loaded workflow grants it."""
        for graph in graphs:
            for role in graph.roles.values():
                self._role_tools.setdefault(role.name, set()).update(role.tools)

    def register(
        self,
        identity: bytes,
        principal: Principal | None,
        message: Register,
        existing: Session | None,
        fd: int = -1,
    ) -> None:
        """Welcome the actor as a new session, taking up what it still runs, or refuse it."""
        refusal = self._registration_problem(message, principal)
        if refusal is None and principal is not None:
            holder = self._registry.by_key.get(principal.public_key)
            if holder is not None and holder is not existing:
                refusal = (
                    "session_exists",
                    f"principal {principal.name!r} already has a live session "
                    f"(as {holder.name!r}); one connection per key",
                )
        if refusal is not None:
            code, text = refusal
            who = "" if principal is None else principal.name
            if self._host.reject(code, identity, text, who):
                log.warning(
                    "agent.refused", name=message.name, role=message.role, code=code, principal=who
                )
                self._outlet.to_identity(identity, Error(code=code, message=clip(text, REPLY_TEXT)))
            return
        if existing is not None:
            self.lose(existing, "registered again", died=True)
        session = Session(
            identity,
            principal.name if principal is not None else self._registry.unique_name(message.name),
            message.role,
            kind=message.kind,
            tools=frozenset(message.tools),
            capacity=message.capacity,
            now=self._host.monotonic(),
            principal=principal,
        )
        session.fd = fd
        self._registry.add(session, message.specs)
        specs = [self._registry.specs[t] for t in message.tools if t in self._registry.specs]
        self._outlet.to_session(
            session,
            Welcome(
                protocol=PROTOCOL_VERSION,
                session=session.name,
                heartbeat_ms=max(10, int(self._heartbeat * 1000)),
                tool_specs=specs if message.kind == "agent" else [],
                peers=self._peers.advertised(),
            ),
        )
        log.info(
            "agent.registered",
            agent=session.name,
            role=session.role,
            kind=session.kind,
            capacity=session.capacity,
            principal=session.principal_name,
            running=len(message.tasks) + len(message.calls),
        )
        if session.kind == "agent":
            self._placement.adopt(session, message.tasks)
            self._placement.pump(session.role)
        else:
            self._broker.take_up(session, message.calls)
            self._broker.pump(session)

    def _registration_problem(
        self, message: Register, principal: Principal | None
    ) -> tuple[ErrorCode, str] | None:
        if message.protocol != PROTOCOL_VERSION:
            return (
                "incompatible_protocol",
                f"this runtime speaks protocol {PROTOCOL_VERSION}, not {message.protocol}",
            )
        if self._secure:
            if principal is None:
                return "unauthorized", "no principal: this runtime requires CURVE"
            problem = _authority_problem(principal, message.kind, message.role)
            if problem is not None:
                return "role_refused", problem
        if message.kind == "tool_host":
            if not message.tools:
                return "invalid_message", "a tool host must serve at least one tool"
            unknown = sorted({s.name for s in message.specs} - set(message.tools))
            if unknown:
                return "invalid_message", f"spec for tool {unknown[0]!r} that is not served"
            return None
        granted = self._role_tools.get(message.role)
        if granted is None:
            roles = ", ".join(sorted(self._role_tools)) or "none"
            return (
                "role_refused",
                f"no loaded workflow has role {message.role!r} (roles: {roles})",
            )
        extra = sorted(set(message.tools) - granted)
        if extra:
            return (
                "tool_refused",
                f"role {message.role!r} is not granted tool {extra[0]!r} by any loaded workflow",
            )
        return None

    def announce_peers(self, endpoints: Sequence[str]) -> None:
        """Tell every live session the cluster's other supervisors, and welcome the next
        ones with the same."""
        advertised = self._peers.announce(endpoints)
        frame = self._codec.encode(Peers(endpoints=advertised))
        sessions = list(self._registry.by_identity.values())
        for session in sessions:
            self._host.queue_agent_frame(session.identity, frame, session)
        log.info("peers.announced", peers=advertised, sessions=len(sessions))

    def reload(self, book: PrincipalBook) -> None:
        """Principals changed: sessions whose key or role was withdrawn end; the rest go on."""
        for session in list(self._registry.by_identity.values()):
            if session.principal is None:
                continue
            principal = book.by_user_id(session.key.decode("ascii"))
            problem = (
                f"the key of principal {session.principal.name!r} was removed"
                if principal is None
                else _authority_problem(principal, session.kind, session.role)
            )
            if problem is None:
                session.principal = principal
                continue
            log.warning("agent.revoked", agent=session.name, reason=problem)
            self._outlet.to_identity(session.identity, Error(code="unauthorized", message=problem))
            self.lose(session, problem)

    def heartbeat(self, now: float) -> None:
        """Beat to every actor; lose those silent for three intervals."""
        beat = self._codec.encode(Heartbeat())
        for session in list(self._registry.by_identity.values()):
            if now - session.last_seen > 3 * self._heartbeat:
                self.lose(session, f"silent for {now - session.last_seen:.1f}s", died=True)
            else:
                self._host.queue_agent_frame(session.identity, beat, session)

    def lose(self, session: Session, reason: str, *, died: bool = False) -> None:
        """The actor is gone: its tasks have unknown outcomes, its tool calls fail.

        `died`: it went without saying bye, which counts against its role's restart budget.
        """
        self._registry.remove(session)
        log.warning(
            "agent.lost",
            agent=session.name,
            role=session.role,
            reason=reason,
            in_flight=len(session.in_flight),
        )
        self._placement.agent_lost(session, reason, died=died and session.kind == "agent")
        self._broker.host_lost(session)


def _authority_problem(principal: Principal, kind: str, role: str) -> str | None:
    """Why `principal` may not act as an actor of `kind` and `role`, or None if it may."""
    if kind == "tool_host":
        if principal.may_serve_tools(role):
            return None
        return f"principal {principal.name!r} does not hold role 'tools:{role}'"
    if principal.holds(role):
        return None
    return f"principal {principal.name!r} does not hold role {role!r}"
