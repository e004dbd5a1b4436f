"""What people type for a client to send: ages (`30m`, `12h`, `7d`) and `KEY=JSON` values,
read the same way by the CLI and the pages, each failure a `InputInvalid` saying why."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from protocols import Data

AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0}


class InputInvalid(ValueError):
    """Typed input that cannot be read; `key` names the value it is about, if one."""

    def __init__(self, text: str, key: str = "") -> None:
        super().__init__(text)
        self.key = key


def age_seconds(text: str) -> float:
    """Seconds in `text`, a number and a unit: 30m, 12h, 7d."""
    number, unit = text[:-1], text[-1:]
    if unit not in AGE_UNITS or not number.replace(".", "", 1).isdigit():
        raise InputInvalid(f"{text!r}: expected a number and a unit, e.g. 30m, 12h or 7d")
    return float(number) * AGE_UNITS[unit]


def json_value(raw: str, key: str) -> Any:
    """The value `raw` holds as JSON."""
    try:
        return msgspec.json.decode(raw.encode())
    except msgspec.DecodeError as exc:
        raise InputInvalid(f"{key}: the value is not JSON: {exc}", key) from None


def json_values(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Values from (KEY, JSON) pairs, checked as the wire will check them."""
    values = {key: json_value(raw, key) for key, raw in pairs}
    return wire_data(values)


def wire_data(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as the wire carries them: keys that are names, values within its limits."""
    try:
        return dict(msgspec.convert(values, Data))
    except msgspec.ValidationError as exc:
        raise InputInvalid(str(exc)) from None
