"""The lead pipeline, defined as data: one run per lead that came in.

ingest -> dedupe -> known -+-> drop            (a contact already)
                           +-> enrich_company -+-> score -> qualify -+-> draft_outreach
                           +-> enrich_intent --+                     |        |
                                                                     |   send_outreach
                                                       nurture <-----+        |
                                                                          follow_up

Enrichment asks two sources at once; when the intent source cannot answer,
the run goes on with a flag and the score says its evidence is low. A person
of group `sales` approves every email before it leaves; the mail gateway
limits its rate, and a send it refuses is tried again a moment later.
"""

from __future__ import annotations

from runtime import (
    Checkpoint,
    Decision,
    Halt,
    ProceedWithFlag,
    Retry,
    Role,
    Route,
    Step,
    Workflow,
    chain,
    key,
)

QUALIFIED = 60
"""Points (of 100) from which a lead gets outreach; under them it is nurtured."""
LOW_EVIDENCE = "intent source unavailable: the score rests on firmographics alone (low evidence)"

workflow = Workflow(
    "lead_pipeline",
    version="1.0",
    description="Qualify an inbound lead and reach out once a person approved the email.",
    inputs=["lead"],
    roles=[
        Role("intake", description="Reads the lead as it came in."),
        Role("crm", tools=["crm_lookup", "add_to_nurture", "schedule_follow_up"]),
        Role("researcher", tools=["company_profile", "intent_signals"]),
        Role("scorer", description="Scores a lead per criterion, with the evidence for each."),
        Role("writer", description="Drafts the first email."),
        Role("sender", tools=["send_email"]),
    ],
    steps=[
        Step("ingest", role="intake", reads=["lead"], writes={"contact": dict}, timeout=10),
        Step(
            "dedupe",
            role="crm",
            reads=["contact"],
            writes={"known_as": str},
            tools=["crm_lookup"],
            timeout=10,
        ),
        Decision(
            "known",
            routes=[Route(key("known_as") != "", to="drop")],
            default=["enrich_company", "enrich_intent"],
        ),
        Step(
            "drop",
            role="intake",
            reads=["contact", "known_as"],
            writes={"dropped": str},
            timeout=10,
        ),
        Step(
            "enrich_company",
            role="researcher",
            reads=["contact"],
            writes={"firmographics": dict},
            tools=["company_profile"],
            timeout=10,
            on_failure=Retry(attempts=2, backoff=0.1),
        ),
        Step(
            "enrich_intent",
            role="researcher",
            reads=["contact"],
            writes={"signals": dict},
            tools=["intent_signals"],
            timeout=10,
            on_failure=Retry(
                attempts=2,
                backoff=0.1,
                then=ProceedWithFlag(defaults={"signals": {}}, flag=LOW_EVIDENCE),
            ),
        ),
        Step(
            "score",
            role="scorer",
            reads=["contact", "firmographics", "signals"],
            writes={"score": dict},
            timeout=10,
        ),
        Decision(
            "qualify",
            routes=[Route(key("score.points") >= QUALIFIED, to="draft_outreach")],
            default="nurture",
        ),
        Step(
            "nurture",
            role="crm",
            reads=["contact", "score"],
            writes={"nurtured": str},
            tools=["add_to_nurture"],
            timeout=10,
        ),
        Step(
            "draft_outreach",
            role="writer",
            reads=["contact", "firmographics", "score"],
            writes={"draft": dict},
            timeout=10,
        ),
        Step(
            "send_outreach",
            role="sender",
            reads=["contact", "draft"],
            writes={"message_id": str},
            tools=["send_email"],
            timeout=10,
            consequence="irreversible",
            checkpoint=Checkpoint(
                ["sales"], reason="a person approves every email before it leaves"
            ),
            # The gateway refuses sends over its rate: each is tried again shortly, a bounded
            # number of times, as a moment later the same send goes through.
            on_failure={
                "error": Retry(
                    attempts=8, backoff=0.4, factor=1.5, max_backoff=2.0, jitter=0.5, then=Halt()
                )
            },
        ),
        Step(
            "follow_up",
            role="crm",
            reads=["contact", "message_id"],
            writes={"follow_up": dict},
            tools=["schedule_follow_up"],
            timeout=10,
        ),
    ],
    edges=[
        *chain("ingest", "dedupe", "known"),
        ("enrich_company", "score"),
        ("enrich_intent", "score"),
        ("score", "qualify"),
        *chain("draft_outreach", "send_outreach", "follow_up"),
    ],
)
