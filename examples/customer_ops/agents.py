"""Deterministic agents for the customer-operations workflow: no model needed.

Each stands in for an LLM-backed agent: same role, same tools, same shape of
outputs, with rationale, confidence and caveats a model would give.
"""

from __future__ import annotations

from typing import Any

from actors import Agent, Context, Result, Task

BILLING_WORDS = ("charge", "charged", "invoice", "refund", "bill", "payment", "twice")


class Classifier(Agent):
    role = "classifier"

    async def handle(self, task: Task, ctx: Context) -> Result:
        request = task.inputs["request"]
        text = str(request.get("text", "")).lower()
        hits = [w for w in BILLING_WORDS if w in text]
        category = "billing" if hits else "general"
        return Result(
            outputs={"category": category, "customer_id": str(request["customer_id"])},
            rationale=f"matched {', '.join(hits)}" if hits else "no billing words",
            confidence=0.95 if hits else 0.7,
        )


class BillingAgent(Agent):
    role = "billing"
    tools = ("lookup_invoices",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        invoices = await ctx.tools.call("lookup_invoices", customer_id=task.inputs["customer_id"])
        return Result(
            outputs={"invoices": invoices},
            rationale=f"{len(invoices)} invoice(s) on file",
            confidence=1.0,
        )


class HistoryAgent(Agent):
    role = "history"
    tools = ("account_history",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        events = await ctx.tools.call("account_history", customer_id=task.inputs["customer_id"])
        return Result(
            outputs={"history": events},
            rationale=f"{len(events)} account event(s)",
            confidence=0.9,
        )


class PolicyAgent(Agent):
    role = "policy"

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.step == "general_answer":
            return Result(
                outputs={"decision": {"action": "answer", "amount": 0}},
                rationale="not a billing matter: answer from the help centre",
                confidence=0.8,
            )
        invoices: list[dict[str, Any]] = task.inputs["invoices"]
        history: list[dict[str, Any]] = task.inputs["history"]
        duplicates = _duplicate_charges(invoices)
        caveats: list[str] = []
        if not history:
            caveats.append("no account history was available")
        if duplicates:
            amount = sum(i["amount"] for i in duplicates)
            return Result(
                outputs={"decision": {"action": "refund", "amount": amount}},
                rationale=f"{len(duplicates)} duplicate charge(s) found",
                confidence=0.9 if history else 0.6,
                caveats=caveats,
            )
        return Result(
            outputs={"decision": {"action": "explain", "amount": 0}},
            rationale="charges are correct",
            confidence=0.85,
            caveats=caveats,
        )


def _duplicate_charges(invoices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[str, int]] = set()
    duplicates = []
    for invoice in invoices:
        mark = (invoice["date"], invoice["amount"])
        if mark in seen:
            duplicates.append(invoice)
        seen.add(mark)
    return duplicates


class Writer(Agent):
    role = "writer"

    async def handle(self, task: Task, ctx: Context) -> Result:
        decision = task.inputs["decision"]
        name = task.inputs["request"].get("name", "there")
        match decision["action"]:
            case "refund":
                refund = decision["amount"] / 100
                body = f"we have refunded {refund:.2f} EUR for the duplicate charge."
            case "explain":
                body = "we checked your invoices and every charge is correct."
            case _:
                body = "here is how to do that: see the help centre."
        caveats = [f for flags in task.flags.values() for f in flags]
        return Result(
            outputs={"draft": f"Hello {name}, {body}"},
            rationale=f"template for {decision['action']}",
            confidence=0.9,
            caveats=sorted(set(caveats)),
        )


class Checker(Agent):
    role = "checker"

    async def handle(self, task: Task, ctx: Context) -> Result:
        draft = str(task.inputs["draft"])
        decision = task.inputs["decision"]
        ok = decision["action"] != "refund" or f"{decision['amount'] / 100:.2f}" in draft
        return Result(
            outputs={"check_ok": ok},
            rationale="amount matches the decision" if ok else "amount missing from draft",
            confidence=0.95,
        )


class Sender(Agent):
    role = "sender"
    tools = ("send_email",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        message_id = await ctx.tools.call(
            "send_email", customer_id=task.inputs["customer_id"], body=task.inputs["draft"]
        )
        return Result(outputs={"message_id": message_id}, rationale="sent", confidence=1.0)
