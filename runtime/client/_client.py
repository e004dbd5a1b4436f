"""A client of the control plane, for the CLI, programs and tests."""

from __future__ import annotations

import itertools
from types import TracebackType
from typing import Any

import anyio
import zmq
import zmq.asyncio

from actors._handshake import WATCHED_EVENTS, HandshakeWatch
from protocols import (
    PROTOCOL_VERSION,
    CancelRun,
    ClientKeys,
    ControlError,
    ControlReply,
    ControlRequest,
    Decide,
    DecisionKind,
    ErrorCode,
    GetRun,
    ListPending,
    ListRuns,
    PendingDecision,
    PendingReply,
    ProtocolError,
    ResumeRun,
    RunAccepted,
    RunRecord,
    RunReply,
    RunsReply,
    RunStatus,
    RunSummary,
    StartRun,
    WaitRun,
    client_side_control_codec,
)
from runtime.errors import BatonError


class ControlRefused(BatonError):
    """The runtime refused a request; `code` says why in a stable word."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code: ErrorCode = code
        self.message = message
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


class ControlClient:
    """Requests to one runtime, one at a time, over a DEALER socket.

    Use as an async context manager. Every call raises `ControlRefused` on a
    refusal (code `unauthorized` when the runtime will not accept our key) and
    `RuntimeUnavailable` when no reply comes within `timeout`. Without `keys`
    the runtime must be running insecure.
    """

    def __init__(
        self, endpoint: str, *, timeout: float = 10.0, keys: ClientKeys | None = None
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._keys = keys
        self._ids = itertools.count(1)
        self._codec = client_side_control_codec()
        self._ctx: zmq.asyncio.Context | None = None
        self._sock: zmq.asyncio.Socket | None = None
        self._monitor: zmq.asyncio.Socket | None = None
        self._poller = zmq.asyncio.Poller()
        self._handshakes = HandshakeWatch(curve=keys is not None)

    async def __aenter__(self) -> ControlClient:
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        if "[" in self.endpoint or "::" in self.endpoint:
            self._sock.setsockopt(zmq.IPV6, 1)
        if self._keys is not None:
            self._sock.curve_secretkey = self._keys.secret
            self._sock.curve_publickey = self._keys.public
            self._sock.curve_serverkey = self._keys.server
        self._monitor = self._sock.get_monitor_socket(WATCHED_EVENTS)
        self._poller.register(self._sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._sock.connect(self.endpoint)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sock is not None:
            self._sock.disable_monitor()
            self._sock.close(linger=0)
        if self._monitor is not None:
            self._monitor.close(linger=0)
        if self._ctx is not None:
            self._ctx.term()

    def _next_id(self) -> int:
        return next(self._ids)

    async def _ask(self, request: ControlRequest, *, patience: float | None = None) -> ControlReply:
        sock = self._sock
        if sock is None:
            raise RuntimeError("use ControlClient as `async with ControlClient(...)`")
        limit = self.timeout if patience is None else patience
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
                    raise ControlRefused(reply.code, reply.message)
                return reply
        raise RuntimeUnavailable(self.endpoint, limit)

    async def _check_handshakes(self) -> None:
        """Raise `ControlRefused("unauthorized")` once the runtime has refused our handshakes."""
        monitor = self._monitor
        assert monitor is not None
        while await monitor.poll(0):
            failure = self._handshakes.observe(await monitor.recv_multipart())
            if failure is not None:
                raise ControlRefused("unauthorized", failure.reason)

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
        reply = await self._ask(
            WaitRun(
                id=self._next_id(),
                protocol=PROTOCOL_VERSION,
                run_id=run_id,
                timeout_ms=int(max_wait * 1000),
            ),
            patience=max_wait + self.timeout,
        )
        assert isinstance(reply, RunReply)
        return reply.record, reply.timed_out

    async def wait_outcome(self, run_id: str, *, max_wait: float = 60.0) -> RunSummary:
        """The run's summary once it ended, or when `max_wait` passed; no whole record."""
        reply = await self._ask(
            WaitRun(
                id=self._next_id(),
                protocol=PROTOCOL_VERSION,
                run_id=run_id,
                timeout_ms=int(max_wait * 1000),
                summary=True,
            ),
            patience=max_wait + self.timeout,
        )
        assert isinstance(reply, RunsReply)
        return reply.runs[0]

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

    async def pending(self, run_id: str | None = None) -> list[PendingDecision]:
        """The decisions runs wait for that this principal may see, oldest first."""
        reply = await self._ask(
            ListPending(id=self._next_id(), protocol=PROTOCOL_VERSION, run_id=run_id)
        )
        assert isinstance(reply, PendingReply)
        return reply.pending

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
    ) -> list[RunSummary]:
        """Summaries of runs, newest first."""
        reply = await self._ask(
            ListRuns(
                id=self._next_id(),
                protocol=PROTOCOL_VERSION,
                status=status,
                workflow=workflow,
                limit=limit,
            )
        )
        assert isinstance(reply, RunsReply)
        return reply.runs
