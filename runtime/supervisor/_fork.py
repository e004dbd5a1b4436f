"""Forks: a new run that begins with a copy of part of another run's journal.

The parent's journal may have to be read from disk, so a fork is made in two
halves: off the loop, the records that brought the parent's record to the
version asked for are read and checked (`fork_prefix`); back on it, the core
journals their copy under the new run's id, then the `RunForked` event, and
carries on from there (`SupervisorCore.begin_fork`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from protocols import TERMINAL_STATUSES, ControlError
from runtime import engine
from runtime.engine._events import DecisionMade, JournalEvent
from runtime.engine._run import Run
from runtime.errors import StoreError
from runtime.store import JournalRecord, JournalUnreadable, Store, replay
from runtime.workflow._catalog import Catalog


@dataclass(frozen=True, slots=True)
class ForkAsked:
    """A client's request to fork run `parent` at version `at`, checked as far as the loop
    can check it, kept until its prefix is read off the loop."""

    identity: bytes
    request: int
    parent: str
    at: int
    values: dict[str, Any]
    reason: str
    principal: str


class ForkQueue:
    """Forks asked for, kept until whoever drives the runtime reads their prefixes."""

    __slots__ = ("_asked",)

    def __init__(self) -> None:
        self._asked: list[ForkAsked] = []

    def add(self, asked: ForkAsked) -> None:
        self._asked.append(asked)

    def take(self) -> list[ForkAsked]:
        """The forks asked for since the last call."""
        asked, self._asked = self._asked, []
        return asked


async def fork_prefix(
    store: Store,
    catalog: Catalog,
    pending: Callable[[], Sequence[JournalRecord]],
    asked: ForkAsked,
) -> list[JournalRecord] | ControlError:
    """The parent's records, in order, whose fold is its record at version `asked.at`; or
    the refusal to answer with.

    As for a past record, `pending` gives the records not yet in the store, asked after
    the store was read. A version at which the parent had already ended is refused: its
    fork would have nothing left to do.
    """
    parent = asked.parent
    try:
        records = await store.journal(parent)
        records += [r for r in pending() if r.run_id == parent]
        run, taken = _fold_until(catalog, records, asked.at)
    except (JournalUnreadable, StoreError) as exc:
        return ControlError(id=asked.request, code="internal", message=str(exc)[:1_000])
    if run.seq < asked.at:
        text = f"version {asked.at} is still being written to the journal; ask again"
        return ControlError(id=asked.request, code="overloaded", message=text)
    if run.status in TERMINAL_STATUSES:
        text = (
            f"run {parent!r} had already ended ({run.status}) at version {asked.at}: a fork of "
            "it would have nothing to do; fork it at an earlier version"
        )
        return ControlError(id=asked.request, code="invalid_input", message=text)
    return records[:taken]


def copied_events(
    catalog: Catalog, prefix: Sequence[JournalRecord], run_id: str
) -> tuple[list[tuple[JournalEvent, float]], Run]:
    """The parent's events `prefix` as the fork `run_id` journals them, with their times,
    and the fork's run folded from them (it is folded here anyway, to quote its digests).

    A decision quotes the digest of the decision it answers, and a digest names its
    run: copied as it was, each decision of the parent would be ignored in the fork.
    Each one the parent applied quotes instead the digest the same decision has in the
    fork; one the parent ignored is copied unchanged, to be ignored again.
    """
    copies: list[tuple[JournalEvent, float]] = []
    parent: Run | None = None
    fork: Run | None = None
    for record in prefix:
        event = msgspec.structs.replace(record.event, run_id=run_id)
        if isinstance(event, DecisionMade) and parent is not None and fork is not None:
            event = _quoting_the_fork(event, record.event, parent, fork)
        copies.append((event, record.at))
        if parent is None or fork is None:
            parent = replay(catalog, [record])
            fork = replay(catalog, [JournalRecord(run_id, record.seq, record.at, event)])
            continue
        engine.apply(parent, record.event, record.at)
        engine.apply(fork, event, record.at)
    if fork is None:
        raise JournalUnreadable(run_id, "a fork copies at least the parent's start")
    return copies, fork


def _quoting_the_fork(
    copy: DecisionMade, original: JournalEvent, parent: Run, fork: Run
) -> DecisionMade:
    answered = parent.decisions.get(copy.step)
    same = fork.decisions.get(copy.step)
    applied = (
        isinstance(original, DecisionMade)
        and answered is not None
        and answered.digest == original.digest
        and answered.attempt == original.attempt
    )
    if not applied or same is None:
        return copy
    return msgspec.structs.replace(copy, digest=same.digest)


def _fold_until(
    catalog: Catalog, records: Sequence[JournalRecord], version: int
) -> tuple[Run, int]:
    """The run folded from the first of `records` until its record reached `version` (or
    they ran out), and how many records that took."""
    if not records:
        raise JournalUnreadable("", "the journal is empty")
    run = replay(catalog, records[:1])
    taken = 1
    while run.seq < version and taken < len(records):
        record = records[taken]
        if record.seq != taken + 1:
            raise JournalUnreadable(record.run_id, f"seq {record.seq} where {taken + 1} was due")
        engine.apply(run, record.event, record.at)
        taken += 1
    return run, taken
