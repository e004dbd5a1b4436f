"""A client of the control plane, for the CLI, programs and tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import msgspec
import zmq
import zmq.asyncio

from actors._handshake import WATCHED_EVENTS, HandshakeWatch
from protocols import (
    PROTOCOL_VERSION,
    TERMINAL_STATUSES,
    AgentsReply,
    CancelRun,
    Changed,
    ClientKeys,
    ControlError,
    ControlReply,
    ControlRequest,
    Decide,
    DecisionKind,
    ErrorCode,
    ForkRun,
    GetReport,
    GetRun,
    ListAgents,
    ListMembers,
    ListPending,
    ListRuns,
    ListWorkflows,
    MembersReply,
    PendingDecision,
    PendingReply,
    ProtocolError,
    Report,
    ReportReply,
    ResumeRun,
    RunAccepted,
    RunRecord,
    RunReply,
    RunsReply,
    RunStatus,
    RunSummary,
    StartRun,
    WaitRun,
    Watch,
    WorkflowsReply,
    WorkflowView,
    client_side_control_codec,
)
from runtime.errors import BatonError


class ControlRefused(BatonError):
    """The runtime refused a request; `code` says why in a stable word."""

    def __init__(self, code: ErrorCode, message: str, *, owner: str = "") -> None:
        self.code: ErrorCode = code
        self.message = message
        self.owner = owner
        """With code `elsewhere`: the control plane of the runtime owning the run."""
        super().__init__(f"{code}: {message}")


class RuntimeUnavailable(BatonError):
    """No answer from the runtime in time."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        super().__init__(
            f"no answer from the runtime at {endpoint} within {timeout:g}s "
            "(is `baton runtime` running there?)"
        )


MAX_HOPS = 3
"""Runtimes of a cluster a request is sent on to, following where its run is owned."""
RETAKE_PAUSE = 0.25
"""Seconds between asks about a run while its cluster takes it over."""
OWNER_PATIENCE = 3.0
"""Seconds a runtime a request was sent on to has to answer (beyond what the request itself
waits) before it is taken for dead and the first runtime is asked again: its lease lapses
and the run is answered by its journal or its new owner."""
WAIT_SLICE = 5.0
"""Seconds of one wait for a run's end: a longer wait is asked in slices, so that the death
of the run's owner costs a slice, not the whole wait."""
MAX_LISTED = 100_000
"""Most runs one `ListRuns` asks a runtime for: in a cluster, where each runtime is asked
for every run up to the end of the page, pages end there."""


@dataclass(frozen=True, slots=True)
class RunsPage:
    """A page of run summaries, newest first, and how many runs matched in all."""

    runs: list[RunSummary]
    total: int


class _Connection:
    """One DEALER socket to one runtime's control plane, with its handshake watch."""

    def __init__(
        self, context: zmq.asyncio.Context, endpoint: str, keys: ClientKeys | None
    ) -> None:
        self.endpoint = endpoint
        self._codec = client_side_control_codec()
        self._sock = sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if "[" in endpoint or "::" in endpoint:
            sock.setsockopt(zmq.IPV6, 1)
        if keys is not None:
            sock.curve_secretkey = keys.secret
            sock.curve_publickey = keys.public
            sock.curve_serverkey = keys.server
        self._handshakes = HandshakeWatch(curve=keys is not None)
        self._monitor = sock.get_monitor_socket(WATCHED_EVENTS)
        self._poller = zmq.asyncio.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        sock.connect(endpoint)

    def close(self) -> None:
        self._sock.disable_monitor()
        self._sock.close(linger=0)
        self._monitor.close(linger=0)

    async def ask(self, request: ControlRequest, limit: float) -> ControlReply:
        """The reply to `request`; `ControlRefused` for a refusal, `RuntimeUnavailable` when
        none came within `limit` seconds."""
        sock = self._sock
        with anyio.move_on_after(limit):
            await sock.send(self._codec.encode(request))
            while True:
                ready = dict(await self._poller.poll())
                if self._monitor in ready:
                    await self._check_handshakes()
                if sock not in ready:
                    continue
                frame = await sock.recv()
                try:
                    reply = self._codec.decode(frame)
                except ProtocolError as exc:
                    raise ControlRefused("malformed", f"unreadable reply: {exc}") from exc
                if reply.id not in (request.id, 0):
                    continue
                if isinstance(reply, ControlError):
                    raise ControlRefused(reply.code, reply.message, owner=reply.owner)
                return reply
        raise RuntimeUnavailable(self.endpoint, limit)

    async def _check_handshakes(self) -> None:
        """Raise `ControlRefused("unauthorized")` once the runtime has refused our handshakes."""
        while await self._monitor.poll(0):
            failure = self._handshakes.observe(await self._monitor.recv_multipart())
            if failure is not None:
                raise ControlRefused("unauthorized", failure.reason)


class ControlClient:
    """Requests to one runtime, one at a time, over a DEALER socket.

    Use as an async context manager. Every call raises `ControlRefused` on a
    refusal (code `unauthorized` when the runtime will not accept our key) and
    `RuntimeUnavailable` when no reply comes within `timeout`. Without `keys`
    the runtime must be running insecure.

    In a cluster, a request about a run another runtime owns is sent on to that
    one (it says where), and `list_runs` and `pending` gather every live runtime's:
    the same keys are used with each, as every runtime of a cluster shares one key.
    """

    def __init__(
        self, endpoint: str, *, timeout: float = 10.0, keys: ClientKeys | None = None
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._keys = keys
        self._ids = itertools.count(1)
        self._ctx: zmq.asyncio.Context | None = None
        self._connections: dict[str, _Connection] = {}

    async def __aenter__(self) -> ControlClient:
        self._ctx = zmq.asyncio.Context()
        self._connection(self.endpoint)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        if self._ctx is not None:
            self._ctx.term()

    def _connection(self, endpoint: str) -> _Connection:
        if self._ctx is None:
            raise RuntimeError("use ControlClient as `async with ControlClient(...)`")
        connection = self._connections.get(endpoint)
        if connection is None:
            connection = _Connection(self._ctx, endpoint, self._keys)
            self._connections[endpoint] = connection
        return connection

    def _next_id(self) -> int:
        return next(self._ids)

    async def _ask(
        self,
        request: ControlRequest,
        *,
        patience: float | None = None,
        endpoint: str | None = None,
        waits: float = 0.0,
    ) -> ControlReply:
        """The reply from the runtime that owns what `request` is about.

        `patience` bounds the whole exchange; `waits` is how long the request itself may
        keep a runtime busy before it answers (a wait for a run's end).
        """
        limit = self.timeout if patience is None else patience
        first = self._connection(endpoint or self.endpoint)
        connection = first
        deadline = anyio.current_time() + limit
        hops = 0
        while True:
            left = max(0.0, deadline - anyio.current_time())
            if connection is not first:
                left = min(left, waits + OWNER_PATIENCE)
            try:
                return await connection.ask(request, left)
            except RuntimeUnavailable:
                if connection is first or anyio.current_time() + RETAKE_PAUSE >= deadline:
                    raise
                # The owner it was sent to died: ask the first runtime again, which knows the
                # run's next owner once the dead one's lease lapsed.
                connection = first
                await anyio.sleep(RETAKE_PAUSE)
            except ControlRefused as refused:
                if refused.code != "elsewhere" or hops >= MAX_HOPS:
                    raise
                if refused.owner:
                    hops += 1
                    connection = self._connection(refused.owner)
                    continue
                # Being taken over: the cluster names its new owner within its lease time.
                if anyio.current_time() + RETAKE_PAUSE >= deadline:
                    raise
                await anyio.sleep(RETAKE_PAUSE)

    async def _gather(self, request: ControlRequest) -> list[ControlReply]:
        """The replies of this runtime and of every live runtime of its cluster it names."""
        first = await self._ask(request)
        replies = [first]
        peers = first.peers if isinstance(first, RunsReply | PendingReply) else []
        for peer in peers:
            again = msgspec.structs.replace(request, id=self._next_id())
            try:
                replies.append(await self._ask(again, endpoint=peer))
            except RuntimeUnavailable:
                # It stopped since: its runs are taken over and listed by another.
                continue
        return replies

    async def start_run(self, workflow: str, inputs: dict[str, Any]) -> str:
        """Start a run; its id once the runtime has journaled it."""
        reply = await self._ask(
            StartRun(
                id=self._next_id(), protocol=PROTOCOL_VERSION, workflow=workflow, inputs=inputs
            )
        )
        assert isinstance(reply, RunAccepted)
        return reply.run_id

    async def get_run(self, run_id: str, *, at: int | None = None) -> RunRecord:
        """The record of a run."""
        reply = await self._ask(
            GetRun(id=self._next_id(), protocol=PROTOCOL_VERSION, run_id=run_id, at=at)
        )
        assert isinstance(reply, RunReply)
        return reply.record

    async def wait_run(self, run_id: str, *, max_wait: float = 60.0) -> tuple[RunRecord, bool]:
        """The record once the run ended, or when `max_wait` passed (then True)."""
        reply = await self._wait(run_id, max_wait, summary=False)
        assert isinstance(reply, RunReply)
        return reply.record, reply.timed_out

    async def wait_outcome(self, run_id: str, *, max_wait: float = 60.0) -> RunSummary:
        """The run's summary once it ended, or when `max_wait` passed; no whole record."""
        reply = await self._wait(run_id, max_wait, summary=True)
        assert isinstance(reply, RunsReply)
        return reply.runs[0]

    async def _wait(self, run_id: str, max_wait: float, *, summary: bool) -> ControlReply:
        """Wait in slices until the run ended or `max_wait` passed; the last slice's reply."""
        end = anyio.current_time() + max_wait
        while True:
            wait = max(0.0, min(WAIT_SLICE, end - anyio.current_time()))
            request = WaitRun(
                id=self._next_id(),
                protocol=PROTOCOL_VERSION,
                run_id=run_id,
                timeout_ms=int(wait * 1000),
                summary=summary,
            )
            reply = await self._ask(request, patience=wait + self.timeout, waits=wait)
            if isinstance(reply, RunReply) and not reply.timed_out:
                return reply
            if isinstance(reply, RunsReply) and reply.runs[0].status in TERMINAL_STATUSES:
                return reply
            if anyio.current_time() >= end:
                return reply

    async def cancel_run(self, run_id: str, reason: str = "") -> RunRecord:
        """Stop a run that has not ended; its record once the cancellation is journaled."""
        reply = await self._ask(
            CancelRun(id=self._next_id(), protocol=PROTOCOL_VERSION, run_id=run_id, reason=reason)
        )
        assert isinstance(reply, RunReply)
        return reply.record

    async def resume_run(self, run_id: str) -> RunRecord:
        """Let a stuck run carry on; its record once the resumption is journaled."""
        reply = await self._ask(
            ResumeRun(id=self._next_id(), protocol=PROTOCOL_VERSION, run_id=run_id)
        )
        assert isinstance(reply, RunReply)
        return reply.record

    async def fork_run(
        self, run_id: str, at: int, *, values: dict[str, Any] | None = None, reason: str = ""
    ) -> str:
        """Start a new run from the record of `run_id` as it was at version `at`, with
        `values` written over its data; the new run's id once it is journaled."""
        reply = await self._ask(
            ForkRun(
                id=self._next_id(),
                protocol=PROTOCOL_VERSION,
                run_id=run_id,
                at=at,
                values=values or {},
                reason=reason,
            )
        )
        assert isinstance(reply, RunAccepted)
        return reply.run_id

    async def pending(self, run_id: str | None = None) -> list[PendingDecision]:
        """The decisions runs wait for that this principal may see, oldest first."""
        request = ListPending(id=self._next_id(), protocol=PROTOCOL_VERSION, run_id=run_id)
        pending: list[PendingDecision] = []
        for reply in await self._gather(request):
            assert isinstance(reply, PendingReply)
            pending += reply.pending
        pending.sort(key=lambda p: p.opened_at)
        return pending

    async def decide(
        self,
        shown: PendingDecision,
        decision: DecisionKind,
        *,
        comment: str = "",
        values: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Decide the open decision `shown` (as `pending` gave it); the record afterwards.

        Refused as `stale` if the decision is no longer the one shown.
        """
        reply = await self._ask(
            Decide(
                id=self._next_id(),
                protocol=PROTOCOL_VERSION,
                run_id=shown.run_id,
                step=shown.step,
                attempt=shown.attempt,
                decision=decision,
                digest=shown.digest,
                comment=comment,
                values=values or {},
            )
        )
        assert isinstance(reply, RunReply)
        return reply.record

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
        key: str | None = None,
        value: str | None = None,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Summaries of runs, newest first; in a cluster, of every live runtime's runs.

        Only runs created within [`since`, `until`] (seconds since the epoch), whose data
        holds `key`, and whose value there reads `value` (a string as is, anything else
        as compact JSON: `42`, `true`, `{"a":1}`); `offset` skips the newest matches.
        """
        page = await self.runs_page(
            status=status, workflow=workflow, limit=limit, since=since, until=until,
            key=key, value=value, offset=offset,
        )  # fmt: skip
        return page.runs

    async def runs_page(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
        key: str | None = None,
        value: str | None = None,
        offset: int = 0,
    ) -> RunsPage:
        """The runs `list_runs` gives, with how many matched in all, to page through."""
        request = ListRuns(
            id=self._next_id(),
            protocol=PROTOCOL_VERSION,
            status=status,
            workflow=workflow,
            limit=limit,
            since=since,
            until=until,
            key=key,
            value=value,
            offset=offset,
        )
        if offset:
            first = await self._ask(request)
            assert isinstance(first, RunsReply)
            if not first.peers:
                return RunsPage(first.runs, first.total)
            # A cluster: each runtime pages its own runs, so the page is cut from every
            # runtime's runs up to its end, merged.
            upto = min(offset + limit, MAX_LISTED)
            request = msgspec.structs.replace(request, id=self._next_id(), offset=0, limit=upto)
        seen: dict[str, RunSummary] = {}
        total = 0
        for reply in await self._gather(request):
            assert isinstance(reply, RunsReply)
            total += reply.total
            for run in reply.runs:
                seen.setdefault(run.run_id, run)
        runs = sorted(seen.values(), key=lambda s: s.created_at, reverse=True)
        return RunsPage(runs[offset : offset + limit], total)

    async def watch(
        self, run_id: str | None = None, *, after: int = 0, max_wait: float = 30.0
    ) -> Changed:
        """Once something changed: with `run_id`, once that run's record is past version
        `after`; without, once any run of this runtime changed since its change cursor was
        `after`. At once if that is so already, else when the change is journaled, or after
        `max_wait` seconds with `timed_out`. Give the reply's `cursor` as the next `after`."""
        request = Watch(
            id=self._next_id(),
            protocol=PROTOCOL_VERSION,
            run_id=run_id,
            after=after,
            timeout_ms=int(max_wait * 1000),
        )
        reply = await self._ask(request, patience=max_wait + self.timeout, waits=max_wait)
        assert isinstance(reply, Changed)
        return reply

    async def workflows(self) -> list[WorkflowView]:
        """The workflows the runtime has loaded, each with its inputs and its graph as nodes
        and edges (and as the Mermaid text `baton diagram` prints)."""
        reply = await self._ask(ListWorkflows(id=self._next_id(), protocol=PROTOCOL_VERSION))
        assert isinstance(reply, WorkflowsReply)
        return reply.workflows

    async def members(self) -> MembersReply:
        """The runtimes of this runtime's cluster, their leases and load, recent takeovers;
        refused as `wrong_state` by a runtime that is not one of a cluster."""
        reply = await self._ask(ListMembers(id=self._next_id(), protocol=PROTOCOL_VERSION))
        assert isinstance(reply, MembersReply)
        return reply

    async def agents(self) -> AgentsReply:
        """The agents and tool hosts connected to the runtime now, and each role's load:
        its instances, capacity, steps running and queued, and whether it is crash-looping.
        In a cluster the runtime asked lists every actor, as actors connect to each runtime;
        the steps queued are those of the runs it holds."""
        reply = await self._ask(ListAgents(id=self._next_id(), protocol=PROTOCOL_VERSION))
        assert isinstance(reply, AgentsReply)
        return reply

    async def report(self, workflow: str, *, since: float | None = None) -> Report:
        """The report of `workflow` (as `baton report` gives it) over the runs created at or
        after `since` (seconds since the epoch; all without it), worked out by the runtime.

        It covers the runs the runtime asked holds: in a cluster, that runtime's own, as
        reports of several runtimes are not merged (`baton report` on the shared database
        covers every one). Past the runtime's bound (`MAX_REPORT_RUNS`, 10,000) it covers
        the newest runs only: `report.runs` says how many.
        """
        request = GetReport(
            id=self._next_id(), protocol=PROTOCOL_VERSION, workflow=workflow, since=since
        )
        reply = await self._ask(request)
        assert isinstance(reply, ReportReply)
        return reply.report
