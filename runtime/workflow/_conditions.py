"""Conditions on the run record: what decision routes branch on.

Conditions are data, not callables, so a workflow stays inspectable: they are
drawn on the diagram, hashed into the fingerprint, and evaluated by the engine
without running user code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Operator = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]


class Condition:
    """Base of every condition. Combine with `&`, `|` and `~`."""

    __slots__ = ()

    def __and__(self, other: Condition) -> Condition:
        return AllOf((self, other))

    def __or__(self, other: Condition) -> Condition:
        return AnyOf((self, other))

    def __invert__(self) -> Condition:
        return Not(self)

    def keys(self) -> frozenset[str]:
        """The record keys this condition reads."""
        raise NotImplementedError

    def holds(self, data: Mapping[str, object]) -> bool:
        """Whether the condition is true of this data; a missing key makes a comparison false."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short, stable text form, used in diagrams and the fingerprint."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Compare(Condition):
    """`key OP value`, false when the key is absent or the values cannot be ordered."""

    key: str
    op: Operator
    value: object

    def keys(self) -> frozenset[str]:
        return frozenset({_record_key(self.key)})

    def holds(self, data: Mapping[str, object]) -> bool:
        found, value = _lookup(data, self.key)
        if not found:
            return False
        # Typed as object: comparing two values of the deep `Value` union makes mypy crawl.
        left: Any = value
        right: Any = self.value
        try:
            match self.op:
                case "==":
                    return bool(left == right)
                case "!=":
                    return bool(left != right)
                case "<":
                    return bool(left < right)
                case "<=":
                    return bool(left <= right)
                case ">":
                    return bool(left > right)
                case ">=":
                    return bool(left >= right)
                case "in":
                    return bool(left in right)
                case "not in":
                    return bool(left not in right)
        except TypeError:
            return False

    def describe(self) -> str:
        return f"{self.key} {self.op} {_literal(self.value)}"


@dataclass(frozen=True, slots=True)
class Present(Condition):
    """The key has been written and is neither null nor false."""

    key: str

    def keys(self) -> frozenset[str]:
        return frozenset({_record_key(self.key)})

    def holds(self, data: Mapping[str, object]) -> bool:
        _, value = _lookup(data, self.key)
        return value is not None and value is not False

    def describe(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class AllOf(Condition):
    """Every part holds."""

    parts: tuple[Condition, ...]

    def keys(self) -> frozenset[str]:
        return frozenset().union(*(p.keys() for p in self.parts))

    def holds(self, data: Mapping[str, object]) -> bool:
        return all(p.holds(data) for p in self.parts)

    def describe(self) -> str:
        return " and ".join(f"({p.describe()})" for p in self.parts)


@dataclass(frozen=True, slots=True)
class AnyOf(Condition):
    """At least one part holds."""

    parts: tuple[Condition, ...]

    def keys(self) -> frozenset[str]:
        return frozenset().union(*(p.keys() for p in self.parts))

    def holds(self, data: Mapping[str, object]) -> bool:
        return any(p.holds(data) for p in self.parts)

    def describe(self) -> str:
        return " or ".join(f"({p.describe()})" for p in self.parts)


@dataclass(frozen=True, slots=True)
class Not(Condition):
    """The part does not hold."""

    part: Condition

    def keys(self) -> frozenset[str]:
        return self.part.keys()

    def holds(self, data: Mapping[str, object]) -> bool:
        return not self.part.holds(data)

    def describe(self) -> str:
        return f"not ({self.part.describe()})"


@dataclass(frozen=True, slots=True)
class Always(Condition):
    """Always true: an unconditional route."""

    def keys(self) -> frozenset[str]:
        return frozenset()

    def holds(self, data: Mapping[str, object]) -> bool:
        return True

    def describe(self) -> str:
        return "always"


def _record_key(path: str) -> str:
    """The record key a path starts at: `decision` for `decision.amount`."""
    return path.split(".", 1)[0]


def _lookup(data: Mapping[str, object], path: str) -> tuple[bool, object]:
    """The value at `path`: a record key, or a dotted path into maps (`decision.amount`)."""
    if path in data:
        return True, data[path]
    head, _, rest = path.partition(".")
    value: object = data
    for part in (head, *rest.split(".")) if rest else (head,):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


class KeyRef:
    """`key("amount") > 500` builds a `Compare`; `key("approved").present()` a `Present`.
    A dotted name reaches into a map: `key("decision.amount") > 1000`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.name, "==", value)

    def __ne__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.name, "!=", value)

    def __lt__(self, value: object) -> Compare:
        return Compare(self.name, "<", value)

    def __le__(self, value: object) -> Compare:
        return Compare(self.name, "<=", value)

    def __gt__(self, value: object) -> Compare:
        return Compare(self.name, ">", value)

    def __ge__(self, value: object) -> Compare:
        return Compare(self.name, ">=", value)

    def __hash__(self) -> int:
        return hash(self.name)

    def is_in(self, values: Sequence[object]) -> Compare:
        return Compare(self.name, "in", list(values))

    def not_in(self, values: Sequence[object]) -> Compare:
        return Compare(self.name, "not in", list(values))

    def present(self) -> Present:
        return Present(self.name)


def key(name: str) -> KeyRef:
    """Refer to a record key in a condition."""
    return KeyRef(name)


def _literal(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
