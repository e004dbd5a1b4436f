"""Tool definitions: the `@tool` marker, argument types and specs built from signatures."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import msgspec

from protocols import Name, ToolSpec, Value

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__baton_tool__"
_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True, slots=True)
class ToolOptions:
    """What `@tool(...)` was given; `None` means derive it from the method."""

    name: str | None = None
    read_only: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool as a host serves it: its argument type, its spec and the method behind it."""

    name: str
    attribute: str
    args_type: type[msgspec.Struct]
    spec: ToolSpec
    is_async: bool


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    *, name: str | None = None, read_only: bool = False, description: str | None = None
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    read_only: bool = False,
    description: str | None = None,
) -> F | Callable[[F], F]:
    """Mark a `ToolHost` method as a tool.

    The name defaults to the method's, the description to its docstring. The
    arguments are validated against the method's signature before it runs.
    `read_only` tells the runtime (and a model) that the tool has no side effect.
    """
    options = ToolOptions(name=name, read_only=read_only, description=description)

    def mark(target: F) -> F:
        if not inspect.isfunction(target):
            raise TypeError(f"@tool marks plain or async functions, not {type(target).__name__}")
        vars(target)[_MARK] = options
        return target

    return mark if fn is None else mark(fn)


def tool_options(value: object) -> ToolOptions | None:
    """The options `value` was marked with by `@tool`, or None if it is not a tool."""
    options = getattr(value, _MARK, None)
    return options if isinstance(options, ToolOptions) else None


def define_tool(attribute: str, fn: Callable[..., Any], options: ToolOptions) -> ToolDefinition:
    """Build the definition of the tool method `fn`, or raise TypeError saying what is wrong."""
    name = options.name or attribute
    try:
        msgspec.convert(name, Name)
    except msgspec.ValidationError as exc:
        raise TypeError(f"tool name {name!r} is not a valid name: {exc}") from None
    args_type = _args_type(name, fn)
    description = options.description if options.description is not None else inspect.getdoc(fn)
    spec = ToolSpec(
        name=name,
        description=description or "",
        parameters=_parameters_schema(name, args_type),
        read_only=options.read_only,
    )
    return ToolDefinition(
        name=name,
        attribute=attribute,
        args_type=args_type,
        spec=spec,
        is_async=inspect.iscoroutinefunction(fn),
    )


def _args_type(name: str, fn: Callable[..., Any]) -> type[msgspec.Struct]:
    """One struct per tool: its fields are the method's parameters after `self`."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as exc:
        raise TypeError(f"tool {name!r}: cannot resolve its annotations: {exc}") from None
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for parameter in list(inspect.signature(fn).parameters.values())[1:]:
        if parameter.kind not in _KEYWORD_KINDS:
            raise TypeError(
                f"tool {name!r}: parameter {parameter.name!r} must be passable by keyword"
            )
        annotation = hints.get(parameter.name, Any)
        if parameter.default is inspect.Parameter.empty:
            fields.append((parameter.name, annotation))
        else:
            fields.append((parameter.name, annotation, parameter.default))
    try:
        # kw_only lets a required keyword-only parameter follow one with a default.
        return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"tool {name!r}: its parameters cannot be validated: {exc}") from None


def _parameters_schema(name: str, args_type: type[msgspec.Struct]) -> Any:
    """The JSON Schema of a tool's arguments, with the object at the top as models expect."""
    try:
        (ref,), components = msgspec.json.schema_components(
            [args_type], ref_template="#/$defs/{name}"
        )
    except (TypeError, ValueError) as exc:
        raise TypeError(f"tool {name!r}: its parameters have no JSON Schema: {exc}") from None
    schema = dict(components.pop(ref["$ref"].removeprefix("#/$defs/")))
    schema.pop("title", None)
    if components:
        schema["$defs"] = components
    try:
        return msgspec.convert(schema, Value)
    except msgspec.ValidationError as exc:
        raise TypeError(f"tool {name!r}: its parameter schema is too large: {exc}") from None
