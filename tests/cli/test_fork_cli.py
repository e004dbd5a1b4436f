"""`baton fork`: its options are checked before anyone is contacted."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from runtime.cli import app

runner = CliRunner()


class TestForkOptions:
    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            ("text", "--set 'text': expected KEY=JSON"),
            ("=1", "--set '=1': expected KEY=JSON"),
            ("text=[1, 2", "--set text: the value is not JSON"),
        ],
    )
    def test_a_value_that_is_not_key_equals_json_is_a_usage_error(
        self, edit: str, message: str
    ) -> None:
        """Each --set must be KEY=JSON; a bad one is named, and the command exits 2."""
        result = runner.invoke(app, ["fork", "run-1", "--at", "3", "--set", edit, "--insecure"])
        assert result.exit_code == 2
        assert message in result.output

    def test_the_version_is_required_and_positive(self) -> None:
        """Without --at, or with --at 0, the command refuses before connecting."""
        missing = runner.invoke(app, ["fork", "run-1", "--insecure"])
        zero = runner.invoke(app, ["fork", "run-1", "--at", "0", "--insecure"])
        assert (missing.exit_code, zero.exit_code) == (2, 2)
        assert "--at" in missing.output
        assert "--at" in zero.output
