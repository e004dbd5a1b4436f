"""A workflow of one step that a small real model can answer, and its model agent."""

from __future__ import annotations

from actors.models import ModelAgent
from runtime import Halt, Role, Step, Workflow

greeting = Workflow(
    "greeting",
    roles=[Role("greeter")],
    inputs=["name"],
    steps=[
        Step(
            "greet",
            role="greeter",
            reads=["name"],
            writes={"greeting": str},
            timeout=120,
            on_failure=Halt(),
        )
    ],
)

ALL = [greeting]


class Greeter(ModelAgent):
    """Greets the person the step names, as the model words it."""

    role = "greeter"
    instructions = "You greet people warmly in one short sentence."
    model = "smollm2"
    model_timeout = 90.0


class SchemaGreeter(Greeter):
    """The same, its answer held to the step's schema by the server's grammar."""

    model_response_format = "json_object_schema"
