"""The reconciler and the analyst as models: what `baton demo month_end_close` runs for
those roles when a model endpoint is configured (`BATON_MODEL_URL`, the `models` extra).

The rules go first and the model sees only what they left, as the close asks:
the reconciler's model is asked about the items the rules could not explain, and
none is asked when there are none. It may class an item as timing, FX, accrual or
intercompany; the item's amount stays the books', and anything else it says
leaves the item unexplained, so that materiality still stops the close for the
controller. The analyst's model writes the narrative's words around figures the
rules worked out, and the close's `variance` is those figures, not the model's.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from actors import Context, Result, Task
from actors.models import ModelAgent
from examples.month_end_close.agents import (
    TREATMENTS,
    entity_of,
    explained,
    recorded_variance,
    triage,
    variance,
)

KINDS = ("timing", "fx", "accrual", "intercompany")
"""What the model may class an item the rules left as; each has a journal the preparer
knows how to draft, or (timing) needs none."""


class ModelReconciler(ModelAgent):
    """Explains the items the rules could not, one kind per item, or leaves them unexplained."""

    role = "reconciler"
    instructions = (
        "You are a reconciliation accountant closing the month. The inputs list the bank "
        "lines and ledger entries that no rule explained, each by its `reference`. For each, "
        f"say which kind it is: one of {', '.join(KINDS)}, or unexplained when the item's "
        "text gives no evidence for any. Output `kinds` as an object from reference to kind, "
        "and say in the rationale what each kind rests on."
    )
    model = "baton-demo-reconciler"

    async def handle(self, task: Task, ctx: Context) -> Result:
        entity = entity_of(task)
        items = triage(task.inputs[f"matches_{entity}"], task.inputs["calendar"])
        left = [item for item in items if item["kind"] == "unexplained"]
        if not left:
            return explained(entity, items)
        asked = dataclasses.replace(
            task,
            inputs=MappingProxyType({"period_end": task.inputs["calendar"]["end"], "left": left}),
            outputs=MappingProxyType({"kinds": "dict"}),
        )
        said = await super().handle(asked, ctx)
        kinds: dict[str, Any] = dict(said.outputs["kinds"])
        caveats = list(said.caveats)
        for item in left:
            kind = str(kinds.get(item["reference"], "unexplained")).strip().lower()
            if kind in KINDS:
                item["kind"] = kind
                item["treatment"] = TREATMENTS[kind]
                caveats.append(f"{item['reference']} classed as {kind} by the model")
            elif kind != "unexplained":
                caveats.append(f"{item['reference']}: the model said {kind!r}; left unexplained")
        result = explained(entity, items, caveats=caveats)
        rationale = f"{result.rationale}; the model: {said.rationale}".strip("; ")
        return dataclasses.replace(
            result, rationale=rationale, confidence=min(result.confidence, said.confidence)
        )


class ModelAnalyst(ModelAgent):
    """Writes the variance narrative around the figures the rules worked out."""

    role = "analyst"
    instructions = (
        "You are the group's financial controller writing the month-end variance narrative "
        "for the board. The inputs give, per entity, the bank and ledger totals in cents, "
        "their difference, what explains it by kind, whether it ties out, and the journals "
        "posted. Write a few plain sentences per entity, amounts in currency units with two "
        "decimals, naming anything unexplained. Output `narrative` as a string."
    )
    model = "baton-demo-analyst"

    async def handle(self, task: Task, ctx: Context) -> Result:
        figures = variance(task.inputs)
        asked = dataclasses.replace(
            task,
            inputs=MappingProxyType({"period": task.inputs["period"], "entities": figures}),
            outputs=MappingProxyType({"narrative": "str"}),
        )
        said = await super().handle(asked, ctx)
        return dataclasses.replace(
            said, outputs={**said.outputs, "variance": recorded_variance(figures)}
        )
