"""Which runs a workflow's report over the control plane covers, and how many it may.

The report is worked out on the supervisor's loop, between two batches, from
the runs in memory: its cost grows with the runs it covers (about 30 ms per
thousand runs of a five-step workflow, measured on 2 cores), and nothing else
on the runtime moves meanwhile. So it covers at most the newest
`MAX_REPORT_RUNS` of the runs asked for, and its reply says how many there
were; `baton report` reads the whole journal off the runtime instead.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from runtime.engine._run import Run

MAX_REPORT_RUNS = 10_000
"""Most runs one report over the control plane covers: about 0.3 s of the supervisor's
loop for a five-step workflow."""


def runs_to_report(
    runs: Iterable[Run], workflow: str, since: float | None, limit: int = MAX_REPORT_RUNS
) -> tuple[list[Run], int]:
    """The newest `limit` runs of `workflow` created at or after `since` (every one without
    it), and how many there were in all."""
    oldest = float("-inf") if since is None else since
    chosen = [run for run in runs if run.workflow == workflow and run.created_at >= oldest]
    if len(chosen) <= limit:
        return chosen, len(chosen)
    return heapq.nlargest(limit, chosen, key=lambda run: run.created_at), len(chosen)
