"""Tool hosts: argument validation, execution, failures and specs."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors import ToolHost, tool, tool_specs
from actors._toolhost import run_tool
from protocols import ToolCall, ToolReply, ToolSpec
from tests.actors.sample import MathHost

pytestmark = pytest.mark.anyio


def call(tool_name: str, **args: Any) -> ToolCall:
    return ToolCall(call_id=7, run_id="r1", step="s1", attempt=1, tool=tool_name, args=args)


def refusal(code: Any, message: str) -> ToolReply:
    return ToolReply(call_id=7, ok=False, error=code, message=message)


class TestToolArguments:
    async def test_valid_arguments_reach_the_tool(self) -> None:
        """Arguments matching the signature run the tool and its result comes back."""
        assert await run_tool(MathHost(), call("add", a=2, b=3)) == ToolReply(
            call_id=7, ok=True, result=5
        )

    async def test_defaults_fill_omitted_arguments(self) -> None:
        """A parameter with a default may be left out."""
        assert (await run_tool(MathHost(), call("add", a=2))).result == 2

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            pytest.param({}, "Object missing required field `a`", id="missing"),
            pytest.param({"a": "two"}, "Expected `int`, got `str` - at `$.a`", id="wrong-type"),
            pytest.param({"a": 1, "c": 2}, "Object contains unknown field `c`", id="unknown"),
        ],
    )
    async def test_invalid_arguments_are_refused_with_the_field_named(
        self, args: dict[str, Any], message: str
    ) -> None:
        """Bad arguments get `invalid_input` and msgspec's message, which names the field."""
        assert await run_tool(MathHost(), call("add", **args)) == refusal("invalid_input", message)

    async def test_annotated_constraints_are_enforced(self) -> None:
        """`Annotated[..., Meta(...)]` bounds on a parameter are checked before the tool runs."""
        assert await run_tool(MathHost(), call("mul", x=1.0, y=-1.0)) == refusal(
            "invalid_input", "Expected `float` >= 0.0 - at `$.y`"
        )


class TestToolExecution:
    async def test_plain_tools_run_in_a_worker_thread(self) -> None:
        """A non-async tool runs off the event loop's thread."""
        host = MathHost()
        assert (await run_tool(host, call("mul", x=2.0, y=3.0))).result == 6.0
        assert host.threads
        assert host.threads[0] != threading.get_ident()

    async def test_a_raising_tool_is_reported_as_tool_failed(self) -> None:
        """An exception in a tool becomes `tool_failed` with `TypeName: text`."""
        assert await run_tool(MathHost(), call("boom")) == refusal(
            "tool_failed", "ValueError: the tool broke"
        )

    async def test_a_result_that_is_no_value_is_reported_as_tool_failed(self) -> None:
        """A result that cannot travel on the wire fails the call, not the host."""
        reply = await run_tool(MathHost(), call("opaque"))
        assert (reply.ok, reply.error) == (False, "tool_failed")
        assert reply.message.startswith("result is not a JSON-like value: ")

    async def test_an_unknown_tool_is_refused(self) -> None:
        """A call for a tool the host does not serve gets `unknown_tool`."""
        assert await run_tool(MathHost(), call("divide", a=1)) == refusal(
            "unknown_tool", "this host serves no tool 'divide'"
        )

    async def test_a_plain_method_is_not_served(self) -> None:
        """Only methods marked with `@tool` are tools."""
        reply = await run_tool(MathHost(), call("not_a_tool"))
        assert reply.error == "unknown_tool"


class TestToolSpecs:
    def test_every_tool_is_listed_in_definition_order(self) -> None:
        """`tool_specs` lists each tool once, in the order the class defines them."""
        assert [spec.name for spec in tool_specs(MathHost)] == ["add", "mul", "boom", "opaque"]

    def test_spec_is_built_from_signature_and_docstring(self) -> None:
        """Name from the method, description from the docstring, schema from the signature."""
        assert tool_specs(MathHost)[0] == ToolSpec(
            name="add",
            description="Add two integers.",
            parameters={
                "type": "object",
                "properties": {
                    "a": {"type": "integer"},
                    "b": {"type": "integer", "default": 0},
                },
                "required": ["a"],
                "additionalProperties": False,
            },
            read_only=False,
        )

    def test_decorator_options_override_the_method(self) -> None:
        """`@tool(name=, description=, read_only=)` replace what the method would give."""
        spec = tool_specs(MathHost())[1]
        assert (spec.name, spec.description, spec.read_only) == (
            "mul",
            "Multiply two numbers.",
            True,
        )
        assert spec.parameters == {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number", "minimum": 0.0}},
            "required": ["x", "y"],
            "additionalProperties": False,
        }

    def test_a_tool_without_docstring_has_an_empty_description(self) -> None:
        """No docstring and no description give an empty description."""
        assert tool_specs(MathHost)[2].description == ""

    def test_subclasses_inherit_and_may_withdraw_tools(self) -> None:
        """A subclass serves its bases' tools unless it overrides one without `@tool`."""

        class Narrower(MathHost):
            def boom(self) -> None:
                pass

        assert [spec.name for spec in tool_specs(Narrower)] == ["add", "mul", "opaque"]


class TestToolDefinitionErrors:
    def test_variadic_parameters_are_rejected(self) -> None:
        """Arguments arrive by name, so `*args` cannot be a tool parameter."""
        with pytest.raises(TypeError, match=r"^tool 'spread': parameter 'values' must be"):

            class Spread(ToolHost):
                name = "spread"

                @tool
                def spread(self, *values: int) -> int:
                    return sum(values)

    def test_two_tools_with_one_name_are_rejected(self) -> None:
        """Tool names are unique within a host."""
        message = r"\.Twice defines tool 'same' twice \(methods 'first' and 'second'\)$"
        with pytest.raises(TypeError, match=message):

            class Twice(ToolHost):
                name = "twice"

                @tool(name="same")
                def first(self) -> None:
                    pass

                @tool(name="same")
                def second(self) -> None:
                    pass

    def test_a_tool_name_must_be_a_wire_name(self) -> None:
        """A tool name must fit `protocols.Name`."""
        with pytest.raises(TypeError, match=r"^tool name 'two words' is not a valid name"):

            class Spaced(ToolHost):
                name = "spaced"

                @tool(name="two words")
                def spaced(self) -> None:
                    pass

    def test_tool_marks_only_functions(self) -> None:
        """`@tool` refuses what is not a function."""
        with pytest.raises(TypeError, match=r"^@tool marks plain or async functions, not int$"):
            tool(3)  # type: ignore[call-overload]
