"""The runs list's filters, read from the URL so that a filtered view can be shared or kept.

`since` and `until` take a moment (2026-12-01 or 2026-12-01T09:30, UTC) or an age
(30m, 12h, 7d: that long ago); `key` and `value` match a key of the run's data.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import get_args
from urllib.parse import urlencode

import msgspec
from starlette.datastructures import QueryParams

from protocols import Name, RunStatus
from runtime.client._inputs import AGE_UNITS, InputInvalid, age_seconds

MAX_PAGE = 1_000_000


class FilterInvalid(InputInvalid):
    """A filter the page cannot apply, and what it should look like."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name


@dataclass(frozen=True, slots=True)
class RunFilters:
    status: RunStatus | None = None
    workflow: str | None = None
    since: str = ""
    until: str = ""
    key: str | None = None
    value: str | None = None
    page: int = 1

    @classmethod
    def parse(cls, params: QueryParams) -> RunFilters:
        """The filters of a query string; `FilterInvalid` naming the first one that is wrong."""
        status = params.get("status") or None
        if status is not None and status not in get_args(RunStatus):
            raise FilterInvalid(
                "status", f"{status!r} is not one of {', '.join(get_args(RunStatus))}"
            )
        filters = cls(
            status=status,  # type: ignore[arg-type]
            workflow=_name(params.get("workflow"), "workflow"),
            since=(params.get("since") or "").strip(),
            until=(params.get("until") or "").strip(),
            key=_name(params.get("key"), "key"),
            value=params.get("value") or None,
            page=_page(params.get("page")),
        )
        if filters.value is not None and filters.key is None:
            raise FilterInvalid("value", "a value filter needs a key")
        filters.window()
        return filters

    def window(self, now: float | None = None) -> tuple[float | None, float | None]:
        """`since` and `until` as seconds since the epoch."""
        moment = time.time() if now is None else now
        return _moment(self.since, "since", moment), _moment(self.until, "until", moment)

    def query(self, **changes: object) -> str:
        """The query string of these filters (with `changes`), for links and the bulk form."""
        chosen = replace(self, **changes)  # type: ignore[arg-type]
        pairs = [
            (name, str(value))
            for name, value in (
                ("status", chosen.status),
                ("workflow", chosen.workflow),
                ("since", chosen.since),
                ("until", chosen.until),
                ("key", chosen.key),
                ("value", chosen.value),
                ("page", chosen.page if chosen.page != 1 else None),
            )
            if value
        ]
        return urlencode(pairs)

    @property
    def described(self) -> str:
        """The filters in words, for the bulk action's confirmation."""
        parts = [
            f"{name} {value}"
            for name, value in (
                ("status", self.status),
                ("workflow", self.workflow),
                ("since", self.since),
                ("until", self.until),
                ("key", self.key),
                ("value", self.value),
            )
            if value
        ]
        return ", ".join(parts) or "no filter (every run)"


def _name(text: str | None, field: str) -> str | None:
    if not text:
        return None
    try:
        return msgspec.convert(text, Name)
    except msgspec.ValidationError:
        raise FilterInvalid(field, f"{text[:60]!r} is not a name (letters, digits, _.:-)") from None


def _page(text: str | None) -> int:
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise FilterInvalid("page", f"{text[:20]!r} is not a page number")
    return int(text)


def _moment(text: str, field: str, now: float) -> float | None:
    if not text:
        return None
    if text[-1:] in AGE_UNITS:
        # Not an age, it may still be a date.
        with contextlib.suppress(InputInvalid):
            return now - age_seconds(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterInvalid(
            field, f"{text[:40]!r}: expected an age (30m, 12h, 7d) or a date (2026-12-01T09:30)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
