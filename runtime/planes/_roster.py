"""Who is connected to the agent plane now, and how loaded each role is: for a page or
`baton agents` to show, never for placing work (the placement reads the registry itself)."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols import AgentView, RoleView
from runtime.planes._placement import Placement
from runtime.planes._restarts import RestartBudget
from runtime.planes._sessions import Registry, Session


@dataclass(frozen=True, slots=True)
class Roster:
    """Every live session, by role then name, and every role that has agents connected,
    attempts queued or is crash-looping, by name."""

    agents: list[AgentView] = field(default_factory=list)
    roles: list[RoleView] = field(default_factory=list)


def roster(
    registry: Registry,
    placement: Placement,
    restarts: RestartBudget,
    *,
    monotonic: float,
    wall: float,
) -> Roster:
    """The roster at `monotonic` on the runtime's monotonic clock, `wall` on its wall clock.

    Sessions keep when they registered on the monotonic clock, which never jumps;
    it is told as wall time by its distance from now.
    """
    sessions = sorted(registry.by_identity.values(), key=lambda s: (s.role, s.name))
    agents = [_agent(session, wall - (monotonic - session.connected)) for session in sessions]
    pools = {role: pool.sessions for role, pool in registry.roles.items() if pool.sessions}
    queued = placement.waiting_by_role()
    looping = set(restarts.looping_roles(monotonic))
    roles = [
        RoleView(
            role=role,
            instances=len(pools.get(role, ())),
            capacity=sum(s.capacity for s in pools.get(role, ())),
            running=sum(s.load for s in pools.get(role, ())),
            queued=queued.get(role, 0),
            crash_looping=role in looping,
        )
        for role in sorted({*pools, *queued, *looping})
    ]
    return Roster(agents, roles)


def _agent(session: Session, connected_at: float) -> AgentView:
    return AgentView(
        name=session.name,
        role=session.role,
        kind=session.kind,
        principal=session.principal_name,
        capacity=session.capacity,
        running=session.load,
        tools=sorted(session.tools),
        connected_at=connected_at,
    )
