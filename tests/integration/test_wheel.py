"""`baton demo` from a wheel: built from the checkout, installed into a fresh venv, and run
to the end from a folder outside the checkout, as README's quickstart says it can be."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration

STEP_TIMEOUT = 300.0
"""Seconds building, making the venv or installing may take (pip reads a package index)."""
DEMO_TIMEOUT = 180.0
"""Seconds the demo may take; it ends in well under a minute."""


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str]) -> str:
    """Run a step of the install; fail with its output when it fails, never skip."""
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def outside_the_checkout() -> dict[str, str]:
    """This process's environment without what would point a child at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_the_demo_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    """The wheel carries the example, so an installed `baton demo` runs its four requests to
    the end in a folder of its own, journals there, and leaves no process behind."""
    env = outside_the_checkout()
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", dist], cwd=REPO, env=env)
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    run([venv / "bin" / "pip", "install", "--quiet", wheel], cwd=tmp_path, env=env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    demo_env = {**env, "COLUMNS": "200"}
    demo = subprocess.Popen(  # its own process group, so that every child of it can be reaped
        # Free ports: the default ones may be taken by a test running beside this one.
        [venv / "bin" / "baton", "demo", "--agents-port", "0", "--control-port", "0"],
        cwd=elsewhere,
        env=demo_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = demo.communicate(timeout=DEMO_TIMEOUT)
    finally:
        reap(demo)
    assert demo.returncode == 0, output
    assert "4 runs in" in output
    assert "0 left running" in output
    assert output.count("completed") >= 4
    assert "approved policy of run" in output
    assert (elsewhere / ".baton" / "demo.db").exists()


def reap(demo: subprocess.Popen[str]) -> None:
    """Stop the demo and every process of its group, however the test went; fail if one of
    them outlived a demo that had ended by itself."""
    ended = demo.poll() is not None
    try:
        os.killpg(demo.pid, 0)
    except ProcessLookupError:
        return
    os.killpg(demo.pid, signal.SIGTERM)
    try:
        demo.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(demo.pid, signal.SIGKILL)
        demo.wait()
    assert not ended, "the demo ended and left processes of its group running"
