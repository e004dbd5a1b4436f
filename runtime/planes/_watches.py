"""Long polls on the runtime's changes: a page learns that something changed without
reading journals in a loop.

A `Watch` on a run is answered once the run's record is past the version the
client saw; a `Watch` on the runtime, once its change cursor moved past the one
the client saw. The cursor goes up by one with each batch of events handed to
the store. Both are answered from what was journaled: the supervisor tells
`journaled` of each batch as it hands it to the store, and what that queues
leaves only once the batch is durable, as every reply of the control plane does.
Each open watch holds a timer (the same kind of timer as a `WaitRun`) that
answers it, timed out, when its wait ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from protocols import Changed, ControlError, ErrorCode, Message, Watch
from runtime.engine._run import Run
from runtime.store._held import HeldRun

WATCHES_PER_CLIENT = 64
"""Watches one client connection may keep open at once: a page needs a few, and a client
that opens more is refused (`overloaded`) rather than grow the runtime's memory."""

WatchKey = tuple[str, bytes, int, str]
"""("watch", client, request id, run id, or "" for the runtime's cursor): the timer that
ends a watch."""


class WatchHost(Protocol):
    """What the watches need of the supervisor."""

    def send_control(self, identity: bytes, message: Message) -> None: ...

    def start_wait(self, key: WatchKey, seconds: float) -> None: ...

    def cancel_wait(self, key: WatchKey) -> None: ...


class Watches:
    """The open watches, by run and on the runtime's cursor, and that cursor."""

    def __init__(
        self,
        host: WatchHost,
        find: Callable[[str], Run | HeldRun | None],
        *,
        per_client: int = WATCHES_PER_CLIENT,
    ) -> None:
        """`find` gives a run this runtime holds, by its id."""
        self._host = host
        self._find = find
        self._per_client = per_client
        self.cursor = 0
        """Batches of events journaled since this runtime started."""
        self._open: dict[tuple[bytes, int], str] = {}
        """(client, request id) of each open watch: the run it watches, or ""."""
        self._by_run: dict[str, dict[tuple[bytes, int], None]] = {}
        """The open watches on each run, and ("" for) on the cursor, in the order opened."""
        self._by_client: dict[bytes, int] = {}
        """How many watches each client keeps open."""

    def __len__(self) -> int:
        return len(self._open)

    def open(self, identity: bytes, request: Watch, run: Run | HeldRun | None) -> None:
        """Answer `request` at once if what it watches (`run`, or with None the cursor) is
        already past `after`, else once it changes or the wait ends.

        On the cursor, an `after` greater than the cursor was given by an earlier life of
        this runtime (the cursor starts again from 0): it is answered at once too, so that
        the client goes on from the cursor as it is now.
        """
        if run is None:
            now = self.cursor
            changed = now != request.after
        else:
            now = run.seq
            changed = now > request.after
        if changed:
            self._host.send_control(identity, Changed(id=request.id, cursor=now))
            return
        watch = (identity, request.id)
        if watch in self._open:
            text = f"request id {request.id} is already watching"
            self._error(identity, request.id, "invalid_input", text)
            return
        held = self._by_client.get(identity, 0)
        if held >= self._per_client:
            text = (
                f"this connection has {held} watches open, the limit is {self._per_client}: "
                "wait for one to be answered first"
            )
            self._error(identity, request.id, "overloaded", text)
            return
        target = "" if run is None else run.run_id
        self._open[watch] = target
        self._by_run.setdefault(target, {})[watch] = None
        self._by_client[identity] = held + 1
        self._host.start_wait(("watch", identity, request.id, target), request.timeout_ms / 1000)

    def journaled(self, run_ids: Iterable[str]) -> None:
        """A batch of events of the runs `run_ids` is handed to the store: move the cursor
        and answer who watches it or those runs (the answers leave once it is durable)."""
        self.cursor += 1
        if not self._by_run:
            return
        if "" in self._by_run:
            self._answer("", self.cursor)
        for run_id in set(run_ids):
            if run_id in self._by_run:
                run = self._find(run_id)
                self._answer(run_id, 0 if run is None else run.seq)

    def end(self, identity: bytes, request: int, run_id: str) -> None:
        """The watch's time is up: answer with the version or cursor as it is, timed out."""
        watch = (identity, request)
        if self._open.get(watch) != run_id:
            return
        self._close(watch, run_id)
        run = self._find(run_id) if run_id else None
        cursor = self.cursor if not run_id else 0 if run is None else run.seq
        self._host.send_control(identity, Changed(id=request, cursor=cursor, timed_out=True))

    def _answer(self, target: str, cursor: int) -> None:
        for watch in list(self._by_run.get(target, ())):
            self._close(watch, target)
            identity, request = watch
            self._host.cancel_wait(("watch", identity, request, target))
            self._host.send_control(identity, Changed(id=request, cursor=cursor))

    def _close(self, watch: tuple[bytes, int], target: str) -> None:
        del self._open[watch]
        watching = self._by_run[target]
        del watching[watch]
        if not watching:
            del self._by_run[target]
        identity = watch[0]
        left = self._by_client[identity] - 1
        if left:
            self._by_client[identity] = left
        else:
            del self._by_client[identity]

    def _error(self, identity: bytes, request: int, code: ErrorCode, text: str) -> None:
        self._host.send_control(identity, ControlError(id=request, code=code, message=text))
