"""Bounded JSON-like values: the only shape data takes on the wire.

msgspec cannot express a recursive type alias, and an untyped field would let
a peer nest until the decoder raises RecursionError. So the value type is
spelled out to a fixed depth: every level is typed and bounded, and a deeper
value is a plain validation error with a path.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

MAX_TEXT = 65_536
"""Longest string inside a value, in characters."""

MAX_ITEMS = 4_096
"""Most items in one list or map inside a value."""

MAX_NAME = 128
"""Longest name: a key, step, role, tool or agent."""

VALUE_DEPTH = 8
"""How deeply lists and maps may nest inside one value."""

Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9_.:\-]+$")]
"""A key, step, role, tool or agent name."""

Text = Annotated[str, Meta(max_length=MAX_TEXT)]
"""Free text: a rationale, a caveat, an error message."""


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text` shortened to at most `limit` characters, marked with an ellipsis if it was.

    For texts built around a peer's text (a prefix, a quote), which may
    otherwise exceed the bound of the field they go into.
    """
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


MapKey = Annotated[str, Meta(max_length=1_024)]

Scalar = None | bool | int | float | Text
_V1 = (
    Scalar
    | Annotated[list[Scalar], Meta(max_length=MAX_ITEMS)]
    | Annotated[dict[MapKey, Scalar], Meta(max_length=MAX_ITEMS)]
)
_V2 = (
    Scalar
    | Annotated[list[_V1], Meta(max_length=MAX_ITEMS)]
    | Annotated[dict[MapKey, _V1], Meta(max_length=MAX_ITEMS)]
)
_V3 = (
    Scalar
    | Annotated[list[_V2], Meta(max_length=MAX_ITEMS)]
    | Annotated[dict[MapKey, _V2], Meta(max_length=MAX_ITEMS)]
)
_V4 = (
    Scalar
    | Annotated[list[_V3], Meta(max_length=MAX_ITEMS)]
    | Annotated[dict[MapKey, _V3], Meta(max_length=MAX_ITEMS)]
)
_V5 = (
    Scalar
    | Annotated[list[_V4], Meta(max_length=MAX_ITEMS)]
    | Annotated[dict[MapKey, _V4], Meta(max_length=MAX_ITEMS)]
)
_V6 = (
    Scalar
    | Annotated[list[_V5], Meta(max_length=MAX_ITEMS)]
    | Annotated[dict[MapKey, _V5], Meta(max_length=MAX_ITEMS)]
)
_V7 = (
    Scalar
    | Annotated[list[_V6], Meta(max_length=MAX_ITEMS)]
    | Annotated[dict[MapKey, _V6], Meta(max_length=MAX_ITEMS)]
)
Value = (
    Scalar
    | Annotated[list[_V7], Meta(max_length=MAX_ITEMS)]
    | Annotated[dict[MapKey, _V7], Meta(max_length=MAX_ITEMS)]
)
"""A JSON-like value nested at most `VALUE_DEPTH` levels."""

Data = Annotated[dict[Name, Value], Meta(max_length=MAX_ITEMS)]
"""Named values: a step's inputs or outputs, a run's data."""

ArgumentValue = _V7
"""A tool call argument: a `Value` one level shallower."""

Arguments = Annotated[dict[Name, ArgumentValue], Meta(max_length=MAX_ITEMS)]
"""A tool call's named arguments: one level shallower than `Data`, so that a run's
history can quote them inside an entry's `detail` and stay within `VALUE_DEPTH`."""
