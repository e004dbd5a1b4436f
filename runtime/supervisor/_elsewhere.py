"""Answers about runs this runtime of a cluster does not hold, and about the cluster itself.

A run owned by another live runtime is for that one to answer: the reply says
where (`elsewhere`, with its control plane), and clients send the request on.
A run with no live owner (its owner's lease lapsed and no one has taken it up
yet) is read from its journal, since reading needs no owner; anything that
would act on it waits for the takeover. Ended runs are read the same way.
"""

from __future__ import annotations

from protocols import (
    CancelRun,
    Changed,
    ClusterMember,
    ControlError,
    ControlRequest,
    Decide,
    ForkRun,
    GetRun,
    ListMembers,
    ListPending,
    MembersReply,
    Message,
    PendingReply,
    ResumeRun,
    RunReply,
    RunsReply,
    TakeoverSeen,
    WaitRun,
    Watch,
)
from runtime.errors import StoreError
from runtime.planes._views import record_view, summary
from runtime.store import JournalUnreadable, replay
from runtime.store._leases import Leases
from runtime.workflow._catalog import Catalog


async def answer_elsewhere(
    request: ControlRequest, leases: Leases, token: int, catalog: Catalog
) -> Message:
    """The reply to `request`, which the runtime holding `token` could not answer itself."""
    try:
        if isinstance(request, ListMembers):
            return await _members(request, leases, token)
        return await _run_elsewhere(request, leases, token, catalog)
    except StoreError as exc:
        return ControlError(id=request.id, code="internal", message=str(exc)[:1_000])


async def _members(request: ListMembers, leases: Leases, token: int) -> MembersReply:
    members = await leases.members()
    takeovers = await leases.takeovers()
    return MembersReply(
        id=request.id,
        here=token,
        store=leases.store.description,
        members=[
            ClusterMember(
                token=m.token, name=m.name[:256], agents=m.agents, control=m.control,
                started_at=m.started_at, renewed_at=m.renewed_at, expires_in=m.expires_in,
                owned=m.owned, active=m.active,
            )
            for m in members
        ],
        takeovers=[
            TakeoverSeen(at=at, token=t.token, name=t.name[:256], lapsed_for=t.lapsed_for,
                         runs=t.runs, by_token=by)
            for at, t, by in takeovers
        ],
    )  # fmt: skip


async def _run_elsewhere(
    request: ControlRequest, leases: Leases, token: int, catalog: Catalog
) -> Message:
    run_id = getattr(request, "run_id", None)
    assert isinstance(run_id, str)
    where = await leases.owner_of(run_id)
    if where is None:
        return ControlError(id=request.id, code="unknown_run", message=f"no run {run_id!r}")
    if where.control and where.token != token:
        text = f"run {run_id!r} is owned by the runtime at {where.control}"
        return ControlError(id=request.id, code="elsewhere", message=text, owner=where.control)
    if isinstance(request, GetRun) or (isinstance(request, WaitRun) and where.ended):
        return await _read(request, leases, catalog, run_id)
    if isinstance(request, Watch) and where.ended:
        return await _ended_watch(request, leases, catalog, run_id)
    if where.ended:
        if isinstance(request, ListPending):
            return PendingReply(id=request.id, pending=[])
        if isinstance(request, ForkRun):
            # Ended runs are not taken over, so one whose runtime is gone stays with none.
            text = (
                f"run {run_id!r} ended on a runtime that has stopped; only a live runtime "
                "holding a run can fork it"
            )
            return ControlError(id=request.id, code="wrong_state", message=text)
        text = f"run {run_id!r} has already ended"
        return ControlError(id=request.id, code="wrong_state", message=text)
    assert isinstance(
        request, WaitRun | CancelRun | ResumeRun | ListPending | Decide | ForkRun | Watch
    )
    text = (
        f"run {run_id!r} is being taken over: the runtime that owned it stopped renewing its "
        "lease; ask again in a few seconds"
    )
    return ControlError(id=request.id, code="elsewhere", message=text)


async def _ended_watch(request: Watch, leases: Leases, catalog: Catalog, run_id: str) -> Message:
    """A watch on a run that ended with no runtime left holding it: its record will not
    change again, so it is answered at once, past `after` or not."""
    try:
        run = replay(catalog, await leases.store.journal(run_id))
    except JournalUnreadable as exc:
        return ControlError(id=request.id, code="internal", message=str(exc)[:1_000])
    if run.seq > request.after:
        return Changed(id=request.id, cursor=run.seq)
    text = f"run {run_id!r} has ended: its record stays at version {run.seq}"
    return ControlError(id=request.id, code="wrong_state", message=text)


async def _read(
    request: GetRun | WaitRun, leases: Leases, catalog: Catalog, run_id: str
) -> Message:
    """The run as its journal has it (at `request.at`, if asked)."""
    records = await leases.store.journal(run_id)
    version = request.at if isinstance(request, GetRun) else None
    try:
        run = replay(catalog, records, version=version)
    except JournalUnreadable as exc:
        return ControlError(id=request.id, code="internal", message=str(exc)[:1_000])
    if isinstance(request, WaitRun) and request.summary:
        return RunsReply(id=request.id, runs=[summary(run)])
    return RunReply(id=request.id, record=record_view(run))
