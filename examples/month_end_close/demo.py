"""What `baton demo month_end_close` runs: its processes, its people, its requests.

The preparer starts each close, and so may not approve its journals: the demo
has it try, to show the refusal, before the checker approves. The close of
2026-11 stops for the group controller at an unexplained wire above
materiality; the demo's controller decides it, so that the demo ends. Then
2026-11 is submitted again, and the books post none of its journals twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from examples._models import served

AGENTS = "examples.month_end_close.agents"
ACTORS: tuple[tuple[str, str, str, int], ...] = (
    ("examples.month_end_close.tools:Erp", "erp", "tools:erp", 4),
    (f"{AGENTS}:Closer", "closer", "closer", 2),
    (f"{AGENTS}:Bookkeeper", "bookkeeper", "bookkeeper", 2),
    (f"{AGENTS}:RuleMatcher", "matcher", "matcher", 2),
    (f"{AGENTS}:Reconciler", "reconciler", "reconciler", 2),
    (f"{AGENTS}:Preparer", "preparer-agent", "preparer", 2),
    (f"{AGENTS}:Poster", "poster", "poster", 2),
    (f"{AGENTS}:Analyst", "analyst", "analyst", 1),
)
"""Each actor process: class, principal (its own key), the role the key holds, concurrency."""

MODELS: Mapping[str, str] = {
    "reconciler": "examples.month_end_close.model_agents:ModelReconciler",
    "analyst": "examples.month_end_close.model_agents:ModelAnalyst",
}
"""The roles a model serves when a model endpoint is configured, and the agent of each."""


def actors(environ: Mapping[str, str]) -> tuple[tuple[str, str, str, int], ...]:
    """The actor processes: `ACTORS`, each role of `MODELS` served by a model when `environ`
    names a model endpoint (`BATON_MODEL_URL`)."""
    return served(ACTORS, MODELS, environ)


PEOPLE: Mapping[str, tuple[str, ...]] = {
    "preparer": ("operator", "approver:accounting"),
    "checker": ("approver:accounting",),
    "controller": ("approver:controller",),
}
"""The demo's people and their roles: the preparer and the checker are both accountants."""
STARTER = "preparer"
"""Who starts the runs: the maker, whom separation of duties keeps from approving them."""

BATCHES: tuple[tuple[str, tuple[dict[str, object], ...]], ...] = (
    ("the closes of October and November, started by the preparer",
     ({"period": "2026-10"}, {"period": "2026-11"})),
    ("November submitted again: its journals are in the books under their keys already",
     ({"period": "2026-11"},)),
)  # fmt: skip
"""Runs started together, one batch after the other has ended, each with why."""

REVIEWERS: Mapping[str, tuple[str, ...]] = {
    "accounting": ("preparer", "checker"),
    "controller": ("controller",),
}
"""Whom the demo asks to decide, by approver group, in turn until one may."""

COMMENTS: Mapping[str, str] = {
    "triage": "the wire is recalled with the bank; carried as a reconciling item",
    "post": "journals agree with the exceptions",
    "lock_period": "signed off",
}
"""What each decides, by the first word of the step."""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("period", "period"),
    ("de posted", "posted_de.posted"),
    ("de found", "posted_de.already"),
    ("uk posted", "posted_uk.posted"),
    ("uk unexplained", "exceptions_uk.unexplained"),
    ("locked", "locked"),
)
"""The summary table's columns: a title and the dotted key of the record it shows."""

NOTE = (
    "The close of 2026-11 stopped at triage_uk for a person: 24,800.00 went out by wire and "
    "nothing explains it, above materiality (5,000.00). The demo's controller approved it, "
    "so that the demo ends; on a real close a person looks first. The 12.40 under "
    "materiality in entity de went on with a flag, open on the record."
)
