"""Every `baton` command's --help, read as a newcomer reads it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from runtime.cli import app

runner = CliRunner()


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each command and group under `group` (click's, typed loosely: typer may vendor click),
    with the words that call it."""
    for name, command in group.commands.items():
        yield (*path, name), command
        yield from commands(command, (*path, name)) if hasattr(command, "commands") else ()


ROOT = typer.main.get_command(app)
EVERY = [((), ROOT), *commands(ROOT)]


def help_text(words: tuple[str, ...]) -> str:
    """The help at 100 columns, its box drawing removed and its wrapped lines joined."""
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "100"}, color=False)
    assert result.exit_code == 0, result.output
    unboxed = re.sub(r"[│╭╮╰╯─]", " ", result.output)
    return " ".join(unboxed.split())


@pytest.mark.parametrize(
    ("words", "command"), EVERY, ids=[" ".join(w) or "baton" for w, _ in EVERY]
)
class TestHelp:
    """What `baton ... --help` tells about each option."""

    def test_no_sentence_ends_in_an_empty_placeholder(
        self, words: tuple[str, ...], command: Any
    ) -> None:
        """No help reads "endpoint ." or shows an empty [] where a default was meant to be."""
        text = help_text(words)
        assert not re.search(r" \.( |$)", text)
        assert "[]" not in text
        assert "()" not in text

    def test_each_environment_variable_is_named(self, words: tuple[str, ...], command: Any) -> None:
        """An option read from the environment says from which variable."""
        text = help_text(words)
        for param in command.params:
            if param.envvar:
                assert f"[env var: {param.envvar}]" in text, param.name

    def test_each_default_is_shown(self, words: tuple[str, ...], command: Any) -> None:
        """An option with a default shows it; one whose default is worked out says how."""
        text = help_text(words)
        for param in command.params:
            if getattr(param, "is_flag", False):
                continue
            if isinstance(param.show_default, str):
                assert f"[default: ({param.show_default})]" in text, param.name
            elif param.default not in (None, "", [], ()) and not param.required:
                assert f"[default: {param.default}]" in text, param.name


class TestEnvironment:
    """The variables the help names are the ones the commands read."""

    @pytest.mark.parametrize(
        ("words", "variables"),
        [
            (("runtime",), {"BATON_AGENTS", "BATON_CONTROL", "BATON_KEYS", "BATON_PEERS"}),
            (("agent",), {"BATON_AGENTS", "BATON_KEYS"}),
            (("runs",), {"BATON_CONTROL", "BATON_KEYS", "BATON_PRINCIPAL"}),
            (("approve",), {"BATON_CONTROL", "BATON_KEYS", "BATON_PRINCIPAL"}),
            (("keys", "init"), {"BATON_KEYS"}),
            (("keys", "list"), {"BATON_KEYS"}),
            (("demo",), {"BATON_DEMO_AGENTS_PORT", "BATON_DEMO_CONTROL_PORT"}),
        ],
    )
    def test_named(self, words: tuple[str, ...], variables: set[str]) -> None:
        text = help_text(words)
        assert {v for v in re.findall(r"\[env var: (\w+)\]", text)} == variables

    def test_the_ledger_folder_is_named(self) -> None:
        """`--ledger` is worked out from a folder variable, which its default names."""
        assert "$BATON_LEDGERS" in help_text(("agent",))
