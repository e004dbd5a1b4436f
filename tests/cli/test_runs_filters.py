"""`baton runs --since/--key/--value`: which runs it lists, and the filters it refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from runtime import ControlClient
from runtime.cli import app
from runtime.launch import ProcessGroup, RuntimeProcess

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[RuntimeProcess]:
    """An insecure runtime on loopback with the integration flows loaded, and no agents."""
    with ProcessGroup(tmp_path, cwd=REPO) as group:
        yield group.start_runtime(["tests.integration.flows:ALL"])


class TestRefusedFilters:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--value", "3"], "error: --value compares the value of a key: give --key too"),
            (
                ["--since", "3 weeks"],
                "error: --since '3 weeks': expected a number and a unit, e.g. 30m, 12h or 7d",
            ),
        ],
    )
    def test_a_filter_that_cannot_be_applied_is_a_usage_error(
        self, args: list[str], message: str
    ) -> None:
        """Refused before any runtime is asked."""
        result = runner.invoke(app, ["runs", *args, "--insecure", "--control", "tcp://127.0.0.1:9"])
        assert result.exit_code == 2
        assert result.stderr.rstrip("\n") == message


@pytest.mark.integration
class TestFilters:
    def test_key_value_and_since_choose_the_runs_listed(self, runtime: RuntimeProcess) -> None:
        """Only the runs started within the last hour whose input `n` reads 2 are listed."""

        async def start() -> list[str]:
            async with ControlClient(runtime.control) as client:
                return [await client.start_run("flaky", {"n": n}) for n in (1, 2, 3, 2)]

        started = anyio.run(start)
        base = ["runs", "--insecure", "--control", runtime.control, "--json"]
        result = runner.invoke(app, [*base, "--since", "1h", "--key", "n", "--value", "2"])
        assert result.exit_code == 0, result.output
        assert [r["run_id"] for r in json.loads(result.stdout)] == [started[3], started[1]]
        result = runner.invoke(app, [*base, "--key", "nothing"])
        assert (result.exit_code, json.loads(result.stdout)) == (0, [])
