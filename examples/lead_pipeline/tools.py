"""The tool host: a CRM, two enrichment sources and a mail gateway that limits its rate.

The CRM's contacts and the sources' answers are fixed sample data, chosen so
that a handful of leads meets every path of the workflow: one is a duplicate,
one domain the intent source cannot answer for, one is a poor fit. What the
host does (emails sent, with the time each left; follow-ups; the nurture list)
is kept in a SQLite outbox beside its ledger, the gateway's own record.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path

import msgspec

from actors import ToolHost, tool

SENDS_PER_SECOND = 2
"""The mail gateway's limit: at most this many emails leave in any one second."""
FOLLOW_UP_DAYS = 3
"""A follow-up falls due this many days after the lead came in."""


class Firmographics(msgspec.Struct, frozen=True):
    company: str
    employees: int
    industry: str
    country: str


class Signals(msgspec.Struct, frozen=True):
    pricing_visits: int
    """Visits to the pricing page in the last 30 days."""
    hiring_sales: bool


CONTACTS: Mapping[str, str] = {
    "alan@initech.example": "crm-0017",
    "margaret@hooli.example": "crm-0042",
}
"""The CRM's contacts by email: a lead with one of these is a duplicate."""

PROFILES: Mapping[str, Firmographics] = {
    "northwind.example": Firmographics("Northwind", 850, "logistics", "DE"),
    "contoso.example": Firmographics("Contoso", 500, "software", "US"),
    "globex.example": Firmographics("Globex", 220, "finance", "UK"),
    "tinyco.example": Firmographics("TinyCo", 12, "retail", "FR"),
    "initech.example": Firmographics("Initech", 300, "software", "US"),
}

SIGNALS: Mapping[str, Signals] = {
    "northwind.example": Signals(pricing_visits=5, hiring_sales=True),
    "globex.example": Signals(pricing_visits=4, hiring_sales=False),
    "tinyco.example": Signals(pricing_visits=0, hiring_sales=False),
    "initech.example": Signals(pricing_visits=1, hiring_sales=False),
}
"""What the intent source knows; it fails for any other domain."""


class SourceUnavailable(Exception):
    """An enrichment source could not answer for this company."""


class RateLimited(Exception):
    """The mail gateway refused a send over its rate; the same send succeeds a moment later."""


class Crm(ToolHost):
    """The sales desk's systems, as one host."""

    name = "crm"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        folder = Path(os.environ.get("BATON_LEDGERS") or ".baton/ledgers")
        self.outbox = folder / "crm-outbox.sqlite"
        """What the host did; `BATON_LEDGERS` puts it with the host's own ledger."""
        self._clock = clock
        self._sent: deque[float] = deque(maxlen=SENDS_PER_SECOND)
        """When the last sends left, on `clock`: bounded by the limit, as that is all it needs."""
        self._gate = threading.Lock()
        """Tools run in worker threads: the check and the send must be one step."""

    async def setup(self) -> None:
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._open()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS sent "
                "(message_id TEXT, recipient TEXT, subject TEXT, sent_at REAL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS follow_ups (task_id TEXT, email TEXT, due TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS nurture (email TEXT, reason TEXT)")

    def _open(self) -> sqlite3.Connection:
        return sqlite3.connect(self.outbox, timeout=10)

    @tool(read_only=True)
    def crm_lookup(self, email: str) -> str:
        """The CRM's contact id for this email address, or "" when it is not a contact."""
        return CONTACTS.get(email, "")

    @tool(read_only=True)
    def company_profile(self, domain: str) -> Firmographics:
        """Firmographics of the company behind an email domain."""
        if domain not in PROFILES:
            raise SourceUnavailable(f"no company profile for {domain}")
        return PROFILES[domain]

    @tool(read_only=True)
    def intent_signals(self, domain: str) -> Signals:
        """Buying signals of the company behind an email domain, from a second source."""
        if domain not in SIGNALS:
            raise SourceUnavailable(f"the intent source has no coverage of {domain}")
        return SIGNALS[domain]

    @tool
    def send_email(self, to: str, subject: str, body: str) -> str:
        """Send an email; refused as rate limited over the gateway's sends per second."""
        message_id = "msg-" + hashlib.sha256(f"{to}:{subject}:{body}".encode()).hexdigest()[:12]
        with self._gate:
            now = self._clock()
            if len(self._sent) == SENDS_PER_SECOND and now - self._sent[0] < 1.0:
                raise RateLimited(
                    f"rate limited: at most {SENDS_PER_SECOND} sends a second; "
                    f"free again in {1.0 - (now - self._sent[0]):.2f}s"
                )
            self._sent.append(now)
            with closing(self._open()) as db, db:
                db.execute(
                    "INSERT INTO sent VALUES (?, ?, ?, ?)", (message_id, to, subject, time.time())
                )
        return message_id

    @tool
    def add_to_nurture(self, email: str, reason: str) -> str:
        """Put a contact on the nurture list; the list's entry id."""
        with closing(self._open()) as db, db:
            db.execute("INSERT INTO nurture VALUES (?, ?)", (email, reason))
        return f"nurture-{email}"

    @tool
    def schedule_follow_up(self, email: str, received: str, note: str) -> dict[str, str]:
        """Schedule a follow-up task for the owner of a lead, due a few days after it came in."""
        due = (
            datetime.date.fromisoformat(received) + datetime.timedelta(FOLLOW_UP_DAYS)
        ).isoformat()
        task_id = f"task-{email}-{due}"
        with closing(self._open()) as db, db:
            db.execute("INSERT INTO follow_ups VALUES (?, ?, ?)", (task_id, email, due))
        return {"task_id": task_id, "due": due, "note": note}
