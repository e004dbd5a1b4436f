"""A three-step workflow and its agents, for forks run by real processes.

Each agent appends a line per step it handles to a ledger in the directory named by
`BATON_LEDGERS` (a process group's own), so a test can tell which steps ran, for which
run, with what inputs. The reviewer holds a step whose text is "hold" until a file
named `release` appears there, so that a test can stop the runtime while it is out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio

from actors import Agent, Context, Result, Task
from runtime import Role, Step, Workflow

article = Workflow(
    "article",
    roles=[Role("drafter"), Role("reviewer"), Role("publisher")],
    inputs=["topic"],
    steps=[
        Step("draft", role="drafter", reads=["topic"], writes={"text": str}),
        Step("review", role="reviewer", reads=["text"], writes={"verdict": str}, timeout=60),
        Step("publish", role="publisher", reads=["text", "verdict"], writes={"url": str}),
    ],
    edges=[("draft", "review"), ("review", "publish")],
)


def ledger_dir() -> Path:
    return Path(os.environ["BATON_LEDGERS"])


def note(task: Task) -> None:
    """One JSON line: the run, the step, its attempt and what it read."""
    folder = ledger_dir()
    folder.mkdir(parents=True, exist_ok=True)
    line = {"run_id": task.run_id, "step": task.step, "attempt": task.attempt,
            "inputs": dict(task.inputs)}  # fmt: skip
    with (folder / "article.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


class Drafter(Agent):
    role = "drafter"

    async def handle(self, task: Task, ctx: Context) -> Result:
        note(task)
        return Result(outputs={"text": f"all about {task.inputs['topic']}"}, rationale="wrote")


class Reviewer(Agent):
    role = "reviewer"

    async def handle(self, task: Task, ctx: Context) -> Result:
        note(task)
        # The release comes from the test's process, as a file: polled, as nothing signals it.
        while task.inputs["text"] == "hold" and not (ledger_dir() / "release").exists():  # noqa: ASYNC110
            await anyio.sleep(0.05)
        return Result(outputs={"verdict": f"read: {task.inputs['text']}"}, rationale="read it")


class Publisher(Agent):
    role = "publisher"

    async def handle(self, task: Task, ctx: Context) -> Result:
        note(task)
        return Result(outputs={"url": f"/{task.inputs['verdict']}"}, rationale="published")
