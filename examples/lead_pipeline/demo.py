"""What `baton demo lead_pipeline` runs: its processes, its people, its leads.

Five leads come in: one is a contact already and is dropped; the intent source
cannot answer for one, which is scored on low evidence with a flag; one is a
poor fit and is nurtured; three qualify. Their emails wait for the sales
manager's approval, then leave no faster than the mail gateway allows.
"""

from __future__ import annotations

from collections.abc import Mapping

from examples._models import served

AGENTS = "examples.lead_pipeline.agents"
ACTORS: tuple[tuple[str, str, str, int], ...] = (
    ("examples.lead_pipeline.tools:Crm", "crm-host", "tools:crm", 4),
    (f"{AGENTS}:Intake", "intake", "intake", 2),
    (f"{AGENTS}:CrmClerk", "crm-clerk", "crm", 2),
    (f"{AGENTS}:Researcher", "researcher", "researcher", 4),
    (f"{AGENTS}:Scorer", "scorer", "scorer", 2),
    (f"{AGENTS}:Writer", "writer", "writer", 2),
    (f"{AGENTS}:Sender", "sender", "sender", 4),
)
"""Each actor process: class, principal (its own key), the role the key holds, concurrency."""

MODEL_WRITER = "examples.lead_pipeline.model_agents:ModelWriter"
MODELS: Mapping[str, str] = {"writer": MODEL_WRITER}
"""The roles a model serves when a model endpoint is configured, and the agent of each."""


def actors(environ: Mapping[str, str]) -> tuple[tuple[str, str, str, int], ...]:
    """The actor processes: `ACTORS`, each role of `MODELS` served by a model when `environ`
    names a model endpoint (`BATON_MODEL_URL`)."""
    return served(ACTORS, MODELS, environ)


PEOPLE: Mapping[str, tuple[str, ...]] = {"sales-manager": ("approver:sales",)}
STARTER = "operator"
"""Who starts the runs: the intake, as an operator."""


def _lead(name: str, email: str, title: str, source: str) -> dict[str, object]:
    return {"lead": {"name": name, "email": email, "title": title, "source": source,
                     "received": "2026-11-30"}}  # fmt: skip


BATCHES: tuple[tuple[str, tuple[dict[str, object], ...]], ...] = (
    ("the leads of the day, as they came in", (
        _lead("Ada Lovelace", "ada@northwind.example", "Head of Operations", "webinar"),
        _lead("Grace Hopper", "Grace@Contoso.example", "VP Engineering", "web form"),
        _lead("Alan Turing", "alan@initech.example", "CTO", "trade fair"),
        _lead("Barbara Liskov", "barbara@tinyco.example", "Analyst", "web form"),
        _lead("Edsger Dijkstra", "edsger@globex.example", "Director of Finance", "webinar"),
    )),
)  # fmt: skip
"""Runs started together, each batch once the one before has ended."""

REVIEWERS: Mapping[str, tuple[str, ...]] = {"sales": ("sales-manager",)}
"""Whom the demo asks to decide, by approver group, in turn until one may."""

COMMENTS: Mapping[str, str] = {"send": "good to go"}
"""What each decides, by the first word of the step."""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("lead", "contact.email"),
    ("dropped", "known_as"),
    ("score", "score.points"),
    ("evidence", "score.evidence"),
    ("message", "message_id"),
    ("follow-up", "follow_up.due"),
)
"""The summary table's columns: a title and the dotted key of the record it shows."""

NOTE = (
    "The sales manager approved each email before it left; the gateway lets 2 a second "
    "through, and a send it refused was tried again (retries above). Grace's score rests "
    "on firmographics alone: its flag stays open on her record."
)
