"""Deterministic agents for the month-end close: no model needed.

One class per role, each holding all of its role's logic, so that a role can
be served by a model-backed agent instead without touching the others: same
role, same tools, same shape of outputs, with the rationale, confidence and
caveats a model would give. The matcher stays rules by design; the reconciler
is the role a model would take first, as it judges what the rules left.

Amounts are cents. An item's `effect` is what it adds to (bank - ledger), so the
effects of an entity's items add up to its whole difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from actors import Agent, Context, Result, Task
from examples.month_end_close.workflow import MATERIALITY

TIMING_DAYS = 2
"""A ledger entry this close to the period's end with no bank line yet clears after cut-off."""
CASH = "1000"
COUNTER_ACCOUNTS: Mapping[str, str] = {"fx": "7100", "accrual": "6850", "intercompany": "1800"}
"""Where each kind of adjustment books its other side; a duplicate reverses its own account."""
TREATMENTS: Mapping[str, str] = {
    "timing": "none: clears after the cut-off",
    "duplicate": "reverse the duplicate ledger entry",
    "fx": "book the exchange difference",
    "accrual": "book the bank's charges of the period",
    "intercompany": "book against the intercompany account",
    "unexplained": "carried as a reconciling item",
}


def entity_of(task: Task) -> str:
    """The entity a step serves: its name ends with the entity's code (`post_de`)."""
    return task.step.rsplit("_", 1)[-1]


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


class Closer(Agent):
    """Opens the close (the period's calendar) and, once signed off, locks the period."""

    role = "closer"
    tools = ("period_calendar", "lock_period")

    async def handle(self, task: Task, ctx: Context) -> Result:
        period = str(task.inputs["period"])
        if task.step == "lock_period":
            locked = await ctx.tools.call(
                "lock_period", period=period, note=str(task.inputs["narrative"]).splitlines()[0]
            )
            return Result(outputs={"locked": locked}, rationale="signed off: period locked")
        calendar = await ctx.tools.call("period_calendar", period=period)
        return Result(
            outputs={"calendar": calendar},
            rationale=f"period {period} runs {calendar['start']} to {calendar['end']}",
        )


class Bookkeeper(Agent):
    """Reads an entity's bank statement and cash ledger for the period."""

    role = "bookkeeper"
    tools = ("bank_statement", "ledger_entries")

    async def handle(self, task: Task, ctx: Context) -> Result:
        entity, period = entity_of(task), str(task.inputs["period"])
        bank = await ctx.tools.call("bank_statement", entity=entity, period=period)
        ledger = await ctx.tools.call("ledger_entries", entity=entity, period=period)
        return Result(
            outputs={f"bank_{entity}": bank, f"ledger_{entity}": ledger},
            rationale=f"{len(bank)} bank line(s), {len(ledger)} ledger entr(ies)",
        )


class DoesNotTieOut(Exception):
    """The items found leave part of an entity's difference unexplained."""


class RuleMatcher(Agent):
    """Pairs a bank line with a ledger entry of the same reference and amount, and ties the
    reconciliation out once it is triaged; judges nothing."""

    role = "matcher"

    async def handle(self, task: Task, ctx: Context) -> Result:
        entity = entity_of(task)
        if task.step.startswith("tie_out_"):
            return _tie_out(entity, task.inputs[f"matches_{entity}"],
                            task.inputs[f"exceptions_{entity}"])  # fmt: skip
        bank: list[dict[str, Any]] = list(task.inputs[f"bank_{entity}"])
        ledger: list[dict[str, Any]] = list(task.inputs[f"ledger_{entity}"])
        pairs = []
        left_ledger = list(ledger)
        left_bank = []
        for line in bank:
            found = next(
                (
                    e
                    for e in left_ledger
                    if (e["reference"], e["amount"]) == (line["reference"], line["amount"])
                ),
                None,
            )
            if found is None:
                left_bank.append(line)
                continue
            left_ledger.remove(found)
            pairs.append(
                {
                    "bank": line["line_id"],
                    "ledger": found["entry_id"],
                    "reference": line["reference"],
                    "amount": line["amount"],
                }
            )
        matches = {
            "pairs": pairs,
            "bank": left_bank,
            "ledger": left_ledger,
            "bank_total": sum(line["amount"] for line in bank),
            "ledger_total": sum(entry["amount"] for entry in ledger),
        }
        return Result(
            outputs={f"matches_{entity}": matches},
            rationale=f"{len(pairs)} matched by reference and amount; "
            f"{len(left_bank)} bank line(s) and {len(left_ledger)} ledger entr(ies) left",
        )


def _tie_out(entity: str, matches: dict[str, Any], exceptions: dict[str, Any]) -> Result:
    """The difference is explained when the items other than `unexplained` add up to it;
    raising lets the step's failure policy say how the close goes on without."""
    difference = matches["bank_total"] - matches["ledger_total"]
    explained = sum(i["effect"] for i in exceptions["items"] if i["kind"] != "unexplained")
    if explained != difference:
        raise DoesNotTieOut(
            f"entity {entity}: items explain {_money(explained)} of a difference of "
            f"{_money(difference)}; {_money(difference - explained)} unexplained"
        )
    return Result(
        outputs={f"tied_{entity}": {"ties_out": True}},
        rationale=f"items explain the whole difference of {_money(difference)}",
    )


class Reconciler(Agent):
    """Explains what the rules left, item by item, as timing, duplicate, FX, accrual,
    intercompany, or unexplained; an unexplained total under materiality becomes a caveat."""

    role = "reconciler"

    async def handle(self, task: Task, ctx: Context) -> Result:
        entity = entity_of(task)
        items = triage(task.inputs[f"matches_{entity}"], task.inputs["calendar"])
        return explained(entity, items)


def explained(entity: str, items: list[dict[str, Any]], *, caveats: Sequence[str] = ()) -> Result:
    """The triage step's result from an entity's items, each with its kind and effect."""
    unexplained = sum(abs(i["effect"]) for i in items if i["kind"] == "unexplained")
    by_kind: dict[str, int] = {}
    for item in items:
        by_kind[item["kind"]] = by_kind.get(item["kind"], 0) + item["effect"]
    noted = list(caveats)
    if 0 < unexplained <= MATERIALITY:
        noted.append(
            f"entity {entity}: {_money(unexplained)} unexplained, under materiality: "
            "carried as a reconciling item"
        )
    return Result(
        outputs={
            f"exceptions_{entity}": {"items": items, "by_kind": by_kind, "unexplained": unexplained}
        },
        rationale=", ".join(f"{kind} {_money(v)}" for kind, v in by_kind.items())
        or "nothing left to explain",
        confidence=0.9 if unexplained == 0 else 0.7,
        caveats=noted,
    )


def triage(matches: dict[str, Any], calendar: dict[str, Any]) -> list[dict[str, Any]]:
    """What the rules left of an entity's lines, item by item, each of the kind the rules
    can tell, else unexplained."""
    bank: list[dict[str, Any]] = list(matches["bank"])
    ledger: list[dict[str, Any]] = list(matches["ledger"])
    matched = {(p["reference"], p["amount"]) for p in matches["pairs"]}
    group = set(calendar["entities"].values())
    items: list[dict[str, Any]] = []

    def item(kind: str, reference: str, effect: int, detail: str, **source: Any) -> None:
        items.append(
            {
                "kind": kind,
                "reference": reference,
                "effect": effect,
                "detail": detail,
                "treatment": TREATMENTS[kind],
                **source,
            }
        )

    for entry in list(ledger):
        if (entry["reference"], entry["amount"]) in matched:
            ledger.remove(entry)
            item(
                "duplicate",
                entry["reference"],
                -entry["amount"],
                f"{entry['entry_id']} repeats a matched entry",
                account=entry["account"],
            )
        elif entry["currency"]:
            line = next((b for b in bank if b["reference"] == entry["reference"]), None)
            if line is not None:
                ledger.remove(entry)
                bank.remove(line)
                item(
                    "fx",
                    entry["reference"],
                    line["amount"] - entry["amount"],
                    f"{entry['currency']} invoice settled at another rate",
                )
    for entry in list(ledger):
        if _days_before(entry["date"], calendar["end"]) <= TIMING_DAYS:
            ledger.remove(entry)
            item(
                "timing",
                entry["reference"],
                -entry["amount"],
                f"booked {entry['date']}, not yet through the bank",
            )
    for line in list(bank):
        if line["counterparty"] in group:
            kind = "intercompany"
        elif "fees" in line["text"].lower():
            kind = "accrual"
        else:
            continue
        bank.remove(line)
        item(kind, line["reference"], line["amount"], f"{line['text']} ({line['counterparty']})")
    for line in bank:
        item("unexplained", line["reference"], line["amount"], f"bank: {line['text']}")
    for entry in ledger:
        item("unexplained", entry["reference"], -entry["amount"], f"ledger: {entry['text']}")
    return items


def _days_before(date: str, end: str) -> int:
    """Days from `date` to `end`, both ISO dates of one month."""
    return int(end[-2:]) - int(date[-2:])


class Preparer(Agent):
    """The maker: drafts one adjusting journal per exception that needs one."""

    role = "preparer"

    async def handle(self, task: Task, ctx: Context) -> Result:
        entity = entity_of(task)
        exceptions: dict[str, Any] = task.inputs[f"exceptions_{entity}"]
        entries = []
        for item in exceptions["items"]:
            kind = item["kind"]
            if kind in ("timing", "unexplained"):
                continue
            counter = item.get("account") or COUNTER_ACCOUNTS[kind]
            entries.append(
                {
                    "journal_id": f"{kind}-{item['reference']}",
                    "memo": f"{kind}: {item['detail']}",
                    "lines": _lines(item["effect"], counter),
                    "amount": abs(item["effect"]),
                }
            )
        total = sum(e["amount"] for e in entries)
        return Result(
            outputs={f"journals_{entity}": {"entries": entries, "total": total}},
            rationale=f"{len(entries)} journal(s) for {_money(total)}",
            confidence=0.9,
        )


def _lines(effect: int, counter: str) -> list[dict[str, Any]]:
    """Cash moves by `effect` in the books; the other side goes to `counter`."""
    if effect >= 0:
        return [{"account": CASH, "debit": effect}, {"account": counter, "credit": effect}]
    return [{"account": counter, "debit": -effect}, {"account": CASH, "credit": -effect}]


class Poster(Agent):
    """Posts each journal under its id; the ERP posts a journal once per entity and period."""

    role = "poster"
    tools = ("post_journal",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        entity, period = entity_of(task), str(task.inputs["period"])
        journals: dict[str, Any] = task.inputs[f"journals_{entity}"]
        postings = [
            await ctx.tools.call(
                "post_journal",
                entity=entity,
                period=period,
                journal_id=entry["journal_id"],
                lines=entry["lines"],
                memo=entry["memo"],
            )
            for entry in journals["entries"]
        ]
        new = sum(1 for p in postings if p["status"] == "posted")
        return Result(
            outputs={
                f"posted_{entity}": {
                    "postings": postings,
                    "posted": new,
                    "already": len(postings) - new,
                    "total": journals["total"],
                }
            },
            rationale=f"{new} posted, {len(postings) - new} found posted already",
        )


class Analyst(Agent):
    """Writes the variance narrative: each entity's bank-to-ledger difference, explained."""

    role = "analyst"

    async def handle(self, task: Task, ctx: Context) -> Result:
        period = str(task.inputs["period"])
        figures = variance(task.inputs)
        lines = [f"Close of {period}: {len(figures)} entities reconciled."]
        for entity, found in figures.items():
            ties = "ties out" if found["ties_out"] else "does not tie out"
            explained = ", ".join(f"{k} {_money(v)}" for k, v in sorted(found["by_kind"].items()))
            lines.append(
                f"{entity} {ties}: bank {_money(found['bank'])} against ledger "
                f"{_money(found['ledger'])}, a difference of {_money(found['difference'])}: "
                f"{explained or 'none'}; {found['posted']} journal(s) posted "
                f"({_money(found['posted_total'])}), {found['already']} found posted already."
            )
        return Result(
            outputs={
                "narrative": "\n".join(lines),
                "variance": recorded_variance(figures),
            },
            rationale="every difference traced to its items",
            confidence=0.9,
        )


VARIANCE_KEYS = ("difference", "by_kind", "unexplained")
"""What the close's `variance` keeps of each entity's figures."""


def recorded_variance(figures: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The close's `variance` output: of each entity's figures, those `VARIANCE_KEYS` name."""
    return {entity: {k: found[k] for k in VARIANCE_KEYS} for entity, found in figures.items()}


def variance(inputs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each entity's figures for the narrative, by entity: its totals, its difference and
    what explains it, whether it ties out, and what was posted."""
    entities = sorted(k.removeprefix("matches_") for k in inputs if k.startswith("matches_"))
    figures: dict[str, dict[str, Any]] = {}
    for entity in entities:
        matches = inputs[f"matches_{entity}"]
        exceptions = inputs[f"exceptions_{entity}"]
        posted = inputs[f"posted_{entity}"]
        figures[entity] = {
            "bank": matches["bank_total"],
            "ledger": matches["ledger_total"],
            "difference": matches["bank_total"] - matches["ledger_total"],
            "by_kind": dict(exceptions["by_kind"]),
            "unexplained": exceptions["unexplained"],
            "ties_out": bool(inputs[f"tied_{entity}"]["ties_out"]),
            "posted": posted["posted"],
            "posted_total": posted["total"],
            "already": posted["already"],
        }
    return figures
