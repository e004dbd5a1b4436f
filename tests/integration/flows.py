"""Workflows, agents and a ledger tool host used by the integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
from opentelemetry import trace

from actors import Agent, Context, Result, Task, ToolHost, tool
from examples.customer_ops.backoffice import Backoffice
from runtime import (
    Checkpoint,
    Escalate,
    EscalateTo,
    Halt,
    Retry,
    Role,
    Step,
    Workflow,
    key,
)

flaky = Workflow(
    "flaky",
    roles=[Role("flaky"), Role("finisher")],
    inputs=["n"],
    steps=[
        Step(
            "wobble",
            role="flaky",
            reads=["n"],
            writes={"w": int},
            on_failure=Retry(attempts=3, backoff=0.01),
        ),
        Step("finish", role="finisher", reads=["w"], writes={"done": bool}),
    ],
    edges=[("wobble", "finish")],
)

survivor = Workflow(
    "survivor",
    roles=[Role("worker")],
    inputs=["n"],
    steps=[
        Step(
            "work",
            role="worker",
            reads=["n"],
            writes={"r": int},
            timeout=30,
            on_failure=Retry(attempts=2, backoff=0.01),
        )
    ],
)

guarded = Workflow(
    "guarded",
    roles=[Role("clerk", tools=["read_balance", "wire_money"])],
    inputs=["account"],
    steps=[
        Step(
            "check",
            role="clerk",
            reads=["account"],
            writes={"balance": int},
            tools=["read_balance"],
            on_failure=Halt(),
        )
    ],
)

pay = Workflow(
    "pay",
    roles=[Role("payer", tools=["charge"])],
    inputs=["amount"],
    steps=[
        Step(
            "settle",
            role="payer",
            reads=["amount"],
            writes={"receipt": str},
            tools=["charge"],
            on_failure=Retry(attempts=2, backoff=0.01),
        )
    ],
)

gated = Workflow(
    "gated",
    roles=[Role("gated"), Role("finisher")],
    inputs=["n"],
    steps=[
        Step("hold", role="gated", reads=["n"], writes={"w": int}, timeout=60),
        Step("finish", role="finisher", reads=["w"], writes={"done": bool}),
    ],
    edges=[("hold", "finish")],
)


class Flaky(Agent):
    """Fails every first attempt, succeeds after."""

    role = "flaky"

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.attempt == 1:
            raise RuntimeError("first tries always fail")
        return Result(outputs={"w": task.inputs["n"] * 2}, rationale="doubled", confidence=0.8)


class Finisher(Agent):
    role = "finisher"

    async def handle(self, task: Task, ctx: Context) -> Result:
        return Result(outputs={"done": True}, rationale="saw w", confidence=1.0)


class StallsOnFirstAttempt(Agent):
    """Never answers attempt 1, so the test can kill whoever holds it."""

    role = "worker"

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.attempt == 1:
            await anyio.sleep_forever()
        return Result(outputs={"r": task.inputs["n"] + 1}, rationale="added one")


class Clerk(Agent):
    """Reads a balance, then tries a tool its step does not allow."""

    role = "clerk"
    tools = ("read_balance", "wire_money")

    async def handle(self, task: Task, ctx: Context) -> Result:
        balance = await ctx.tools.call("read_balance", account=task.inputs["account"])
        await ctx.tools.call("wire_money", account=task.inputs["account"], amount=balance)
        return Result(outputs={"balance": balance})


class Bank(ToolHost):
    """Appends one line per executed call to the file named by BATON_TEST_LEDGER."""

    name = "bank"

    def _note(self, line: str) -> None:
        ledger = os.environ.get("BATON_TEST_LEDGER")
        if ledger:
            with Path(ledger).open("a") as out:
                out.write(line + "\n")

    @tool(read_only=True)
    def read_balance(self, account: str) -> int:
        """The balance of an account, in cents."""
        self._note(f"read_balance {account}")
        return 12_000

    @tool
    def wire_money(self, account: str, amount: int) -> str:
        """Move money out of an account."""
        self._note(f"wire_money {account} {amount}")
        return "wired"


class Stranger(Agent):
    """Claims a role no workflow has."""

    role = "stranger"

    async def handle(self, task: Task, ctx: Context) -> Result:
        return Result(outputs={})


class Payer(Agent):
    """Charges, then loses the receipt on its first attempt: the retry charges again."""

    role = "payer"
    tools = ("charge",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        receipt = await ctx.tools.call("charge", amount=task.inputs["amount"])
        if task.attempt == 1:
            raise RuntimeError("lost the receipt after charging")
        return Result(outputs={"receipt": receipt}, rationale="charged once, whatever it took")


class Till(ToolHost):
    """Appends one line per charge it really makes to the file named by BATON_TEST_LEDGER."""

    name = "till"

    @tool
    def charge(self, amount: int) -> str:
        """Take money from the customer."""
        ledger = os.environ.get("BATON_TEST_LEDGER")
        if ledger:
            with Path(ledger).open("a") as out:
                out.write(f"charge {amount}\n")
        return f"receipt for {amount}"


class Gated(Agent):
    """Holds its step until the file named by BATON_TEST_GATE exists: the test decides when."""

    role = "gated"

    async def handle(self, task: Task, ctx: Context) -> Result:
        gate = anyio.Path(os.environ["BATON_TEST_GATE"])
        # The gate is a file the test makes from another process: nothing to wait on but it.
        while not await gate.exists():  # noqa: ASYNC110
            await anyio.sleep(0.01)
        return Result(outputs={"w": task.inputs["n"]}, rationale="the gate opened")


class AuditedBackoffice(Backoffice):
    """The example's tool host, writing one line per email it really sends to the file named by
    BATON_TEST_LEDGER: the chaos test's oracle for "sent twice"."""

    @tool
    def send_email(self, customer_id: str, body: str) -> str:
        """Send an email to the customer; returns the message id."""
        message_id = super().send_email(customer_id, body)
        ledger = os.environ.get("BATON_TEST_LEDGER")
        if ledger:
            with Path(ledger).open("a") as out:
                out.write(f"{customer_id}|{body}\n")
        return message_id


charge = Workflow(
    "charge",
    roles=[Role("charger", tools=["charge"])],
    inputs=["amount"],
    steps=[
        Step(
            "settle",
            role="charger",
            reads=["amount"],
            writes={"receipt": str},
            tools=["charge"],
            timeout=30,
            on_failure=Retry(attempts=2, backoff=0.01),
        )
    ],
)

gated_v2 = Workflow(
    "gated",
    version="2",
    roles=[Role("gated"), Role("finisher")],
    inputs=["n"],
    steps=[
        Step("hold", role="gated", reads=["n"], writes={"w": int}, timeout=90),
        Step("finish", role="finisher", reads=["w"], writes={"done": bool}),
    ],
    edges=[("hold", "finish")],
)
"""The next version of `gated`: a runtime loading it alone cannot finish runs of the first."""

doomed = Workflow(
    "doomed",
    roles=[Role("doomed")],
    steps=[Step("try", role="doomed", writes=["x"], on_failure=Retry(attempts=6, backoff=0.01))],
)
"""Its one agent dies on every attempt: the role's restart budget ends the loop."""


def _spend(name: str, checkpoint: Checkpoint) -> Workflow:
    return Workflow(
        name,
        roles=[Role("spender"), Role("finisher")],
        inputs=["amount"],
        steps=[
            Step(
                "spend",
                role="spender",
                reads=["amount"],
                writes={"receipt": str},
                consequence="irreversible",
                checkpoint=checkpoint,
            ),
            Step("finish", role="finisher", reads=["receipt"], writes={"done": bool}),
        ],
        edges=[("spend", "finish")],
    )


spend = _spend(
    "spend", Checkpoint(["finance"], condition=key("amount") > 100, reason="a large spend")
)
"""Spending over 100 waits for an approver of finance, who may not be the run's starter."""
spend_timed = _spend(
    "spend_timed",
    Checkpoint(
        ["finance"], condition=key("amount") > 100, timeout=1.0, on_timeout=EscalateTo(["cfo"])
    ),
)
"""The same, handed to group cfo when finance has not decided within a second."""
fragile = Workflow(
    "fragile",
    roles=[Role("fragile")],
    steps=[Step("try", role="fragile", writes={"x": int}, on_failure=Escalate(["ops"]))],
)
"""Its step fails on its first attempt, and the failure waits for a person of ops."""

quick = Workflow(
    "quick",
    roles=[Role("quick")],
    inputs=["n"],
    steps=[
        Step("one", role="quick", reads=["n"], writes={"x": int}, on_failure=Retry(3, backoff=0)),
        Step("two", role="quick", reads=["x"], writes={"y": int}),
    ],
    edges=[("one", "two")],
)
"""Two quick steps; the first fails the first try of every third run."""

ALL = [flaky, survivor, guarded, pay, gated, charge, doomed, spend, spend_timed, fragile, quick]
ALL_V2 = [flaky, survivor, guarded, pay, gated_v2, charge, doomed, spend, spend_timed, fragile]


class Charger(Agent):
    """Charges once per attempt and hands back the receipt, inside a span of its own and
    with a line in its log, as a handler that instruments itself does."""

    role = "charger"
    tools = ("charge",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        with trace.get_tracer("flows").start_as_current_span("authorise"):
            ctx.log.info("charger.charging", amount=task.inputs["amount"])
            receipt = await ctx.tools.call("charge", amount=task.inputs["amount"])
        return Result(outputs={"receipt": receipt}, rationale="charged")


class Spender(Agent):
    role = "spender"

    async def handle(self, task: Task, ctx: Context) -> Result:
        return Result(outputs={"receipt": f"spent {task.inputs['amount']}"}, rationale="spent")


class Fragile(Agent):
    """Fails its first attempt."""

    role = "fragile"

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.attempt == 1:
            raise RuntimeError("the first try always breaks")
        return Result(outputs={"x": task.attempt}, rationale="worked on a later try")


class Quick(Agent):
    role = "quick"

    async def handle(self, task: Task, ctx: Context) -> Result:
        n = task.inputs.get("n", task.inputs.get("x", 0))
        if task.step == "one" and task.attempt == 1 and n % 3 == 0:
            raise RuntimeError("every third run's first try fails")
        return Result(outputs={"x" if task.step == "one" else "y": n}, rationale="quick")


class Crasher(Agent):
    """Dies the moment it is given a step, as an agent with a fatal bug does."""

    role = "doomed"

    async def handle(self, task: Task, ctx: Context) -> Result:
        os._exit(3)
