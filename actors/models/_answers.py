"""A model's final answer: read from its reply and checked against the step's outputs.

Every problem is phrased for the model, which is told it verbatim in a repair
turn, and for the run's history, where it ends as the `invalid_output` message
when the repairs run out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from protocols import OutputType

_CHECKS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_JSON_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number with a fraction",
    bool: "a boolean",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """A final answer whose outputs fit the step's declared outputs."""

    outputs: dict[str, Any]
    rationale: str
    confidence: float
    caveats: list[str]


def read_answer(content: object, declared: Mapping[str, OutputType]) -> Answer | list[str]:
    """The answer in a reply's `content`, or every problem that keeps it from being one.

    With no declared outputs (a runtime that sends none), any `outputs` object fits.
    """
    if not isinstance(content, str) or not content.strip():
        return ["the reply has no content: answer with the JSON object"]
    try:
        data = json.loads(_unfenced(content))
    except ValueError as exc:
        return [f"the reply is not valid JSON ({exc}): answer with the JSON object alone"]
    if not isinstance(data, dict):
        return [f"the reply is {_describe(data)}, not a JSON object"]
    problems: list[str] = []
    outputs = data.get("outputs")
    if not isinstance(outputs, dict):
        problems.append(f'"outputs" must be an object, not {_describe(outputs)}')
        outputs = {}
    elif declared:
        problems.extend(output_problems(outputs, declared))
    rationale = data.get("rationale", "")
    if not isinstance(rationale, str):
        problems.append(f'"rationale" must be a string, not {_describe(rationale)}')
    confidence = data.get("confidence")
    if not (_is_number(confidence) and 0.0 <= confidence <= 1.0):
        problems.append(f'"confidence" must be a number from 0 to 1, not {_describe(confidence)}')
    caveats = data.get("caveats", [])
    if not isinstance(caveats, list) or not all(isinstance(c, str) for c in caveats):
        problems.append(f'"caveats" must be a list of strings, not {_describe(caveats)}')
    if problems:
        return problems
    assert isinstance(rationale, str)
    assert _is_number(confidence)
    assert isinstance(caveats, list)
    return Answer(
        outputs={key: _coerced(value, declared.get(key, "any")) for key, value in outputs.items()},
        rationale=rationale,
        confidence=float(confidence),
        caveats=caveats,
    )


_SCHEMA_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array"},
    "dict": {"type": "object"},
    "any": {},
}


def answer_schema(declared: Mapping[str, OutputType]) -> dict[str, Any]:
    """The JSON Schema of a final answer with the declared outputs, for a server that
    holds its model to one (structured outputs, a grammar)."""
    outputs: dict[str, Any] = {"type": "object"}
    if declared:
        outputs |= {
            "properties": {key: _SCHEMA_TYPES[kind] for key, kind in declared.items()},
            "required": list(declared),
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "properties": {
            "outputs": outputs,
            "rationale": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "caveats": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["outputs", "rationale", "confidence", "caveats"],
        "additionalProperties": False,
    }


def output_problems(outputs: Mapping[str, Any], declared: Mapping[str, OutputType]) -> list[str]:
    """What is wrong with `outputs` given the declared outputs: a missing key, a key not
    declared, a value of the wrong type (a boolean is no integer; an integer is a float)."""
    problems: list[str] = []
    for key, kind in declared.items():
        if key not in outputs:
            problems.append(f"output {key!r} ({kind}) is missing")
        elif not fits(outputs[key], kind):
            problems.append(f"output {key!r} must be {kind}, not {_describe(outputs[key])}")
    unknown = [key for key in outputs if key not in declared]
    if unknown:
        names = ", ".join(repr(key) for key in declared)
        for key in unknown:
            problems.append(f"output {key!r} is not declared; the outputs are {names}")
    return problems


def fits(value: object, kind: OutputType) -> bool:
    """Whether `value` (decoded JSON) is of the declared output type `kind`."""
    if kind == "any":
        return True
    if isinstance(value, bool) and kind != "bool":
        return False
    return isinstance(value, _CHECKS[kind])


def _coerced(value: Any, kind: OutputType) -> Any:
    # A float output that the model wrote as 3 is recorded as 3.0, as declared.
    if kind == "float" and isinstance(value, int):
        return float(value)
    return value


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: object) -> str:
    """`an integer (3)`: the JSON kind of a value and a short quote of it."""
    kind = _JSON_NAMES.get(type(value), type(value).__name__)
    if value is None:
        return kind
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 60:
        text = text[:59] + "…"
    return f"{kind} ({text})"


def _unfenced(content: str) -> str:
    """`content` without a Markdown code fence around it, which many models add."""
    text = content.strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        text = text[3:-3]
        first, _, rest = text.partition("\n")
        # The fence's info string ("json") is not part of the value.
        return rest if first.strip().isalpha() or not first.strip() else text
    return text
