"""The one place bytes become messages and messages become bytes."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import msgspec

from protocols._agent_plane import ActorMessage, RuntimeMessage
from protocols._base import PROTOCOL_VERSION, Message
from protocols._control_plane import ControlReply, ControlRequest
from protocols._values import MAX_ITEMS, MAX_TEXT, VALUE_DEPTH, ArgumentValue, Value, clip

T = TypeVar("T")

DEFAULT_MAX_FRAME = 1_048_576
"""Largest frame a plane accepts by default: 1 MiB."""

ProtocolErrorReason = Literal["oversize", "malformed", "invalid", "too_deep"]


MAX_DETAIL = 1_000
"""Longest explanation a `ProtocolError` keeps: it is echoed to the peer and logged, and
the decoder's own message may quote the offending bytes at any length."""


class ProtocolError(Exception):
    """A frame that is not a valid message of the expected union."""

    def __init__(self, reason: ProtocolErrorReason, detail: str, size: int) -> None:
        self.reason: ProtocolErrorReason = reason
        self.detail = clip(detail, MAX_DETAIL)
        self.size = size
        super().__init__(f"{reason} frame ({size} bytes): {self.detail}")


class Codec(Generic[T]):
    """Encodes any message; decodes frames strictly into the union `incoming`.

    One encoder and one decoder are reused for the life of the codec, so a
    plane keeps one codec per socket.
    """

    __slots__ = ("_decoder", "_encoder", "max_frame")

    def __init__(self, incoming: Any, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(incoming)
        self._encoder = msgspec.msgpack.Encoder()
        self.max_frame = max_frame

    def encode(self, message: Message) -> bytes:
        return self._encoder.encode(message)

    def decode(self, frame: bytes | memoryview) -> T:
        size = len(frame)
        if size > self.max_frame:
            raise ProtocolError("oversize", f"limit is {self.max_frame} bytes", size)
        try:
            return self._decoder.decode(frame)
        except msgspec.ValidationError as exc:
            raise ProtocolError("invalid", str(exc), size) from None
        except msgspec.DecodeError as exc:
            raise ProtocolError("malformed", str(exc), size) from None
        except UnicodeDecodeError as exc:
            # msgspec lets invalid UTF-8 in a string escape as this, not as DecodeError.
            raise ProtocolError("malformed", str(exc), size) from None
        except RecursionError:
            raise ProtocolError("too_deep", "nested beyond the decoder's depth", size) from None


def runtime_side_agent_codec(max_frame: int = DEFAULT_MAX_FRAME) -> Codec[ActorMessage]:
    """The runtime's codec for its agent plane: decodes what actors send."""
    return Codec(ActorMessage, max_frame=max_frame)


def actor_side_codec(max_frame: int = DEFAULT_MAX_FRAME) -> Codec[RuntimeMessage]:
    """An actor's codec: decodes what the runtime sends."""
    return Codec(RuntimeMessage, max_frame=max_frame)


def runtime_side_control_codec(max_frame: int = DEFAULT_MAX_FRAME) -> Codec[ControlRequest]:
    """The runtime's codec for its control plane: decodes client requests."""
    return Codec(ControlRequest, max_frame=max_frame)


def client_side_control_codec(max_frame: int = 256 * DEFAULT_MAX_FRAME) -> Codec[ControlReply]:
    """A control client's codec: decodes replies, which may carry whole records."""
    return Codec(ControlReply, max_frame=max_frame)


def protocol_schema() -> dict[str, Any]:
    """JSON Schema of both planes, for writing actors and clients in other languages."""
    planes = {
        "actor_to_runtime": ActorMessage,
        "runtime_to_actor": RuntimeMessage,
        "control_request": ControlRequest,
        "control_reply": ControlReply,
    }
    schemas, components = msgspec.json.schema_components(
        list(planes.values()), ref_template="#/$defs/{name}"
    )
    # Deepest first: a `Value` expansion contains an `ArgumentValue` one.
    folds = [
        (msgspec.json.schema(Value)["anyOf"], "#/$defs/Value"),
        (msgspec.json.schema(ArgumentValue)["anyOf"], "#/$defs/ArgumentValue"),
    ]
    components["Value"] = _recursive_value(
        "Value", f"A JSON value nested at most {VALUE_DEPTH} levels; strings at most "
        f"{MAX_TEXT} characters, lists and maps at most {MAX_ITEMS} items."
    )  # fmt: skip
    components["ArgumentValue"] = _recursive_value(
        "ArgumentValue", f"A tool call argument: a `Value` nested at most {VALUE_DEPTH - 1} "
        "levels, so that a run's history can quote the call."
    )  # fmt: skip
    folded = [_fold_values(s, folds) for s in schemas]
    components = {
        name: c if name in ("Value", "ArgumentValue") else _fold_values(c, folds)
        for name, c in components.items()
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Baton wire protocol",
        "description": "Each frame is one MessagePack-encoded message of the plane's union; "
        "the `type` field is the tag.",
        "protocol_version": PROTOCOL_VERSION,
        "planes": dict(zip(planes, folded, strict=True)),
        "$defs": components,
    }


def _recursive_value(name: str, description: str) -> dict[str, Any]:
    ref = {"$ref": f"#/$defs/{name}"}
    return {
        "description": description,
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "integer"},
            {"type": "number"},
            {"type": "string", "maxLength": MAX_TEXT},
            {"type": "array", "maxItems": MAX_ITEMS, "items": ref},
            {"type": "object", "maxProperties": MAX_ITEMS, "additionalProperties": ref},
        ],
    }


def _fold_values(schema: Any, folds: list[tuple[list[Any], str]]) -> Any:
    """Replace each inline expansion of a value type by a reference to its recursive
    definition."""
    if isinstance(schema, dict):
        for members, ref in folds:
            if _is_value(schema, members):
                # A field defaulting to None drops `null` from its expansion and adds a default.
                return {"$ref": ref, **({"default": None} if "default" in schema else {})}
        return {k: _fold_values(v, folds) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_fold_values(v, folds) for v in schema]
    return schema


def _is_value(schema: dict[str, Any], members: list[Any]) -> bool:
    found = schema.get("anyOf")
    return found == members or found == [m for m in members if m != {"type": "null"}]
