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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from protocols import ClientKeys
from runtime.errors import BatonError
from runtime.security._keys import add_principal, load_client_keys, load_principals

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
    operator: ClientKeys | None
    """The operator's keys for a control client, or None when the runtime is insecure."""
    metrics: str | None = None
    """The URL of its Prometheus metrics, when it serves them."""


@dataclass(frozen=True, slots=True)
class UiProcess:
    """A `baton ui` child process and the address it printed, access token included."""

    process: subprocess.Popen[bytes]
    url: str
    port: int


class ProcessGroup:
    """Children started through it are stopped (TERM, then KILL) when it closes.

    With `keys` (a directory made by `baton keys init`) every child uses CURVE
    with those keys; without, every child runs `--insecure`.
    """

    def __init__(self, workdir: Path, *, cwd: Path | None = None, keys: Path | None = None) -> None:
        self.workdir = workdir
        self.cwd = cwd or Path.cwd()
        self.keys = keys
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

    def _spawn(
        self,
        label: str,
        args: Sequence[str],
        module: str = "runtime",
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{label}.log").open("ab")
        self._logs.append(log)
        env = {**os.environ, **(env or {})}
        env.setdefault("PYTHONUNBUFFERED", "1")
        # Tool hosts keep their ledgers with the group's other files, not in the checkout.
        env["BATON_LEDGERS"] = str(self.workdir / "ledgers")
        process = subprocess.Popen(  # noqa: S603 - runs this interpreter on a module of ours
            [sys.executable, "-m", module, *args],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads are started before spawning
        )
        self.children.append((label, process))
        return process

    def _security_args(self, principal: str | None = None) -> list[str]:
        if self.keys is None:
            return ["--insecure"]
        args = ["--keys", str(self.keys)]
        return args if principal is None else [*args, "--principal", principal]

    def enroll(self, name: str, *roles: str) -> None:
        """Add a principal with fresh keys, unless one of that name exists already.

        A runtime started before takes it in on SIGHUP (`reload`).
        """
        if self.keys is None:
            raise LaunchError(name, "this process group runs without keys")
        if name not in load_principals(self.keys):
            add_principal(self.keys, name, roles)

    def keys_of(self, principal: str) -> ClientKeys | None:
        """The keys `principal` connects with, or None when the group runs insecure."""
        return None if self.keys is None else load_client_keys(self.keys, principal)

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
        agents: str = "tcp://127.0.0.1:0",
        control: str = "tcp://127.0.0.1:0",
        env: Mapping[str, str] | None = None,
    ) -> RuntimeProcess:
        """Start `baton runtime` (on free loopback ports unless told) and wait until it listens;
        `env` adds to its environment."""
        ready = self.workdir / f"{label}.ready.json"
        ready.unlink(missing_ok=True)
        args = ["runtime", "--agents", agents, "--control", control]
        for workflow in workflows:
            args += ["--workflow", workflow]
        args += ["--store", store, "--heartbeat", str(heartbeat), "--ready-file", str(ready)]
        args += ["--log-format", "json", *self._security_args(), *extra]
        process = self._spawn(label, args, env=env)
        bound = self._wait_ready(label, process, ready, ready_timeout)
        operator = None if self.keys is None else self.keys_of("operator")
        return RuntimeProcess(
            process, bound["agents"], bound["control"], operator, bound.get("metrics")
        )

    def start_actor(
        self,
        spec: str,
        connect: str,
        *,
        label: str | None = None,
        concurrency: int = 1,
        name: str | None = None,
        principal: str | None = None,
        extra: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `baton agent SPEC` connected to `connect`; `env` adds to its environment.

        With keys, it runs as `principal` (by default the actor's role or host
        name); the runtime then names its session after the principal.
        """
        args = ["agent", spec, "--connect", connect, "--concurrency", str(concurrency)]
        if name is not None:
            args += ["--name", name]
        args += ["--log-format", "json", *self._security_args(principal), *extra]
        return self._spawn(label or principal or name or spec.rsplit(":", 1)[-1], args, env=env)

    def start_ui(
        self,
        control: str,
        *,
        principal: str = "operator",
        label: str = "ui",
        extra: Sequence[str] = (),
        ready_timeout: float = 20.0,
    ) -> UiProcess:
        """Start `baton ui` on a free loopback port acting as `principal`; wait until it serves."""
        ready = self.workdir / f"{label}.ready.json"
        ready.unlink(missing_ok=True)
        args = ["ui", "--control", control, "--port", "0", "--ready-file", str(ready)]
        args += [*self._security_args(principal), *extra]
        process = self._spawn(label, args)
        bound = self._wait_ready(label, process, ready, ready_timeout)
        return UiProcess(process, bound["url"], bound["port"])

    def _wait_ready(
        self, label: str, process: subprocess.Popen[bytes], ready: Path, limit: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while not ready.exists():
            if process.poll() is not None:
                raise LaunchError(label, f"exited with {process.returncode}: {self.log_of(label)}")
            if time.monotonic() > deadline:
                raise LaunchError(label, f"not listening after {limit:g}s")
            time.sleep(0.02)
        bound: dict[str, Any] = json.loads(ready.read_text())
        return bound

    def start_module(self, label: str, module: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start `python -m MODULE ARGS` as a child, reaped like the others (a test's peer)."""
        return self._spawn(label, args, module)

    def reload(self, runtime: RuntimeProcess) -> None:
        """Ask `runtime` to reload its principals (SIGHUP)."""
        runtime.process.send_signal(signal.SIGHUP)

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
