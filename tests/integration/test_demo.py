"""`baton demo` end to end on the ports it is given, which it names before anything else."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.integration]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_demo_runs_on_the_ports_it_names(tmp_path: Path) -> None:
    """The first line names both endpoints; the runtime binds exactly those; every run ends."""
    agents, control = free_port(), free_port()
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            **os.environ,
            "BATON_DEMO_AGENTS_PORT": str(agents),
            "BATON_DEMO_CONTROL_PORT": str(control),
            "COLUMNS": "200",
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"ports: the runtime's agent plane on tcp://127.0.0.1:{agents}, its control plane on "
        f"tcp://127.0.0.1:{control} (move them with --agents-port and --control-port, or "
        "make demo AGENTS_PORT=... CONTROL_PORT=...)"
    )
    (runtime,) = [line for line in lines if line.startswith("runtime pid ")]
    assert runtime.endswith(f": agents tcp://127.0.0.1:{agents}, control tcp://127.0.0.1:{control}")
    assert (tmp_path / ".baton" / "demo.db").exists()
    # Each record names where its request came from: the run's start, by the operator.
    inputs = [line.strip() for line in lines if line.strip().startswith("request ")]
    assert len(inputs) == 4
    assert set(inputs) == {"request      input: given by operator when the run started"}


def test_the_cluster_demo_shows_a_killed_runtimes_runs_taken_over(tmp_path: Path) -> None:
    """`baton demo --cluster 2` starts a PostgreSQL of its own and two runtimes, kills one
    with runs in flight, and every run still completes through the other."""
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "demo", "--cluster", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    # Exit status 0: every run completed and no process was left running.
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("when (UTC)"))
    taken = lines[header + 1].split("\t")
    assert int(taken[3]) > 0, f"the killed runtime held no run in flight: {taken}"
    assert "12 runs on 2 runtimes" in done.stdout


def test_the_demo_with_pages_serves_a_waiting_refund_until_interrupted(tmp_path: Path) -> None:
    """`baton demo --ui` keeps its processes up, leaves a refund waiting, and serves the pages
    as an approver, whose inbox offers it; SIGINT stops the pages and every process."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "runtime", "demo", "--ui", "--agents-port", "0",
         "--control-port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        url = ""
        for line in demo.stdout:
            if line.startswith("open http://"):
                url = line.split()[1]
                break
        assert url, "the demo printed no address"
        base = url.split("/?")[0]
        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            assert browser.get(url).status_code == 200
            inbox = browser.get(f"{base}/inbox").text
        assert 'aria-label="Approve policy of run ' in inbox
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) in (0, 1)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/runs", timeout=2)
