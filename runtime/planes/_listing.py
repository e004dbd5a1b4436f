"""Which runs a `ListRuns` matches, newest first, and the page of them it asked for.

A dashboard pages through as many runs as the runtime holds (100,000 list in a
few tens of milliseconds), so every filter reads the run's own fields, and only
the runs on the page are summarised.
"""

from __future__ import annotations

import itertools
from collections.abc import Container, Iterable
from typing import Any

import msgspec

from protocols import ListRuns, RunSummary
from runtime.engine._run import Run
from runtime.planes._views import display_status, summary
from runtime.store._held import HeldRun

_ENCODE = msgspec.json.Encoder().encode


def reads_as(value: Any) -> str:
    """How a value reads to the `value` filter: a string as is, anything else as compact
    JSON (`42`, `true`, `{"a":1}`)."""
    return value if isinstance(value, str) else _ENCODE(value).decode()


def page_of_runs(
    runs: Iterable[Run],
    held: Iterable[HeldRun],
    request: ListRuns,
    connected: Container[str],
) -> tuple[list[RunSummary], int]:
    """The summaries of the page of matching `runs` and `held` runs that `request` asks
    for, newest first, and how many runs match in all. `connected` are the roles of which
    an agent is connected, which decides whether a run shows as running or waiting."""
    workflow, status, key = request.workflow, request.status, request.key
    since, until, value = request.since, request.until, request.value
    matching: list[Run | HeldRun] = []
    every: Iterable[Run | HeldRun] = itertools.chain(runs, held)
    for run in every:
        if workflow is not None and run.workflow != workflow:
            continue
        if since is not None and run.created_at < since:
            continue
        if until is not None and run.created_at > until:
            continue
        if key is not None:
            # A held run was never folded: it has no data to match.
            if isinstance(run, HeldRun) or key not in run.data:
                continue
            if value is not None and reads_as(run.data[key]) != value:
                continue
        if status is not None and _shown_status(run, connected) != status:
            continue
        matching.append(run)
    matching.sort(key=_created_at, reverse=True)
    page = matching[request.offset : request.offset + request.limit]
    return [summary(run, connected) for run in page], len(matching)


def _shown_status(run: Run | HeldRun, connected: Container[str]) -> str:
    """The status a summary of `run` would show."""
    return run.status if isinstance(run, HeldRun) else display_status(run, connected)[0]


def _created_at(run: Run | HeldRun) -> float:
    return run.created_at
