"""Month-end close, defined as data: each entity reconciled in parallel, then one sign-off.

open_close -+-> ingest_de -> match_de -> triage_de -> tie_out_de -> draft_de -> post_de -+
            +-> ingest_uk -> match_uk -> triage_uk -> tie_out_uk -> draft_uk -> post_uk -+
                                                                                         |
                                                          lock_period <- narrative <-----+

Rules match what they can; the reconciler sees only what they left. When the
items it finds leave a difference unexplained, the entity does not tie out:
under materiality, the close goes on with a flag that travels to the narrative
and the lock; above it, the run first stops at `triage_*` for the group
controller. Journals over the limit wait for a checker who is not the preparer
(the principal who started the close), and are posted once per entity, period
and journal id. The controller signs the close off before the period locks.
"""

from __future__ import annotations

from runtime import Checkpoint, Escalate, ProceedWithFlag, Retry, Role, Step, Workflow, chain, key

ENTITIES = ("de", "uk")
"""The group's entities, each a branch of the graph of its own."""
MATERIALITY = 500_000
"""Cents: an entity's unexplained difference above this stops the run for the controller."""
JOURNAL_LIMIT = 100_000
"""Cents: an entity's journals above this in all wait for a checker before they post."""


def _entity(entity: str) -> list[Step]:
    """One entity's branch: ingest, match by rules, triage the rest, draft, post."""
    return [
        Step(
            f"ingest_{entity}",
            role="bookkeeper",
            reads=["period"],
            writes={f"bank_{entity}": list, f"ledger_{entity}": list},
            tools=["bank_statement", "ledger_entries"],
            timeout=20,
            on_failure=Retry(attempts=3, backoff=0.2),
            description=f"Read entity {entity}'s bank statement and cash ledger for the period.",
        ),
        Step(
            f"match_{entity}",
            role="matcher",
            reads=[f"bank_{entity}", f"ledger_{entity}"],
            writes={f"matches_{entity}": dict},
            timeout=20,
            description="Pair bank lines and ledger entries by reference and amount: rules only.",
        ),
        Step(
            f"triage_{entity}",
            role="reconciler",
            reads=["calendar", f"matches_{entity}"],
            writes={f"exceptions_{entity}": dict},
            timeout=30,
            description="Explain what the rules left: timing, duplicate, FX, accrual, "
            "intercompany, or unexplained.",
            checkpoint=Checkpoint(
                ["controller"],
                when="after",
                condition=key(f"exceptions_{entity}.unexplained") > MATERIALITY,
                reason=f"entity {entity}: an unexplained difference above materiality "
                f"({MATERIALITY / 100:,.2f})",
            ),
        ),
        Step(
            f"tie_out_{entity}",
            role="matcher",
            reads=[f"matches_{entity}", f"exceptions_{entity}"],
            writes={f"tied_{entity}": dict},
            timeout=20,
            description="Check that the items explain the whole difference; fails when not.",
            on_failure={
                "error": ProceedWithFlag(
                    defaults={f"tied_{entity}": {"ties_out": False}},
                    flag=f"entity {entity}: the reconciliation does not tie out; "
                    "an unexplained difference is carried",
                )
            },
        ),
        Step(
            f"draft_{entity}",
            role="preparer",
            reads=["period", f"exceptions_{entity}"],
            writes={f"journals_{entity}": dict},
            timeout=20,
            description="Draft the adjusting journals the exceptions call for.",
        ),
        Step(
            f"post_{entity}",
            role="poster",
            reads=["period", f"journals_{entity}"],
            writes={f"posted_{entity}": dict},
            tools=["post_journal"],
            timeout=20,
            consequence="irreversible",
            on_failure=Retry(attempts=3, backoff=0.5, then=Escalate(["accounting"])),
            checkpoint=Checkpoint(
                ["accounting"],
                condition=key(f"journals_{entity}.total") > JOURNAL_LIMIT,
                reason=f"entity {entity}: journals over {JOURNAL_LIMIT / 100:,.2f}; a checker "
                "other than the preparer approves them",
            ),
        ),
    ]


workflow = Workflow(
    "month_end_close",
    version="1.0",
    description="Close a period: reconcile bank and ledger per entity, adjust, post, sign off.",
    inputs=["period"],
    roles=[
        Role("closer", tools=["period_calendar", "lock_period"]),
        Role("bookkeeper", tools=["bank_statement", "ledger_entries"]),
        Role("matcher", description="Matches by deterministic rules; judges nothing."),
        Role("reconciler", description="Explains what the rules could not match."),
        Role("preparer", description="Drafts adjusting journals: the maker."),
        Role("poster", tools=["post_journal"]),
        Role("analyst", description="Writes the variance narrative."),
    ],
    steps=[
        Step(
            "open_close",
            role="closer",
            reads=["period"],
            writes={"calendar": dict},
            tools=["period_calendar"],
            timeout=10,
        ),
        *(node for entity in ENTITIES for node in _entity(entity)),
        Step(
            "narrative",
            role="analyst",
            reads=[
                "period",
                *(
                    f"{k}_{e}"
                    for e in ENTITIES
                    for k in ("matches", "exceptions", "tied", "posted")
                ),
            ],
            writes={"narrative": str, "variance": dict},
            timeout=20,
        ),
        Step(
            "lock_period",
            role="closer",
            reads=["period", "narrative", "variance"],
            writes={"locked": str},
            tools=["lock_period"],
            timeout=10,
            consequence="irreversible",
            checkpoint=Checkpoint(
                ["controller"], reason="the group controller signs the close off"
            ),
        ),
    ],
    edges=[
        *(("open_close", f"ingest_{e}") for e in ENTITIES),
        *(
            edge
            for e in ENTITIES
            for edge in chain(
                f"ingest_{e}",
                f"match_{e}",
                f"triage_{e}",
                f"tie_out_{e}",
                f"draft_{e}",
                f"post_{e}",
            )
        ),
        *((f"post_{e}", "narrative") for e in ENTITIES),
        ("narrative", "lock_period"),
    ],
)
