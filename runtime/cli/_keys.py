"""`baton keys`: create the key directory and manage the principals a runtime admits.

Offline commands: they edit files only. A running runtime reads the table
again on SIGHUP, which each changing command reminds the user of.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from protocols import is_z85_key
from runtime.cli._console import out, print_json, usage_errors
from runtime.cli._options import DEFAULT_KEYS, JsonOption, KeysOption, command_group
from runtime.cli._sheets import Sheet, show
from runtime.security._certificates import PUBLIC_SUFFIX, SECRET_SUFFIX
from runtime.security._keys import (
    RUNTIME,
    add_principal,
    init_keys,
    load_principals,
    load_public_key,
    load_server_keys,
    remove_principal,
)
from runtime.security._principals import Principal

keys_app = command_group("keys", "Create CURVE keys and manage the principals a runtime admits.")
RELOAD_REMINDER = "a running runtime applies this on SIGHUP (kill -HUP <pid>)"


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
        Path, typer.Argument(envvar="BATON_KEYS", help="Key directory to create.")
    ] = DEFAULT_KEYS,
) -> None:
    """Create the key directory: the runtime's key pair and an `operator` principal."""
    with usage_errors():
        operator = init_keys(directory)
        runtime = load_server_keys(directory)
    _say("created keys in ", (str(directory), "bold"))
    _say("runtime public key: ", runtime.public.decode())
    _say("  certificate: ", str(directory / (RUNTIME + PUBLIC_SUFFIX)), " (copy it to every actor)")
    _show(operator, directory, generated=True)


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
    keys: KeysOption = DEFAULT_KEYS,
) -> None:
    """Add a principal, generating its key pair unless --public-key is given."""
    with usage_errors():
        key = None if public_key is None else _public_key(public_key)
        principal = add_principal(keys, name, role, public_key=key)
    _show(principal, keys, generated=key is None)
    _say(RELOAD_REMINDER)


@keys_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Principal to remove.")],
    keys: KeysOption = DEFAULT_KEYS,
) -> None:
    """Remove a principal and delete its key files."""
    with usage_errors():
        principal = remove_principal(keys, name)
    _say("removed principal ", (principal.name, "bold"))
    _say(RELOAD_REMINDER)


@keys_app.command("list")
def list_(
    keys: KeysOption = DEFAULT_KEYS,
    as_json: JsonOption = False,
) -> None:
    """List the principals: name, roles and public key."""
    with usage_errors():
        principals = load_principals(keys)
    if as_json:
        rows = [
            {"name": p.name, "roles": sorted(p.roles), "public_key": p.public_key.decode()}
            for p in principals
        ]
        print_json(rows)
        return
    sheet = Sheet("", ("name", "roles", "public key"), whole=("name", "public key"))
    for p in principals:
        sheet.add(Text(p.name), Text(", ".join(sorted(p.roles))), Text(p.public_key.decode()))
    show(out, sheet)
