"""Deterministic agents for the lead pipeline: no model needed.

One class per role, each holding all of its role's logic, so that a role can
be served by a model-backed agent instead without touching the others: same
role, same tools, same shape of outputs, with the rationale, confidence and
caveats a model would give. The scorer and the writer are the roles a model
would take first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors import Agent, Context, Result, Task

FIT_INDUSTRIES = ("software", "logistics", "finance")
SENIOR_WORDS = ("head", "director", "vp", "chief")
OWNERS: Mapping[str, str] = {"DE": "Jonas", "UK": "Priya", "US": "Sam"}
"""The account executive who signs outreach, by the company's country."""


class Intake(Agent):
    """Reads a lead as it came in (a form, a list) into a contact; drops a known one."""

    role = "intake"

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.step == "drop":
            contact = task.inputs["contact"]
            known = task.inputs["known_as"]
            return Result(
                outputs={"dropped": f"{contact['email']} is contact {known} already"},
                rationale="a duplicate: the CRM's contact stands",
            )
        lead: dict[str, Any] = task.inputs["lead"]
        email = str(lead["email"]).strip().lower()
        contact = {
            "name": str(lead.get("name", "")).strip(),
            "email": email,
            "domain": email.rpartition("@")[2],
            "title": str(lead.get("title", "")),
            "received": str(lead["received"]),
            "source": str(lead.get("source", "")),
        }
        return Result(outputs={"contact": contact}, rationale=f"from {contact['source']}")


class CrmClerk(Agent):
    """Keeps the CRM: finds duplicates, nurtures, schedules follow-ups."""

    role = "crm"
    tools = ("crm_lookup", "add_to_nurture", "schedule_follow_up")

    async def handle(self, task: Task, ctx: Context) -> Result:
        contact = task.inputs["contact"]
        if task.step == "nurture":
            score = task.inputs["score"]
            entry = await ctx.tools.call(
                "add_to_nurture", email=contact["email"], reason=f"{score['points']} points"
            )
            return Result(outputs={"nurtured": entry}, rationale="under the bar: nurture")
        if task.step == "follow_up":
            scheduled = await ctx.tools.call(
                "schedule_follow_up",
                email=contact["email"],
                received=contact["received"],
                note=f"reply to {task.inputs['message_id']}?",
            )
            return Result(outputs={"follow_up": scheduled}, rationale=f"due {scheduled['due']}")
        known = await ctx.tools.call("crm_lookup", email=contact["email"])
        return Result(
            outputs={"known_as": known},
            rationale=f"contact {known} has this email" if known else "not in the CRM",
        )


class Researcher(Agent):
    """Asks one enrichment source per step: firmographics, or buying signals."""

    role = "researcher"
    tools = ("company_profile", "intent_signals")

    async def handle(self, task: Task, ctx: Context) -> Result:
        domain = task.inputs["contact"]["domain"]
        if task.step == "enrich_intent":
            signals = await ctx.tools.call("intent_signals", domain=domain)
            return Result(outputs={"signals": signals}, rationale=f"intent source on {domain}")
        profile = await ctx.tools.call("company_profile", domain=domain)
        return Result(outputs={"firmographics": profile}, rationale=f"profile of {domain}")


class Scorer(Agent):
    """Scores a lead out of 100, each criterion with its points and the evidence for them.

    A criterion without evidence scores nothing, and says so: when the intent source
    gave nothing, the score is `low` evidence and carries a caveat.
    """

    role = "scorer"

    async def handle(self, task: Task, ctx: Context) -> Result:
        contact = task.inputs["contact"]
        firm: dict[str, Any] = task.inputs["firmographics"]
        signals: dict[str, Any] = task.inputs["signals"]
        title = contact["title"].lower()
        criteria = [
            _criterion(
                "size",
                30 if firm["employees"] >= 200 else 15 if firm["employees"] >= 50 else 0,
                30,
                f"{firm['employees']} employees",
            ),
            _criterion(
                "industry", 20 if firm["industry"] in FIT_INDUSTRIES else 0, 20, firm["industry"]
            ),
            _criterion(
                "seniority",
                20 if any(w in title for w in SENIOR_WORDS) else 0,
                20,
                contact["title"] or "no title given",
            ),
        ]
        caveats = []
        if signals:
            points = (20 if signals["pricing_visits"] >= 3 else 0) + (
                10 if signals["hiring_sales"] else 0
            )
            evidence = f"{signals['pricing_visits']} pricing visits, hiring sales: " + (
                "yes" if signals["hiring_sales"] else "no"
            )
            criteria.append(_criterion("intent", points, 30, evidence))
        else:
            criteria.append(_criterion("intent", 0, 30, "no intent data"))
            caveats.append("score without intent signals: low evidence")
        total = sum(c["points"] for c in criteria)
        low = bool(caveats)
        return Result(
            outputs={
                "score": {
                    "points": total,
                    "evidence": "low" if low else "full",
                    "criteria": criteria,
                }
            },
            rationale="; ".join(f"{c['criterion']} {c['points']}/{c['max']}" for c in criteria),
            confidence=0.5 if low else 0.85,
            caveats=caveats,
        )


def _criterion(name: str, points: int, most: int, evidence: str) -> dict[str, Any]:
    return {"criterion": name, "points": points, "max": most, "evidence": evidence}


class Writer(Agent):
    """Drafts the first email, from what the score found, signed by the region's owner."""

    role = "writer"

    async def handle(self, task: Task, ctx: Context) -> Result:
        contact = task.inputs["contact"]
        firm = task.inputs["firmographics"]
        score = task.inputs["score"]
        owner = OWNERS.get(firm["country"], "the sales team")
        first = contact["name"].split()[0] if contact["name"] else "there"
        body = (
            f"Hello {first}, thank you for your interest in Baton. Teams in {firm['industry']} "
            f"the size of {firm['company']} use it to run their agents' workflows with a "
            f"person in the loop where it matters. Shall we talk next week? {owner}"
        )
        caveats = ["written without intent signals"] if score["evidence"] == "low" else []
        return Result(
            outputs={"draft": {"subject": f"{firm['company']} and Baton", "body": body}},
            rationale=f"{score['points']} points: outreach signed by {owner}",
            confidence=0.8,
            caveats=caveats,
        )


class Sender(Agent):
    """Sends the approved email through the rate-limited gateway."""

    role = "sender"
    tools = ("send_email",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        contact = task.inputs["contact"]
        draft = task.inputs["draft"]
        message_id = await ctx.tools.call(
            "send_email", to=contact["email"], subject=draft["subject"], body=draft["body"]
        )
        return Result(outputs={"message_id": message_id}, rationale="sent", confidence=1.0)
