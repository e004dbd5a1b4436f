"""What must hold of a world after every frame, whatever the frames were: the registry,
the queues, the waits and the runs agree with each other."""

from __future__ import annotations

from protocols import (
    TERMINAL_STATUSES,
)
from runtime.engine._events import (
    Dispatch,
)
from runtime.planes._control_plane import WaitKey
from runtime.planes._sessions import Session
from tests.runtime.fuzz.world import STEPS, World


def check_registry(world: World) -> None:
    """Every live session is indexed once, by identity, name, key, role or tool, and nowhere else;
    tasks and tool calls are held by live sessions within their capacity."""
    plane = world.agents
    registry = plane._registry
    sessions = list(registry.by_identity.values())
    live = {id(s) for s in sessions}
    assert len(live) == len(sessions), "a session is registered under two identities"
    assert all(registry.by_identity[s.identity] is s for s in sessions)
    assert len(registry.by_name) == len(sessions), "names and identities disagree"
    assert all(registry.by_name[s.name] is s for s in sessions), "a session is not found by name"
    keyed = [s for s in sessions if s.key]
    assert len(registry.by_key) == len(keyed), "keys and identities disagree"
    assert all(registry.by_key[s.key] is s for s in keyed), "a session is not found by key"
    assert all((s.principal is not None) == world.secure for s in sessions)
    for role, pool in registry.roles.items():
        assert len({id(s) for s in pool.sessions}) == len(pool.sessions), f"{role}: duplicates"
        for s in pool.sessions:
            assert (id(s) in live, s.kind, s.role) == (True, "agent", role), s.name
    for tool, pool in registry.tools.items():
        assert len({id(s) for s in pool.sessions}) == len(pool.sessions), f"{tool}: duplicates"
        for s in pool.sessions:
            assert (id(s) in live, s.kind, tool in s.tools) == (True, "tool_host", True), s.name
    for s in sessions:
        if s.kind == "agent":
            assert s in registry.roles[s.role].sessions, f"{s.name} is in no pool of its role"
            assert not s.tool_calls, f"agent {s.name} serves tool calls"
        else:
            assert all(s in registry.tools[t].sessions for t in s.tools), f"{s.name}: tools"
            assert not s.in_flight, f"tool host {s.name} holds tasks"
        assert 0 <= s.load <= s.capacity, f"{s.name} holds {s.load} of {s.capacity}"
        for task in s.in_flight:
            assert registry.holders.get(task) is s, f"{task} held by {s.name} is not recorded"
        for call in s.tool_calls:
            assert call in plane._broker.calls, f"{s.name} serves unknown call {call}"
    for task, s in registry.holders.items():
        assert (id(s) in live, task in s.in_flight) == (True, True), f"{task}: {s.name}"
    for call, pending in plane._broker.calls.items():
        hosts = [s for s in sessions if call in s.tool_calls]
        assert len(hosts) == 1, f"call {call} is served by {len(hosts)} hosts"
        assert pending.tool in hosts[0].tools, f"call {call} went to a host without the tool"
    for role, queue in plane._placement.queues.items():
        if any(_queued(world, d) for d in queue):
            agents = registry.roles.get(role)
            idle = [] if agents is None else [s.name for s in agents.sessions if s.free > 0]
            assert not idle, f"steps of role {role!r} wait while {idle} have room"


def idle_tool_hosts(world: World) -> list[tuple[str, Session]]:
    """(tool, host) where calls of the tool wait while a host serving it has room."""
    found: list[tuple[str, Session]] = []
    for tool, calls in world.agents._broker.queues.items():
        pool = world.agents._registry.tools.get(tool)
        if calls and pool is not None:
            found.extend((tool, s) for s in pool.sessions if s.free > 0)
    return found


def _queued(world: World, command: Dispatch) -> bool:
    run = world.runs.get(command.run_id)
    state = None if run is None else run.steps.get(command.step)
    return state is not None and state.attempt == command.attempt and state.status == "queued"


def check_runs(world: World) -> set[WaitKey]:
    """Runs, tasks and waits agree: a running step is held by the agent the run names, a
    queued one waits in its role's queue, and each open wait is on a run still going.

    Returns the open waits that have no timer, which should be none.
    """
    registry = world.agents._registry
    running = 0
    for run in world.runs.values():
        if run.status != "running":
            continue
        running += 1
        for name, state in run.steps.items():
            task = (run.run_id, name, state.attempt)
            if state.status == "running":
                holder = registry.holders.get(task)
                assert holder is not None, f"{task} runs on no agent"
                assert holder.name == state.attempts[-1].agent, f"{task} runs on {holder.name}"
            elif state.status == "queued":
                role = STEPS[name].role
                queue = world.agents._placement.queues.get(role, ())
                assert any((d.run_id, d.step, d.attempt) == task for d in queue), (
                    f"{task} is queued nowhere"
                )
    for run_id, name, attempt in registry.holders:
        run = world.runs[run_id]
        state = run.steps[name]
        assert run.status == "running", f"{run_id} is {run.status} but {name} is still held"
        assert (state.status, state.attempt) == ("running", attempt), f"{name} is held but not run"
    assert world.active == running, f"{world.active} runs counted active, {running} running"
    untimed: set[WaitKey] = set()
    for run_id, waiters in world.control._waiters.items():
        run = world.runs[run_id]
        assert run.status not in TERMINAL_STATUSES, f"waits on {run_id}, which has ended"
        for identity, request, _ in waiters:
            key = ("wait", identity, request, run_id)
            if key not in world.timers:
                untimed.add(key)
    return untimed
