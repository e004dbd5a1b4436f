"""The JSON Schema of the wire: complete, self-contained, recursive where values are, small."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any, get_args

import msgspec
import pytest

import protocols
from protocols import (
    MAX_ITEMS,
    MAX_TEXT,
    PROTOCOL_VERSION,
    ActorMessage,
    ControlReply,
    ControlRequest,
    RuntimeMessage,
    protocol_schema,
)

PLANES = {
    "actor_to_runtime": ActorMessage,
    "runtime_to_actor": RuntimeMessage,
    "control_request": ControlRequest,
    "control_reply": ControlReply,
}
VALUE_REF = {"$ref": "#/$defs/Value"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return protocol_schema()


def refs(node: Any) -> Iterator[str]:
    """Every `$ref` anywhere below `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def nesting(node: Any) -> int:
    """How many maps and lists deep `node` is."""
    if isinstance(node, dict):
        return 1 + max(map(nesting, node.values()), default=0)
    if isinstance(node, list):
        return 1 + max(map(nesting, node), default=0)
    return 0


@functools.cache
def structs() -> dict[str, type[msgspec.Struct]]:
    """Every struct reachable from the four planes, by name."""
    found: dict[str, type[msgspec.Struct]] = {}
    pending: list[Any] = [member for union in PLANES.values() for member in get_args(union)]
    while pending:
        cls = pending.pop()
        if cls.__name__ in found:
            continue
        found[cls.__name__] = cls
        for field in msgspec.structs.fields(cls):
            pending.extend(t for t in _types_within(field.type) if _is_struct(t))
    return found


def _types_within(tp: Any) -> Iterator[Any]:
    yield tp
    for arg in get_args(tp):
        yield from _types_within(arg)


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


class TestSchemaDocument:
    """`protocol_schema()` is a plain, self-contained JSON document."""

    def test_json_serialisable(self, schema: dict[str, Any]) -> None:
        """It serialises to strict JSON (no NaN) and reads back unchanged."""
        text = json.dumps(schema, allow_nan=False)
        assert json.loads(text) == schema

    def test_smaller_than_64_kb(self, schema: dict[str, Any]) -> None:
        """The whole document stays under 64 KB: values are referenced, not expanded."""
        assert len(json.dumps(schema).encode()) < 64 * 1_024

    def test_header(self, schema: dict[str, Any]) -> None:
        """It names its dialect and the protocol version it describes."""
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["protocol_version"] == PROTOCOL_VERSION

    def test_exported(self) -> None:
        """It is part of the public API."""
        assert protocols.protocol_schema is protocol_schema


class TestPlanes:
    """The four planes are tagged unions of the message definitions."""

    def test_four_planes(self, schema: dict[str, Any]) -> None:
        """Both directions of the agent plane and of the control plane are described."""
        assert sorted(schema["planes"]) == sorted(PLANES)

    @pytest.mark.parametrize("plane", list(PLANES))
    def test_discriminated_by_type(self, schema: dict[str, Any], plane: str) -> None:
        """Each plane maps every tag of its union to that message's definition."""
        expected = {
            cls.__struct_config__.tag: f"#/$defs/{cls.__name__}" for cls in get_args(PLANES[plane])
        }
        described = schema["planes"][plane]
        assert described["discriminator"] == {"propertyName": "type", "mapping": expected}
        assert described["anyOf"] == [{"$ref": ref} for ref in expected.values()]


class TestDefinitions:
    """`$defs` holds one faithful definition per struct, and `Value`."""

    def test_every_ref_resolves(self, schema: dict[str, Any]) -> None:
        """Every `$ref` points inside `$defs`, at a definition that exists."""
        targets = set(refs(schema))
        assert targets
        assert {t for t in targets if not t.startswith("#/$defs/")} == set()
        assert {t.removeprefix("#/$defs/") for t in targets} <= set(schema["$defs"])

    def test_every_definition_is_used(self, schema: dict[str, Any]) -> None:
        """Every definition is referenced from somewhere: nothing is dead weight."""
        used = {t.removeprefix("#/$defs/") for t in refs(schema)}
        assert set(schema["$defs"]) <= used

    def test_one_definition_per_struct(self, schema: dict[str, Any]) -> None:
        """The definitions are exactly the structs reachable from the planes, plus the two
        recursive value types."""
        assert set(schema["$defs"]) == set(structs()) | {"Value", "ArgumentValue"}

    @pytest.mark.parametrize("name", sorted(structs()))
    def test_fields_match_the_struct(self, schema: dict[str, Any], name: str) -> None:
        """Properties are the struct's fields; required ones are those without defaults."""
        cls = structs()[name]
        definition = schema["$defs"][name]
        fields = msgspec.structs.fields(cls)
        tag = ["type"] if cls.__struct_config__.tag is not None else []
        assert list(definition["properties"]) == tag + [f.encode_name for f in fields]
        assert definition.get("required", []) == tag + [f.encode_name for f in fields if f.required]
        assert definition["additionalProperties"] is False

    def test_value_is_recursive(self, schema: dict[str, Any]) -> None:
        """`Value` is a scalar, or a bounded list or map of `Value`."""
        members = schema["$defs"]["Value"]["anyOf"]
        assert {"type": "string", "maxLength": MAX_TEXT} in members
        assert {"type": "array", "maxItems": MAX_ITEMS, "items": VALUE_REF} in members
        assert {
            "type": "object",
            "maxProperties": MAX_ITEMS,
            "additionalProperties": VALUE_REF,
        } in members
        assert [{"type": t} for t in ("null", "boolean", "integer", "number")] == members[:4]

    def test_values_are_referenced_not_expanded(self, schema: dict[str, Any]) -> None:
        """No definition inlines the fixed-depth value union; the document stays shallow."""
        assert nesting(schema) <= 8

    @pytest.mark.parametrize(
        ("definition", "field", "expected"),
        [
            ("ToolReply", "result", {"$ref": "#/$defs/Value", "default": None}),
            ("ToolSpec", "parameters", {"$ref": "#/$defs/Value", "default": None}),
        ],
    )
    def test_value_fields(
        self, schema: dict[str, Any], definition: str, field: str, expected: dict[str, Any]
    ) -> None:
        """A field typed `Value` refers to the recursive definition, keeping its default."""
        assert schema["$defs"][definition]["properties"][field] == expected

    def test_tool_arguments_nest_one_level_less(self, schema: dict[str, Any]) -> None:
        """A tool call's args are named `ArgumentValue`s, so that a run's history can quote
        the call within the depth bound."""
        described = schema["$defs"]["ToolCall"]["properties"]["args"]
        assert described["additionalProperties"] == {"$ref": "#/$defs/ArgumentValue"}
        assert described["maxProperties"] == MAX_ITEMS
        assert "7 levels" in schema["$defs"]["ArgumentValue"]["description"]

    @pytest.mark.parametrize(
        ("definition", "field"),
        [
            ("Assign", "inputs"),
            ("StepResult", "outputs"),
            ("StartRun", "inputs"),
            ("RunRecord", "data"),
            ("HistoryEntry", "detail"),
        ],
    )
    def test_data_fields(self, schema: dict[str, Any], definition: str, field: str) -> None:
        """A field typed `Data` is a bounded map from names to `Value`."""
        described = schema["$defs"][definition]["properties"][field]
        assert described["type"] == "object"
        assert described["additionalProperties"] == VALUE_REF
        assert described["maxProperties"] == MAX_ITEMS
        assert described["propertyNames"]["pattern"] == "^[A-Za-z0-9_.:\\-]+$"
