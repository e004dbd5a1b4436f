"""`baton validate` names every problem of a workflow at once, whatever check found it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from runtime.cli import app

runner = CliRunner()


class TestOnePass:
    """A user fixes a workflow in one round, not one kind of problem per round."""

    def test_structural_and_dataflow_problems_together(self) -> None:
        """An undeclared role and a read nothing writes are both listed, in check order."""
        result = runner.invoke(
            app, ["validate", "tests.cli.invalid_workflows:structure_and_dataflow", "--json"]
        )
        assert result.exit_code == 2
        (report,) = json.loads(result.stdout)
        assert [(p["code"], p["message"], p["step"], p["key"]) for p in report["problems"]] == [
            ("unknown_role", "step 'a' names role 'writer', not declared", "a", None),
            (
                "read_before_write",
                "step 'b' reads key 'size', which is not written on every path reaching it",
                "b",
                "size",
            ),
        ]
