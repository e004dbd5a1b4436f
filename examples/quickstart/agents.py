"""The agent: a clerk. A model would go here; this one looks for a word in the reason."""

from actors import Agent, Context, Result, Task


class Clerk(Agent):
    role = "clerk"
    tools = ("order_total", "pay_refund")  # the allowlist it declares

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.step == "assess":
            amount = await ctx.tools.call("order_total", order_id=task.inputs["order_id"])
            kind = "damaged" if "broken" in task.inputs["reason"] else "other"
            return Result(
                outputs={"kind": kind, "amount": amount},
                rationale=f"the reason reads as {kind}",
                confidence=0.9,
            )
        if task.step == "refund":
            refund_id = await ctx.tools.call(
                "pay_refund", order_id=task.inputs["order_id"], amount=task.inputs["amount"]
            )
            return Result(outputs={"refund_id": refund_id}, rationale="paid back in full")
        return Result(
            outputs={"reply": "We refund only what arrived broken."},
            rationale=f"kind {task.inputs['kind']}: nothing to pay back",
        )
