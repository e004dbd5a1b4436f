"""The classifier and the writer as models: what `baton demo` runs for those roles when a
model endpoint is configured (`BATON_MODEL_URL`, the `models` extra).

The model reads and writes; the facts stay the workflow's. The classifier's model
says only what the request is about, and the customer's id is copied from the
request, not retyped by a model. The writer's draft still meets the checker,
which sends it back when the refund's amount is not in it, and the refund itself
was decided, and approved over the limit, before any draft was asked for.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from actors import Context, Result, Task
from actors.models import ModelAgent


class ModelClassifier(ModelAgent):
    """Says whether a customer's request is about billing."""

    role = "classifier"
    instructions = (
        "You triage customer requests for a software company. Output `category`: "
        '"billing" when the request is about charges, invoices, refunds or payments, '
        'else "general".'
    )
    model = "baton-demo-classifier"

    async def handle(self, task: Task, ctx: Context) -> Result:
        asked = dataclasses.replace(task, outputs=MappingProxyType({"category": "str"}))
        said = await super().handle(asked, ctx)
        category = str(said.outputs["category"]).strip().lower()
        caveats = list(said.caveats)
        if category not in {"billing", "general"}:
            caveats.append(f"the model said {category!r}: answered as a general request")
            category = "general"
        customer_id = str(task.inputs["request"]["customer_id"])
        return dataclasses.replace(
            said, outputs={"category": category, "customer_id": customer_id}, caveats=caveats
        )


class ModelWriter(ModelAgent):
    """Drafts the reply to the customer from the request and the decision taken."""

    role = "writer"
    instructions = (
        "You write a short, friendly reply to a customer, in plain text, from their request "
        "and the company's decision. Greet them by name. For a refund, state the amount "
        "refunded in EUR with two decimals (the decision's amount is in cents: 1999 is "
        '19.99 EUR). For "explain", say every charge was checked and is correct. For '
        '"answer", answer the question briefly. Output `draft` as a string.'
    )
    model = "baton-demo-writer"
