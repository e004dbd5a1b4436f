"""`baton demo` and `make demo`: which ports the demo's runtime takes, and moving them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from typer.testing import CliRunner

from runtime.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another socket listens on, as another runtime would."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    holder = ctx.socket(zmq.ROUTER)
    try:
        yield holder.bind_to_random_port("tcp://127.0.0.1")
    finally:
        holder.close(linger=0)
        ctx.term()


class TestTakenPorts:
    """A port in use stops the demo before it starts anything, saying which and how to move it."""

    def test_the_agent_plane(self, taken: int) -> None:
        result = runner.invoke(app, ["demo", "--agents-port", str(taken), "--control-port", "0"])
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.rstrip("\n") == (
            f"error: port {taken} on 127.0.0.1 (the demo runtime's agent plane) is in use by "
            "another process; move it with `baton demo --agents-port PORT` or "
            "`make demo AGENTS_PORT=PORT`"
        )

    def test_the_control_plane_from_the_environment(self, taken: int) -> None:
        """`BATON_DEMO_CONTROL_PORT` chooses the port as the option does."""
        result = runner.invoke(
            app, ["demo", "--agents-port", "0"], env={"BATON_DEMO_CONTROL_PORT": str(taken)}
        )
        assert result.exit_code == 2
        assert f"port {taken} on 127.0.0.1 (the demo runtime's control plane)" in result.stderr
        assert "`baton demo --control-port PORT` or `make demo CONTROL_PORT=PORT`" in result.stderr

    def test_one_port_for_both_planes(self) -> None:
        result = runner.invoke(app, ["demo", "--agents-port", "7900", "--control-port", "7900"])
        assert result.exit_code == 2
        assert "both 7900: each plane needs its own" in result.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
class TestMakefile:
    """`make demo` names its ports and passes what it is given."""

    @pytest.mark.parametrize(
        ("variables", "ports"),
        [
            ([], "--agents-port 7710 --control-port 7711"),
            (["AGENTS_PORT=7810", "CONTROL_PORT=7811"], "--agents-port 7810 --control-port 7811"),
            (["UI=1"], "--agents-port 7710 --control-port 7711 --ui"),
        ],
    )
    def test_ports_reach_the_command(self, variables: list[str], ports: str) -> None:
        # Run as from a shell, though `make test` may be the make this test runs under.
        environment = {
            k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
        }
        planned = subprocess.run(
            ["make", "--no-print-directory", "--dry-run", "--always-make", "demo", *variables],
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        assert planned.stdout.splitlines()[-1] == f".venv/bin/baton demo {ports}"
