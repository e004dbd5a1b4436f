"""README's five-minute workflow as written: the code it shows is the example's files, and its
commands, run as processes on free loopback ports, make the records it describes."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from protocols import TERMINAL_STATUSES, RunRecord
from runtime import ControlClient
from runtime.launch import ProcessGroup
from tests.integration.conftest import REPO, wait_for

README = REPO / "README.md"
QUICKSTART = "Your own workflow in five minutes"
PROGRAM = "From a program: `ControlClient`"
EXAMPLE = REPO / "examples" / "quickstart"
SHOWN_FILE = re.compile(
    r"^\[`(?P<path>[\w/.]+)`\]\([\w/.]+\):\n\n```python\n(?P<code>.*?)^```$", re.M | re.S
)
FENCE = re.compile(r"^```(?P<kind>\w+)\n(?P<body>.*?)^```$", re.M | re.S)
RUN_ID = re.compile(r"[0-9a-f]{11}-[0-9a-f]{10}")
COMMAND_TIMEOUT = 60.0
"""Seconds any one foreground command of the README may take."""


def section(title: str) -> str:
    """The README's text under `## title`, up to the next section."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def shown_files(text: str) -> dict[str, str]:
    """Each file a code block is introduced with (a link to it), and the block's code."""
    return {m["path"]: m["code"] for m in SHOWN_FILE.finditer(text)}


@dataclass(frozen=True)
class Command:
    """A `$ ` line of a console block (continuations joined) and the output shown under it."""

    line: str
    output: tuple[str, ...]


def commands(text: str) -> list[Command]:
    found: list[tuple[str, list[str]]] = []
    for block in FENCE.finditer(text):
        if block["kind"] != "console":
            continue
        continued = False
        for raw in block["body"].splitlines():
            if continued:
                found[-1] = (found[-1][0] + " " + raw.strip().removesuffix("\\"), found[-1][1])
            elif raw.startswith("$ "):
                found.append((raw[2:].removesuffix("\\"), []))
            elif raw.strip():
                found[-1][1].append(raw.strip())
            continued = raw.endswith("\\")
    return [Command(line, tuple(output)) for line, output in found]


def fenced(text: str, kind: str) -> str:
    blocks = [m["body"] for m in FENCE.finditer(text) if m["kind"] == kind]
    assert len(blocks) == 1, f"expected one {kind} block, found {len(blocks)}"
    return blocks[0]


class TestTheReadmeShowsTheExample:
    def test_each_code_block_is_the_file_it_names(self) -> None:
        """Every file block of the five-minute workflow and the client is that file, verbatim."""
        shown = {**shown_files(section(QUICKSTART)), **shown_files(section(PROGRAM))}
        assert shown
        for path, code in shown.items():
            assert code == (REPO / path).read_text(), f"README's {path} differs from the file"

    def test_every_file_of_the_example_is_shown(self) -> None:
        """Nothing of the example hides from the reader: each module of it is in the README."""
        shown = {**shown_files(section(QUICKSTART)), **shown_files(section(PROGRAM))}
        modules = {
            str(path.relative_to(REPO))
            for path in EXAMPLE.glob("*.py")
            if path.name != "__init__.py"
        }
        assert set(shown) == modules

    def test_its_commands_name_no_endpoint(self) -> None:
        """The five-minute commands move with BATON_AGENTS and BATON_CONTROL alone, as the
        README says, so the test below runs them unchanged on ports of its own."""
        for command in commands(section(QUICKSTART)) + commands(section(PROGRAM)):
            assert "tcp://" not in command.line
            assert "--connect" not in command.line

    def test_the_map_shown_is_the_workflows(self) -> None:
        """The Mermaid block under `baton diagram` is what the command prints."""
        done = subprocess.run(
            [sys.executable, "-m", "runtime", "diagram", "examples.quickstart.workflow:workflow"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=True,
        )
        assert done.stdout.strip() == fenced(section(QUICKSTART), "mermaid").strip()


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, distinct (all held open while they are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def reachable(control: str) -> None:
    """Return once the runtime at `control` answers (a request waits for it to bind)."""
    async with ControlClient(control, timeout=30) as client:
        await client.list_runs(limit=1)


async def records(control: str) -> list[RunRecord]:
    """Every run of the workflow, oldest first, once each has ended."""
    async with ControlClient(control) as client:
        runs = await client.list_runs(workflow="refunds")
        ended = [await client.wait_run(run.run_id, max_wait=20) for run in reversed(runs)]
    assert not any(timed_out for _, timed_out in ended), [r.status for r, _ in ended]
    return [record for record, _ in ended]


async def settled(control: str, run_id: str) -> None:
    """Return once the run waits for a person or has ended, as a reader would see before
    turning to the inbox."""
    async with ControlClient(control) as client:
        await wait_for(client, run_id, lambda r: bool(r.pending) or r.status in TERMINAL_STATUSES)


def argv(words: list[str]) -> list[str]:
    """The README's `baton ...` or `python ...` as this interpreter runs it."""
    match words:
        case ["baton", *args]:
            return [sys.executable, "-m", "runtime", *args]
        case ["python", *args]:
            return [sys.executable, *args]
        case _:
            raise AssertionError(f"README runs {words[0]!r}, which this test cannot")


@pytest.mark.integration
class TestTheFiveMinuteWorkflow:
    def test_the_readmes_commands_make_the_records_it_describes(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The runtime, tool host and agent start with the README's arguments, each its own
        process; the runs it shows complete on the routes it names, and the refund over 50.00
        waits for a person, from the CLI and from the client program alike."""
        agents, control = (f"tcp://127.0.0.1:{port}" for port in free_ports(2))
        # The README's way to move the endpoints, so that its commands run unchanged.
        monkeypatch.setenv("BATON_AGENTS", agents)
        monkeypatch.setenv("BATON_CONTROL", control)
        work = tmp_path / "work"
        work.mkdir()
        steps = commands(section(QUICKSTART)) + commands(section(PROGRAM))
        group = ProcessGroup(tmp_path, cwd=work)
        outputs: dict[str, str] = {}
        try:
            run_id = ""
            for command in steps:
                line = command.line.replace("RUN_ID", run_id)
                words = shlex.split(line)
                if words[:2] in (["baton", "runtime"], ["baton", "agent"]):
                    label = "runtime" if words[1] == "runtime" else words[2].rsplit(":")[-1]
                    group.start_module(label, "runtime", words[1:])
                    if label == "runtime":
                        anyio.run(reachable, control)
                    continue
                done = subprocess.run(
                    argv(words),
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
                for expected in command.output:
                    assert expected in done.stdout, f"{line}: {expected!r} not in\n{done.stdout}"
                if RUN_ID.fullmatch(done.stdout.strip()):
                    run_id = done.stdout.strip()
                    anyio.run(settled, control, run_id)
                outputs[line] = done.stdout
            assert run_id, "the README starts a run without --wait and uses its id"
            ended = anyio.run(records, control)
        finally:
            group.close()
            alive = [label for label, p in group.children if p.poll() is None]
            assert not alive, f"processes left running: {alive}"
        self.check_records(ended)
        client = outputs["python -m examples.quickstart.client"]
        assert "waits on refund: a refund over 50.00" in client
        assert "refund_id = rf-o-300-12900 from refund#1: paid back in full" in client

    @staticmethod
    def check_records(ended: list[RunRecord]) -> None:
        by_order = [(str(r.inputs["order_id"]), r) for r in ended]
        assert [order for order, _ in by_order] == ["o-100", "o-200", "o-300", "o-300"]
        assert all(record.status == "completed" for record in ended)
        (_, paid), (_, declined), *approved = by_order
        assert paid.data["refund_id"] == "rf-o-100-1999"
        assert paid.provenance["refund_id"].step == "refund"
        assert paid.provenance["kind"].rationale == "the reason reads as damaged"
        taken = [h.message for h in paid.history if h.event == "decision_taken"]
        assert taken == ['(kind == "damaged") and (amount > 0) -> refund']
        assert not any(h.event == "checkpoint_opened" for h in paid.history)
        assert declined.data["reply"] == "We refund only what arrived broken."
        assert declined.steps["refund"].status == "skipped"
        for _, record in approved:
            assert record.data["refund_id"] == "rf-o-300-12900"
            made = [h.message for h in record.history if h.event == "decision_made"]
            assert len(made) == 1
            assert made[0].startswith("approve: photo of the damage checked")
