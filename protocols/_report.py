"""A workflow's report as it travels: outcomes, each step's record, where runs break.

The figures are computed by the runtime (`runtime.observe.report`) from run
records; these are only their shapes, shared by `baton report --json` and the
control plane's `ReportReply`, so that both read the same.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from protocols._base import Count
from protocols._values import MAX_ITEMS, Name, Text

Counts = Annotated[dict[Name, Count], Meta(max_length=MAX_ITEMS)]


class _Figures(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Report views keep every field on the wire, None included, so JSON consumers always
    find each key."""


class StepFigures(_Figures, frozen=True):
    """One step over every run that reached it."""

    step: Name
    consequence: Name
    checkpoint: bool
    visits: Count
    """Times the step was reached and tried (a loop may reach it more than once a run)."""
    attempts: Count
    first_try_success: float | None
    """Share of visits whose first attempt succeeded; None when never tried."""
    retries: Count
    """Attempts beyond the first of each visit."""
    failures: Counts
    """Failed attempts by failure kind."""
    flagged: Count
    """Visits that proceeded with default outputs and a flag."""
    p50_seconds: float | None
    p95_seconds: float | None
    """Durations of attempts, from dispatch to outcome."""
    decisions: Count
    """Checkpoint and escalation decisions made on the step."""
    rejected_or_edited: Count
    """Decisions that rejected, or approved with edits: what review caught."""
    human_wait_p50_seconds: float | None
    """Time runs waited for a person's decision at the step."""
    model_calls: Count = 0
    """Model calls its agents made, as journaled: those of every attempt."""
    tokens_in: Count = 0
    tokens_out: Count = 0
    """Tokens of those calls, sent to the models and received from them."""


class Cluster(_Figures, frozen=True):
    """A step where runs went wrong: it failed them, or flagged them."""

    step: Name
    runs: Count
    share: float
    """Of the runs that ended failed or halted, or carry an open flag."""


class Report(_Figures, frozen=True):
    """The report of one workflow."""

    workflow: Name
    runs: Count
    outcomes: Counts
    """Runs by status: completed, failed, halted, cancelled, running, waiting, stuck."""
    completion_rate: float | None
    """Completed runs over ended runs."""
    error_rate: float | None
    """Failed or halted runs over ended runs."""
    clean_rate: float | None
    """Ended runs in which every step succeeded on its first try, over ended runs."""
    compounded_first_try: float | None
    """The product of the steps' first-try success rates: what the chain promises."""
    steps: Annotated[list[StepFigures], Meta(max_length=MAX_ITEMS)]
    clusters: Annotated[list[Cluster], Meta(max_length=MAX_ITEMS)]
    open_flags: Annotated[dict[Text, Count], Meta(max_length=MAX_ITEMS)]
    """Runs still carrying each flag: the `MAX_ITEMS` most common flags, most common first."""
    advice: Annotated[list[Text], Meta(max_length=2 * MAX_ITEMS)]
    tokens_in: Count = 0
    tokens_out: Count = 0
    """Tokens of every model call of the runs, sent to the models and received from them."""
    tokens_per_run: float | None = None
    """Tokens in and out per run, over the runs that made any model call; None if none did."""
