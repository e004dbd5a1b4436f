"""The tool calls a tool host is running, by idempotency key, across all its connections.

A keyed call may be asked again while it runs: by its supervisor after that one
restarted, or by another supervisor that took the run over from one that died,
on another connection. Running it again would be refused by the ledger as an
unknown outcome, and answering the repeat that way would fail a call that is
about to succeed. So a repeat waits for the running call, and gets its reply on
the connection, and in the session, that asked.
"""

from __future__ import annotations

from typing import Literal, Protocol

from protocols import ToolCall

Attached = Literal["attached", "conflict", "absent"]


class Asker(Protocol):
    """One connection's side of a call: where its reply goes, in which session."""

    @property
    def session(self) -> int:
        """Counts the connection's sessions with its supervisor: a reply goes only to the
        session that asked, since a supervisor that restarted numbers its calls anew."""
        ...

    def answer(self, frame: bytes) -> None:
        """Send a reply on this connection."""


class CallJob:
    """A tool call admitted to a connection's pool, and the repeats that wait for its reply."""

    __slots__ = ("asker", "call", "repeats", "session")

    def __init__(self, call: ToolCall, asker: Asker) -> None:
        self.call = call
        self.asker = asker
        self.session = asker.session
        self.repeats: list[tuple[int, int, Asker]] = []
        """(call id, session, connection) of each repeat of this call waiting for its reply."""


class CallsInFlight:
    """The keyed calls admitted and not finished, on whichever connection they came."""

    __slots__ = ("_jobs",)

    def __init__(self) -> None:
        self._jobs: dict[str, CallJob] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def attach(self, call: ToolCall, asker: Asker) -> Attached:
        """Answer `call` on `asker` with the reply of the running call under its key, when it
        finishes; `conflict` if that call had other arguments, `absent` if none runs."""
        job = self._jobs.get(call.idempotency_key) if call.idempotency_key else None
        if job is None:
            return "absent"
        if (job.call.tool, job.call.args) != (call.tool, call.args):
            return "conflict"
        job.repeats.append((call.call_id, asker.session, asker))
        return "attached"

    def admit(self, call: ToolCall, asker: Asker) -> CallJob:
        """The job of a call `asker` admitted; repeats of it attach to it while it runs."""
        job = CallJob(call, asker)
        if call.idempotency_key:
            self._jobs[call.idempotency_key] = job
        return job

    def finish(self, job: CallJob) -> None:
        """`job` has its reply: later calls under its key are the ledger's to answer."""
        key = job.call.idempotency_key
        if self._jobs.get(key) is job:
            del self._jobs[key]

    def keys_for(self, asker: Asker) -> list[str]:
        """The keys of the running calls `asker` waits for, its own or repeats, so that a new
        session with its supervisor sends repeats of them here."""
        return [
            key
            for key, job in self._jobs.items()
            if job.asker is asker or any(waiting is asker for _, _, waiting in job.repeats)
        ]
