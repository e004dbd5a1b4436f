"""Refunds: look an order up, let the runtime choose the branch, then pay or decline.

assess -> route -+-> refund   (damaged and paid for; over 50.00 a person approves first)
                 +-> decline  (anything else)
"""

from runtime import Checkpoint, Decision, Retry, Role, Route, Step, Workflow, key

workflow = Workflow(
    "refunds",
    inputs=["order_id", "reason"],
    roles=[Role("clerk", tools=["order_total", "pay_refund"])],
    steps=[
        Step(
            "assess",
            role="clerk",
            reads=["order_id", "reason"],
            writes={"kind": str, "amount": int},
            tools=["order_total"],
            timeout=10,
        ),
        Decision(
            "route",
            routes=[Route((key("kind") == "damaged") & (key("amount") > 0), to="refund")],
            default="decline",
        ),
        Step(
            "refund",
            role="clerk",
            reads=["order_id", "amount"],
            writes={"refund_id": str},
            tools=["pay_refund"],
            timeout=10,
            on_failure=Retry(attempts=3, backoff=0.5),
            consequence="irreversible",
            checkpoint=Checkpoint(
                ["support"], condition=key("amount") > 5_000, reason="a refund over 50.00"
            ),
        ),
        Step("decline", role="clerk", reads=["kind"], writes={"reply": str}, timeout=10),
    ],
    edges=[("assess", "route")],
)
