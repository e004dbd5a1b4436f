"""`baton ui`: serve the pages beside a runtime, acting as one principal."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from protocols import is_loopback
from runtime.cli._connection import Connection, client_keys, connected
from runtime.cli._console import err, fail, out
from runtime.security._certificates import KeysInvalid
from runtime.security._keys import load_principals

if TYPE_CHECKING:
    from runtime.ui import UiSettings

DEFAULT_UI_PORT = 7720


@connected
def ui(
    host: Annotated[
        str,
        typer.Option(help="The address to serve on; other than loopback: --allow-remote."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="The port to serve on (0: any free port).")
    ] = DEFAULT_UI_PORT,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Serve on an address other machines reach (put TLS in front of it).",
        ),
    ] = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, offer no action.")
    ] = False,
    root_path: Annotated[
        str, typer.Option(help="The sub-path a proxy serves the pages under, e.g. /baton.")
    ] = "",
    ready_file: Annotated[
        Path | None,
        typer.Option(help="Write the address (with its token) here as JSON once serving."),
    ] = None,
    *,
    connection: Connection,
) -> None:
    """Serve the pages: runs, a run's graph and record, the inbox, workflows and agents.

    Prints the address to open, with an access token a browser trades for a session.
    Every read and action goes to the runtime as --principal, which the runtime checks.
    """
    try:
        import uvicorn  # noqa: PLC0415 - the ui extra

        from runtime.ui import UiSettings, create_app, new_token  # noqa: PLC0415 - the ui extra
    except ImportError:
        raise fail("baton ui needs its extra: pip install 'baton-runtime[ui]'") from None
    if not allow_remote and not is_loopback(f"tcp://{_bracketed(host)}:1"):
        raise fail(f"--host {host}: not a loopback address; pass --allow-remote to serve it")
    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        raise fail(f"--root-path {root_path!r}: expected a path such as /baton (no trailing /)")
    keys = client_keys(
        connection.keys, connection.principal, connection.insecure, connection.control, "--control"
    )
    settings = UiSettings(
        control=connection.control,
        principal=connection.principal,
        token=new_token(),
        keys=keys,
        roles=_roles(connection),
        read_only=read_only,
    )
    listener = _listen(host, port)
    bound = listener.getsockname()[1]
    url = f"http://{_bracketed(host)}:{bound}{root_path}/?token={settings.token}"
    config = uvicorn.Config(
        create_app(settings),
        root_path=root_path,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    out.print(f"baton ui: open [bold]{url}[/bold]", soft_wrap=True, highlight=False)
    out.print(
        f"acting as {connection.principal} on {connection.control}"
        + (" (read-only)" if read_only else ""),
        highlight=False,
    )
    if ready_file is not None:
        _write_ready(ready_file, url, bound, settings)
    anyio.run(server.serve, [listener])


def _roles(connection: Connection) -> frozenset[str]:
    """The principal's roles as the key directory lists them, to leave out what it may not do;
    none when the table is not there (the runtime decides regardless)."""
    if connection.insecure:
        return frozenset()
    try:
        table = load_principals(connection.keys)
    except KeysInvalid as exc:
        err.print(f"[yellow]note:[/yellow] {exc}: every button is shown, the runtime decides")
        return frozenset()
    principal = table.by_name(connection.principal)
    return frozenset() if principal is None else principal.roles


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise fail(f"cannot serve on {host}:{port}: {exc}") from None
    listener.listen(128)
    listener.set_inheritable(True)
    return listener


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _write_ready(path: Path, url: str, port: int, settings: UiSettings) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": url, "port": port, "principal": settings.principal}))
    temporary.chmod(0o600)
    temporary.replace(path)
