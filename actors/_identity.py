"""Who an actor says it is when it registers: role, kind, tools and specs."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from actors._agent import Agent
from actors._errors import ActorLoadError
from actors._toolhost import ToolHost, tool_specs
from protocols import ActorKind, Name, ToolSpec


@dataclass(frozen=True, slots=True)
class Identity:
    """What an actor declares in its `Register` message."""

    role: str
    kind: ActorKind
    tools: tuple[str, ...]
    specs: tuple[ToolSpec, ...]


def identify(actor: object) -> Identity:
    """The identity `actor` declares, or `ActorLoadError` saying why it cannot run."""
    cls = type(actor)
    if isinstance(actor, ToolHost):
        specs = tuple(tool_specs(actor))
        identity = Identity(
            role=_declared(cls, "name"),
            kind="tool_host",
            tools=tuple(spec.name for spec in specs),
            specs=specs,
        )
    elif isinstance(actor, Agent):
        tools = type(actor).tools
        if isinstance(tools, str) or not isinstance(tools, tuple | list):
            raise ActorLoadError(cls.__qualname__, "tools must be a tuple of tool names")
        identity = Identity(role=_declared(cls, "role"), kind="agent", tools=tuple(tools), specs=())
    else:
        raise ActorLoadError(cls.__qualname__, "is neither an Agent nor a ToolHost")
    for name in identity.tools:
        _check_name(cls, "tool", name)
    return identity


def _declared(cls: type, attribute: str) -> str:
    value = getattr(cls, attribute, None)
    if value is None:
        raise ActorLoadError(cls.__qualname__, f"declares no {attribute}")
    return _check_name(cls, attribute, value)


def _check_name(cls: type, what: str, value: object) -> str:
    try:
        return msgspec.convert(value, Name)
    except msgspec.ValidationError as exc:
        reason = f"{what} {value!r} is not a valid name: {exc}"
        raise ActorLoadError(cls.__qualname__, reason) from None
