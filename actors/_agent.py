"""The agent base class: a role, a tool allowlist and one async handler."""

from __future__ import annotations

from typing import ClassVar

from actors._context import Context
from actors._task import Result, Task


class Agent:
    """Subclass, set `role` (and `tools`, the allowlist), and override `handle`.

    One instance serves every task of its process, possibly several at once
    when the worker runs with `concurrency > 1`; keep per-task state in locals.
    """

    role: ClassVar[str]
    """The role this agent registers for; steps are dispatched by role."""

    tools: ClassVar[tuple[str, ...]] = ()
    """Every tool this agent may ever call; the runtime refuses any other."""

    async def setup(self) -> None:
        """Run once before the worker connects; open clients and load models here."""

    async def teardown(self) -> None:
        """Run once after the worker has stopped, even when it stopped on an error."""

    async def handle(self, task: Task, ctx: Context) -> Result:
        """Run one task and return its outputs; raise to fail the attempt."""
        raise NotImplementedError(f"{type(self).__qualname__} does not override handle()")
