"""`baton keys`: create the key directory and manage the principals a runtime admits.

Offline commands: they edit files only. A running runtime reads the table
again on SIGHUP, which each changing command reminds the user of.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from protocols import is_z85_key
from runtime.errors import BatonError
from runtime.security._certificates import PUBLIC_SUFFIX, SECRET_SUFFIX
from runtime.security._keys import (
    RUNTIME,
    add_principal,
    init_keys,
    keys_dir,
    load_principals,
    load_public_key,
    load_server_keys,
    remove_principal,
)
from runtime.security._principals import Principal

keys_app = typer.Typer(
    name="keys",
    help="Create CURVE keys and manage the principals a runtime admits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

EXIT_USAGE = 2
RELOAD_REMINDER = "a running runtime applies this on SIGHUP (kill -HUP <pid>)"

KeysOption = Annotated[
    Path | None,
    typer.Option("--keys", help="Key directory [default: $BATON_KEYS or .baton/keys]."),
]


def _fail(message: str) -> typer.Exit:
    # Z85 keys and msgspec paths hold brackets, which rich would read as markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def _say(*parts: str | tuple[str, str]) -> None:
    """Print one line: plain strings and (text, style) pairs, never read as markup."""
    out.print(Text.assemble(*parts), soft_wrap=True, highlight=False)


def _show(principal: Principal, directory: Path, *, generated: bool) -> None:
    _say("principal ", (principal.name, "bold"))
    _say("  roles:      ", ", ".join(sorted(principal.roles)))
    _say("  public key: ", principal.public_key.decode())
    if generated:
        secret = directory / (principal.name + SECRET_SUFFIX)
        _say("  secret:     ", str(secret), f" (give it to {principal.name} only, as mode 0600)")


@keys_app.command("init")
def init(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Key directory to create [default: $BATON_KEYS or .baton/keys]."),
    ] = None,
) -> None:
    """Create the key directory: the runtime's key pair and an `operator` principal."""
    chosen = keys_dir(directory)
    try:
        operator = init_keys(chosen)
        runtime = load_server_keys(chosen)
    except BatonError as exc:
        raise _fail(str(exc)) from None
    _say("created keys in ", (str(chosen), "bold"))
    _say("runtime public key: ", runtime.public.decode())
    _say("  certificate: ", str(chosen / (RUNTIME + PUBLIC_SUFFIX)), " (copy it to every actor)")
    _show(operator, chosen, generated=True)


def _public_key(text: str) -> bytes:
    """`--public-key`: a Z85 key, or @FILE naming a public certificate or a bare key."""
    key = text.encode("utf-8", "backslashreplace")
    if text.startswith("@"):
        path = Path(text[1:])
        # "@" is a Z85 character, so a key may begin with it: the text is a
        # file name only when such a file exists or the text cannot be a key.
        if path.exists() or len(key) != 40 or not is_z85_key(key):
            return load_public_key(path)
    return key


@keys_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Principal name; also names its key files.")],
    role: Annotated[
        list[str],
        typer.Option(
            "--role",
            help="operator, viewer, tools:HOST, approver:GROUP or an agent role; repeatable.",
        ),
    ],
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            help="Record this Z85 key (or @FILE) instead of generating a key pair here.",
        ),
    ] = None,
    keys: KeysOption = None,
) -> None:
    """Add a principal, generating its key pair unless --public-key is given."""
    directory = keys_dir(keys)
    try:
        key = None if public_key is None else _public_key(public_key)
        principal = add_principal(directory, name, role, public_key=key)
    except BatonError as exc:
        raise _fail(str(exc)) from None
    _show(principal, directory, generated=key is None)
    _say(RELOAD_REMINDER)


@keys_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Principal to remove.")],
    keys: KeysOption = None,
) -> None:
    """Remove a principal and delete its key files."""
    directory = keys_dir(keys)
    try:
        principal = remove_principal(directory, name)
    except BatonError as exc:
        raise _fail(str(exc)) from None
    _say("removed principal ", (principal.name, "bold"))
    _say(RELOAD_REMINDER)


@keys_app.command("list")
def list_(
    keys: KeysOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the principals: name, roles and public key."""
    try:
        principals = load_principals(keys_dir(keys))
    except BatonError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        rows = [
            {"name": p.name, "roles": sorted(p.roles), "public_key": p.public_key.decode()}
            for p in principals
        ]
        out.print_json(msgspec.json.encode(rows).decode(), highlight=False)
        return
    table = Table("name", "roles")
    table.add_column("public key", no_wrap=True)
    for p in principals:
        table.add_row(Text(p.name), Text(", ".join(sorted(p.roles))), Text(p.public_key.decode()))
    out.print(table)
