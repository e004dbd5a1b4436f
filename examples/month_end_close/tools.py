"""The tool host: an ERP with two entities' bank statements, ledgers and books.

Statements and ledgers are fixed sample data per entity and period, chosen so
that one close meets every path of the workflow. The books (what was posted,
which periods are locked) are a SQLite file beside the host's ledger, so a
journal posted once stays posted across runs, restarts and re-submissions.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

import msgspec

from actors import ToolHost, tool

ENTITY_NAMES: Mapping[str, str] = {"de": "Acme GmbH", "uk": "Acme Ltd"}
"""The group's entities by code; a counterparty named here is intercompany."""


class BankLine(msgspec.Struct, frozen=True):
    line_id: str
    date: str
    amount: int
    """Cents in the entity's currency; negative for money out."""
    reference: str
    counterparty: str
    text: str


class LedgerEntry(msgspec.Struct, frozen=True):
    entry_id: str
    date: str
    amount: int
    """Cents in the entity's currency, at the rate of the day it was booked."""
    reference: str
    account: str
    text: str
    currency: str = ""
    """The invoice's currency when it is not the entity's: its amount moves with the rate."""


class JournalLine(msgspec.Struct, frozen=True):
    account: str
    debit: int = 0
    credit: int = 0


class Posting(msgspec.Struct, frozen=True):
    journal_id: str
    posting_id: str
    status: str
    """`posted` the first time; `already posted` when the books hold it under its key."""


class Calendar(msgspec.Struct, frozen=True):
    period: str
    start: str
    end: str
    entities: dict[str, str]


CALENDAR: Mapping[str, tuple[str, str]] = {
    "2026-10": ("2026-10-01", "2026-10-31"),
    "2026-11": ("2026-11-01", "2026-11-30"),
}

BANK: Mapping[tuple[str, str], tuple[BankLine, ...]] = {
    ("de", "2026-10"): (
        BankLine("de-b-1001", "2026-10-06", 820_000, "INV-0991", "Globex", "customer receipt"),
        BankLine("de-b-1002", "2026-10-14", -215_000, "PO-0530", "Initech", "supplier payment"),
        BankLine("de-b-1003", "2026-10-31", -3_900, "FEES-10", "Bank", "account fees October"),
    ),
    ("uk", "2026-10"): (
        BankLine("uk-b-1001", "2026-10-09", 410_000, "INV-2001", "Hooli", "customer receipt"),
        BankLine("uk-b-1002", "2026-10-20", -96_500, "PO-7711", "Vandelay", "supplier payment"),
    ),
    ("de", "2026-11"): (
        BankLine("de-b-1101", "2026-11-03", 1_250_000, "INV-1001", "Globex", "customer receipt"),
        BankLine("de-b-1102", "2026-11-05", -340_000, "PO-0552", "Initech", "supplier payment"),
        BankLine("de-b-1103", "2026-11-12", -89_000, "PAY-0077", "Payroll", "payroll November"),
        BankLine("de-b-1104", "2026-11-20", 512_300, "INV-1007", "Umbrella Inc", "USD receipt"),
        BankLine("de-b-1105", "2026-11-25", 300_000, "IC-1125", "Acme Ltd", "group funding"),
        BankLine("de-b-1106", "2026-11-28", -4_500, "FEES-11", "Bank", "account fees November"),
        BankLine("de-b-1107", "2026-11-18", -1_240, "CARD-88", "Card acquirer", "adjustment"),
    ),
    ("uk", "2026-11"): (
        BankLine("uk-b-1101", "2026-11-04", 660_000, "INV-2051", "Hooli", "customer receipt"),
        BankLine("uk-b-1102", "2026-11-25", -300_000, "IC-1125", "Acme GmbH", "group funding"),
        BankLine("uk-b-1103", "2026-11-27", -2_100, "FEES-11", "Bank", "account fees November"),
        BankLine("uk-b-1104", "2026-11-26", -2_480_000, "WIRE-8812", "Unknown", "wire out"),
    ),
}

LEDGER: Mapping[tuple[str, str], tuple[LedgerEntry, ...]] = {
    ("de", "2026-10"): (
        LedgerEntry("de-l-1001", "2026-10-06", 820_000, "INV-0991", "1200", "Globex paid"),
        LedgerEntry("de-l-1002", "2026-10-14", -215_000, "PO-0530", "3300", "Initech paid"),
        LedgerEntry("de-l-1003", "2026-10-30", -58_000, "CHQ-0311", "3300", "cheque to Hooli"),
    ),
    ("uk", "2026-10"): (
        LedgerEntry("uk-l-1001", "2026-10-09", 410_000, "INV-2001", "1200", "Hooli paid"),
        LedgerEntry("uk-l-1002", "2026-10-20", -96_500, "PO-7711", "3300", "Vandelay paid"),
    ),
    ("de", "2026-11"): (
        LedgerEntry("de-l-1101", "2026-11-03", 1_250_000, "INV-1001", "1200", "Globex paid"),
        LedgerEntry("de-l-1102", "2026-11-05", -340_000, "PO-0552", "3300", "Initech paid"),
        LedgerEntry("de-l-1103", "2026-11-06", -340_000, "PO-0552", "3300", "Initech paid"),
        LedgerEntry("de-l-1104", "2026-11-12", -89_000, "PAY-0077", "6000", "payroll"),
        LedgerEntry(
            "de-l-1105", "2026-11-02", 500_000, "INV-1007", "1200", "Umbrella", currency="USD"
        ),
        LedgerEntry("de-l-1106", "2026-11-30", -75_000, "CHQ-0318", "3300", "cheque to Hooli"),
    ),
    ("uk", "2026-11"): (
        LedgerEntry("uk-l-1101", "2026-11-04", 660_000, "INV-2051", "1200", "Hooli paid"),
        LedgerEntry("uk-l-1102", "2026-11-25", -300_000, "IC-1125", "1800", "funding to DE"),
        LedgerEntry("uk-l-1103", "2026-11-29", 45_000, "INV-2064", "1200", "deposit"),
    ),
}


class PeriodUnknown(Exception):
    """The ERP has no calendar for the period asked."""


class Erp(ToolHost):
    """Reads statements and ledgers; posts journals at most once per entity, period and id."""

    name = "erp"

    def __init__(self) -> None:
        folder = Path(os.environ.get("BATON_LEDGERS") or ".baton/ledgers")
        self.books = folder / "erp-books.sqlite"
        """The general ledger's postings and locks; `BATON_LEDGERS` puts it with the host's
        own ledger, so a process group's books are its own."""

    async def setup(self) -> None:
        self.books.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._open()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS postings (key TEXT PRIMARY KEY, entity TEXT, "
                "period TEXT, journal_id TEXT, lines TEXT, memo TEXT, posting_id TEXT)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS locks (period TEXT PRIMARY KEY, note TEXT)")

    def _open(self) -> sqlite3.Connection:
        return sqlite3.connect(self.books, timeout=10)

    @tool(read_only=True)
    def period_calendar(self, period: str) -> Calendar:
        """The first and last day of an accounting period (YYYY-MM), and the group's entities."""
        if period not in CALENDAR:
            raise PeriodUnknown(f"no calendar for period {period!r}")
        start, end = CALENDAR[period]
        return Calendar(period, start, end, dict(ENTITY_NAMES))

    @tool(read_only=True)
    def bank_statement(self, entity: str, period: str) -> tuple[BankLine, ...]:
        """The entity's bank statement lines booked by the bank in the period."""
        return BANK.get((entity, period), ())

    @tool(read_only=True)
    def ledger_entries(self, entity: str, period: str) -> tuple[LedgerEntry, ...]:
        """The entity's cash-account ledger entries of the period."""
        return LEDGER.get((entity, period), ())

    @tool
    def post_journal(
        self, entity: str, period: str, journal_id: str, lines: list[JournalLine], memo: str
    ) -> Posting:
        """Post an adjusting journal; a journal already posted under (entity, period, id) is
        not posted again, and its first posting is returned."""
        key = f"{entity}:{period}:{journal_id}"
        posting_id = "gl-" + key.replace(":", "-")
        with closing(self._open()) as db, db:
            # The primary key makes the check and the insert one step, however many ask at once.
            inserted = db.execute(
                "INSERT INTO postings VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    key,
                    entity,
                    period,
                    journal_id,
                    msgspec.json.encode(lines).decode(),
                    memo,
                    posting_id,
                ),
            ).rowcount
        return Posting(journal_id, posting_id, "posted" if inserted else "already posted")

    @tool
    def lock_period(self, period: str, note: str) -> str:
        """Lock the period for posting in every entity; locking it again changes nothing."""
        with closing(self._open()) as db, db:
            db.execute("INSERT INTO locks VALUES (?, ?) ON CONFLICT DO NOTHING", (period, note))
        return f"locked {period}"
