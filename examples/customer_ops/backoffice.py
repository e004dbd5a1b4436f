"""A tool host with an in-memory CRM and billing system."""

from __future__ import annotations

import hashlib

import msgspec

from actors import ToolHost, tool


class Invoice(msgspec.Struct, frozen=True):
    invoice_id: str
    date: str
    amount: int
    """Cents."""


class AccountEvent(msgspec.Struct, frozen=True):
    date: str
    event: str


INVOICES: dict[str, list[Invoice]] = {
    "c-100": [
        Invoice("inv-1", "2026-10-01", 1999),
        Invoice("inv-2", "2026-10-01", 1999),
    ],
    "c-200": [Invoice("inv-3", "2026-10-03", 4900)],
    "c-404": [Invoice("inv-4", "2026-10-07", 1250), Invoice("inv-5", "2026-10-07", 1250)],
}

HISTORY: dict[str, list[AccountEvent]] = {
    "c-100": [AccountEvent("2024-02-11", "signed up"), AccountEvent("2026-09-30", "upgraded")],
    "c-200": [AccountEvent("2025-05-02", "signed up")],
}


class AccountHistoryUnavailable(Exception):
    """The CRM has no readable history for this customer."""


class Backoffice(ToolHost):
    name = "backoffice"

    @tool(read_only=True)
    def lookup_invoices(self, customer_id: str) -> list[Invoice]:
        """Invoices of a customer, oldest first."""
        return INVOICES.get(customer_id, [])

    @tool(read_only=True)
    def account_history(self, customer_id: str) -> list[AccountEvent]:
        """Account events of a customer, oldest first."""
        if customer_id not in HISTORY:
            raise AccountHistoryUnavailable(f"CRM record of {customer_id} cannot be read")
        return HISTORY[customer_id]

    @tool
    def send_email(self, customer_id: str, body: str) -> str:
        """Send an email to the customer; returns the message id."""
        return "msg-" + hashlib.sha256(f"{customer_id}:{body}".encode()).hexdigest()[:12]
