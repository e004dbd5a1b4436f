"""What a person typed into a form, checked as the CLI checks its `--edit KEY=JSON`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from protocols import Name
from runtime.client._inputs import InputInvalid, wire_data
from runtime.client._inputs import json_value as read_json

MAX_FIELD = 1_000_000
"""Characters a field may hold: a value larger than this is not edited by hand."""


class FormInvalid(InputInvalid):
    """A field that cannot be read, and why."""


def json_value(text: str, key: str) -> Any:
    if len(text) > MAX_FIELD:
        raise FormInvalid(f"{key}: longer than {MAX_FIELD:,} characters")
    try:
        return read_json(text, key)
    except InputInvalid as exc:
        raise FormInvalid(str(exc), key) from None


def key_json_lines(text: str) -> dict[str, Any]:
    """`KEY=JSON` lines (blank lines skipped) as values."""
    values: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, raw = line.partition("=")
        if not sep or not key.strip():
            raise FormInvalid(f"line {number}: expected KEY=JSON, e.g. amount=120")
        values[key.strip()] = json_value(raw.strip(), key.strip())
    return values


def changed_values(fields: Iterable[tuple[str, str]], shown: Mapping[str, Any]) -> dict[str, Any]:
    """The `value:KEY` fields whose JSON differs from the value shown for KEY."""
    values: dict[str, Any] = {}
    for name, text in fields:
        if not name.startswith("value:"):
            continue
        key = name.removeprefix("value:")
        value = json_value(text, key)
        if key not in shown or value != shown[key]:
            values[key] = value
    return values


def as_data(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` as the wire carries them: keys that are names, values within its limits."""
    try:
        return wire_data(dict(values))
    except InputInvalid as exc:
        raise FormInvalid(str(exc)) from None


def name_field(text: str, field: str) -> str:
    try:
        return msgspec.convert(text, Name)
    except msgspec.ValidationError:
        raise FormInvalid(f"{field}: {text[:60]!r} is not a name") from None


def count_field(text: str, field: str) -> int:
    if not text.strip().isdigit():
        raise FormInvalid(f"{field}: {text[:20]!r} is not a whole number")
    return int(text)
