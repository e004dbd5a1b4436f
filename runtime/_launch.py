"""Starting a runtime and actors as child processes, and always reaping them.

Used by `baton demo`, the benchmarks and the integration tests. Children get
SIGTERM when this process exits (Linux), so even a killed parent leaves no
orphans behind; `ProcessGroup` stops them in order on the way out.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from runtime._errors import BatonError

PR_SET_PDEATHSIG = 1


class LaunchError(BatonError):
    """A child process did not come up."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} did not start: {reason}")


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class RuntimeProcess:
    """A runtime child process and the endpoints it bound."""

    process: subprocess.Popen[bytes]
    agents: str
    control: str


class ProcessGroup:
    """Children started through it are stopped (TERM, then KILL) when it closes."""

    def __init__(self, workdir: Path, *, cwd: Path | None = None) -> None:
        self.workdir = workdir
        self.cwd = cwd or Path.cwd()
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _spawn(self, label: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{label}.log").open("ab")
        self._logs.append(log)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        process = subprocess.Popen(  # noqa: S603 - runs this interpreter on baton itself
            [sys.executable, "-m", "runtime", *args],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads are started before spawning
        )
        self.children.append((label, process))
        return process

    def log_of(self, label: str) -> str:
        path = self.workdir / f"{label}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_runtime(
        self,
        workflows: Sequence[str],
        *,
        label: str = "runtime",
        store: str = "memory://",
        heartbeat: float = 1.0,
        extra: Sequence[str] = (),
        ready_timeout: float = 20.0,
    ) -> RuntimeProcess:
        """Start `baton runtime` on free loopback ports and wait until it listens."""
        ready = self.workdir / f"{label}.ready.json"
        ready.unlink(missing_ok=True)
        args = ["runtime", "--agents", "tcp://127.0.0.1:0", "--control", "tcp://127.0.0.1:0"]
        for workflow in workflows:
            args += ["--workflow", workflow]
        args += ["--store", store, "--heartbeat", str(heartbeat), "--ready-file", str(ready)]
        args += ["--log-format", "json", *extra]
        process = self._spawn(label, args)
        deadline = time.monotonic() + ready_timeout
        while not ready.exists():
            if process.poll() is not None:
                raise LaunchError(label, f"exited with {process.returncode}: {self.log_of(label)}")
            if time.monotonic() > deadline:
                raise LaunchError(label, f"not listening after {ready_timeout:g}s")
            time.sleep(0.02)
        bound = json.loads(ready.read_text())
        return RuntimeProcess(process, bound["agents"], bound["control"])

    def start_actor(
        self,
        spec: str,
        connect: str,
        *,
        label: str | None = None,
        concurrency: int = 1,
        name: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `baton agent SPEC` connected to `connect`."""
        args = ["agent", spec, "--connect", connect, "--concurrency", str(concurrency)]
        if name is not None:
            args += ["--name", name]
        args += ["--log-format", "json"]
        return self._spawn(label or name or spec.rsplit(":", 1)[-1], args)

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; the exit status."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def close(self) -> None:
        """Stop actors first, then runtimes, so that agents do not see their runtime vanish."""
        runtimes = [p for label, p in self.children if label.startswith("runtime")]
        others = [p for label, p in self.children if not label.startswith("runtime")]
        for process in others:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in others:
            self.stop(process)
        for process in runtimes:
            self.stop(process)
        for log in self._logs:
            log.close()
        self._logs.clear()
