"""The customer-operations workflow, defined as data.

classify -> route -+-> billing_lookup --+-> policy --+-> draft_reply -> check_reply -> review
                   |                    |            |      ^                          |
                   +-> account_history -+            |      +---- (check failed, max 2)+
                   +-> general_answer ---------------+                                 v
                                                                                  send_reply
"""

from __future__ import annotations

from runtime import (
    Checkpoint,
    Decision,
    ProceedWithFlag,
    Retry,
    Role,
    Route,
    Step,
    Workflow,
    chain,
    key,
)

REFUND_LIMIT = 1_500
"""Refunds above this (in cents) wait for a person of group `finance` to approve them."""

workflow = Workflow(
    "customer_ops",
    version="1.0",
    description="Resolve a customer request touching billing, account history and policy.",
    inputs=["request"],
    roles=[
        Role("classifier", description="Reads the request and says what it is about."),
        Role("billing", tools=["lookup_invoices"]),
        Role("history", tools=["account_history"]),
        Role("policy", description="Decides what the company will do."),
        Role("writer", description="Drafts the reply to the customer."),
        Role("checker", description="Checks the draft against the decision."),
        Role("sender", tools=["send_email"]),
    ],
    steps=[
        Step(
            "classify",
            role="classifier",
            reads=["request"],
            writes={"category": str, "customer_id": str},
            timeout=10,
        ),
        Decision(
            "route",
            routes=[
                Route(
                    key("category") == "billing",
                    to=["billing_lookup", "account_history"],
                )
            ],
            default="general_answer",
        ),
        Step(
            "billing_lookup",
            role="billing",
            reads=["customer_id"],
            writes={"invoices": list},
            tools=["lookup_invoices"],
            timeout=10,
            on_failure=Retry(attempts=3, backoff=0.1),
        ),
        Step(
            "account_history",
            role="history",
            reads=["customer_id"],
            writes={"history": list},
            tools=["account_history"],
            timeout=10,
            on_failure=Retry(
                attempts=2,
                backoff=0.1,
                then=ProceedWithFlag(
                    defaults={"history": []},
                    flag="account history unavailable: decided without it",
                ),
            ),
        ),
        Step(
            "policy",
            role="policy",
            reads=["category", "invoices", "history"],
            writes={"decision": dict},
            timeout=10,
            consequence="costly",
            checkpoint=Checkpoint(
                ["finance"],
                when="after",
                condition=(key("decision.action") == "refund")
                & (key("decision.amount") > REFUND_LIMIT),
                reason=f"a refund over {REFUND_LIMIT} cents",
                timeout=3_600,
            ),
        ),
        Step(
            "general_answer",
            role="policy",
            reads=["request", "category"],
            writes={"decision": dict},
            timeout=10,
        ),
        Step(
            "draft_reply",
            role="writer",
            reads=["request", "decision"],
            writes={"draft": str},
            timeout=10,
        ),
        Step(
            "check_reply",
            role="checker",
            reads=["draft", "decision"],
            writes={"check_ok": bool},
            timeout=10,
        ),
        Decision(
            "review",
            routes=[Route(key("check_ok") == False, to="draft_reply", limit=2)],  # noqa: E712
            default="send_reply",
        ),
        Step(
            "send_reply",
            role="sender",
            reads=["customer_id", "draft"],
            writes={"message_id": str},
            tools=["send_email"],
            timeout=10,
            consequence="irreversible",
            unreviewed="the email states a decision that was reviewed where it cost money, "
            "and the checker compared the draft with it",
        ),
    ],
    edges=[
        ("classify", "route"),
        ("billing_lookup", "policy"),
        ("account_history", "policy"),
        ("policy", "draft_reply"),
        ("general_answer", "draft_reply"),
        *chain("draft_reply", "check_reply", "review"),
    ],
)
