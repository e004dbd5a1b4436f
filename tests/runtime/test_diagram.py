"""The Mermaid export: the map of a workflow before any agent runs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from runtime.workflow._conditions import key
from runtime.workflow._definition import Decision, Role, Route, Step, Workflow
from runtime.workflow._diagram import mermaid
from runtime.workflow._graph import Graph, compile_workflow
from runtime.workflow._policies import (
    FailurePolicy,
    Goto,
    Halt,
    PolicyTable,
    ProceedWithFlag,
    Retry,
)


def clerk(name: str, **options: Any) -> Step:
    return Step(name, role="clerk", **options)


def claims() -> Graph:
    return compile_workflow(
        Workflow(
            "claims",
            roles=[Role("clerk", tools=["search", "mail"])],
            inputs=["note"],
            steps=[
                clerk(
                    "in.take",
                    writes=["amount"],
                    tools=["search", "mail"],
                    on_failure=Retry(3, then=ProceedWithFlag({"amount": 0})),
                ),
                Decision(
                    "big?",
                    [
                        Route(key("amount") > 500, "re:view"),
                        Route(key("note") == 'say "hi"', ["a-1", "a-2"]),
                    ],
                    default="low",
                ),
                clerk("re:view", on_failure={"timeout": Goto("fallback"), "*": Halt()}),
                clerk("fallback"),
                clerk("a-1"),
                clerk("a-2"),
                clerk("low", writes={"ok": bool}),
                Decision("again", [Route(key("ok") == False, "low", limit=3)], default="end"),  # noqa: E712
                clerk("end"),
            ],
            edges=[
                ("in.take", "big?"),
                ("re:view", "end"),
                ("a-1", "end"),
                ("a-2", "end"),
                ("low", "again"),
            ],
        )
    )


EXPECTED = """\
flowchart TD
    n0["<b>in.take</b><br/>role: clerk<br/>tools: search, mail<br/>on failure: retry x3 then flag"]
    n1{"big?"}
    n2["<b>re:view</b><br/>role: clerk<br/>timeout: goto fallback; other: halt"]
    n3["<b>fallback</b><br/>role: clerk"]
    n4["<b>a-1</b><br/>role: clerk"]
    n5["<b>a-2</b><br/>role: clerk"]
    n6["<b>low</b><br/>role: clerk"]
    n7{"again"}
    n8["<b>end</b><br/>role: clerk"]
    n0 --> n1
    n1 -->|"amount #gt; 500"| n2
    n1 -->|"note == #quot;say \\#quot;hi\\#quot;#quot;"| n4
    n1 -->|"note == #quot;say \\#quot;hi\\#quot;#quot;"| n5
    n1 -->|"default"| n6
    n2 --> n8
    n2 -.->|"on timeout: fallback"| n3
    n4 --> n8
    n5 --> n8
    n6 --> n7
    n7 -.->|"ok == false (max 3)"| n6
    n7 -->|"default"| n8
"""


class TestMermaid:
    """Steps, decisions, routes, loops and fallbacks are drawn as a Mermaid flowchart."""

    def test_whole_diagram(self) -> None:
        """The diagram of a workflow with every kind of edge is exactly this text."""
        assert mermaid(claims()) == EXPECTED

    def test_deterministic(self) -> None:
        """Two compilations of the same definition draw the same text."""
        assert mermaid(claims()) == mermaid(claims())

    def test_ids_are_mermaid_safe(self) -> None:
        """Node ids are `n<i>` whatever characters the step names use."""
        ids = re.findall(r"^    (\S+?)[\[{]", mermaid(claims()), flags=re.MULTILINE)
        assert ids == [f"n{i}" for i in range(9)]

    @pytest.mark.parametrize(
        ("policy", "label"),
        [
            (Halt(), "on failure: halt"),
            (ProceedWithFlag({"x": 0}), "on failure: flag"),
            (Retry(2, then=Halt()), "on failure: retry x2 then halt"),
            (
                {"error": Retry(4), "*": ProceedWithFlag({"x": 0})},
                "error: retry x4 then halt; other: flag",
            ),
        ],
        ids=["halt", "flag", "retry", "table"],
    )
    def test_policy_in_label(self, policy: FailurePolicy | PolicyTable, label: str) -> None:
        """A step's own failure policy is summed up in its label."""
        graph = compile_workflow(
            Workflow(
                "one",
                roles=[Role("clerk")],
                steps=[clerk("s", writes=["x"], on_failure=policy)],
            )
        )
        assert mermaid(graph) == f'flowchart TD\n    n0["<b>s</b><br/>role: clerk<br/>{label}"]\n'

    def test_fallback_for_every_kind(self) -> None:
        """A fallback taken on any failure says so."""
        graph = compile_workflow(
            Workflow(
                "one",
                roles=[Role("clerk")],
                steps=[clerk("s", on_failure=Retry(2, then=Goto("t"))), clerk("t")],
            )
        )
        assert mermaid(graph).splitlines()[-1] == '    n0 -.->|"on any: fallback"| n1'

    @pytest.mark.parametrize(
        ("text", "escaped"),
        [
            ('a "b"', "a #quot;b#quot;"),
            ("x < y > z", "x #lt; y #gt; z"),
            ("#1 & | `", "#35;1 #amp; #124; #96;"),
        ],
    )
    def test_labels_are_escaped(self, text: str, escaped: str) -> None:
        """Characters Mermaid would read as syntax become entity codes."""
        graph = compile_workflow(Workflow("one", roles=[Role("clerk")], steps=[clerk(text)]))
        assert mermaid(graph) == f'flowchart TD\n    n0["<b>{escaped}</b><br/>role: clerk"]\n'
