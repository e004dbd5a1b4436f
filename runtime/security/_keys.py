"""The key directory: CURVE certificates and the principals table, on disk.

Layout of a key directory (created 0700):

- `runtime.key`, `runtime.key_secret`: the runtime's public and secret certificates;
- `principals.json`: who the runtime admits, with their public keys and roles;
- `NAME.key`, `NAME.key_secret`: the certificates of each principal whose key
  pair was generated here (a principal whose secret stays on its own machine
  has only its public key recorded in `principals.json`).

The certificates themselves are written and read by `runtime.security._certificates`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import zmq
import zmq.auth

from protocols import ClientKeys, ServerKeys
from runtime.security._certificates import (
    PUBLIC_SUFFIX,
    KeysInvalid,
    check_key,
    discard_certificates,
    load_certificate,
    load_secret,
    read_bounded,
    remove_certificates,
    secret_path,
    write_atomically,
    write_certificates,
)
from runtime.security._principals import (
    APPROVER_PREFIX,
    OPERATOR,
    Principal,
    Principals,
    PrincipalsInvalid,
    check_name,
    check_public_key,
    check_role,
)

DEFAULT_KEYS_DIR = Path(".baton/keys")
RUNTIME = "runtime"
PRINCIPALS_FILE = "principals.json"

MAX_PRINCIPALS = 10_000
MAX_ROLES = 64
MAX_PRINCIPALS_BYTES = 16 * 1024 * 1024
"""Largest `principals.json` read: far above any real table, so that a stray file is not."""


class _Entry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(max_length=64)]
    public_key: Annotated[str, msgspec.Meta(max_length=40)]
    roles: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=len(APPROVER_PREFIX) + 128)]],
        msgspec.Meta(max_length=MAX_ROLES),
    ]


class _PrincipalsFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    format: Literal[1]
    principals: Annotated[list[_Entry], msgspec.Meta(max_length=MAX_PRINCIPALS)]


_decoder = msgspec.json.Decoder(_PrincipalsFile)


def keys_dir(explicit: Path | None) -> Path:
    """The key directory to use: `explicit`, else `$BATON_KEYS` when set, else `.baton/keys`."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get("BATON_KEYS")
    return Path(from_env) if from_env else DEFAULT_KEYS_DIR


def init_keys(directory: Path) -> Principal:
    """Create a key directory: the runtime's key pair and an `operator` principal.

    Refuses a directory that already holds a runtime secret, a principals table
    or an operator secret: keys are never overwritten. The directory is created
    0700; one that exists keeps its mode. Returns the operator.
    """
    for existing in (secret_path(directory, RUNTIME), directory / PRINCIPALS_FILE):
        if existing.exists():
            raise KeysInvalid(existing, "already exists; keys are never overwritten")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeysInvalid(directory, f"cannot create the directory: {exc.strerror}") from None
    created: list[str] = []
    try:
        operator = _generate(directory, OPERATOR, frozenset({OPERATOR}))
        created.append(OPERATOR)
        public, secret = zmq.curve_keypair()
        write_certificates(directory, RUNTIME, public, secret)
        created.append(RUNTIME)
        # The table last: its presence marks a complete directory.
        _write_principals(directory, Principals([operator]))
    except BaseException:
        for name in created:
            discard_certificates(directory, name)
        raise
    return operator


def add_principal(
    directory: Path, name: str, roles: Sequence[str], *, public_key: bytes | None = None
) -> Principal:
    """Add a principal to the table in `directory` and return it.

    Without `public_key`, a key pair is generated and written as `NAME.key` and
    `NAME.key_secret`, to hand to whoever acts as the principal. With one, only
    the public key is recorded: the secret stays on the principal's machine.
    A bad name or key raises `PrincipalsInvalid`, a bad role `RoleInvalid`.
    """
    check_name(name)
    for role in roles:
        check_role(role)
    if not roles:
        raise PrincipalsInvalid(name, "give at least one role")
    if public_key is not None:
        check_public_key(name, public_key)
    with _exclusive(directory):
        existing = load_principals(directory)
        if name in existing:
            raise PrincipalsInvalid(name, "already exists; remove it first to replace it")
        if public_key is not None:
            added = Principal(name, public_key, frozenset(roles))
            _write_principals(directory, Principals([*existing, added]))
            return added
        added = _generate(directory, name, frozenset(roles))
        try:
            _write_principals(directory, Principals([*existing, added]))
        except BaseException:
            discard_certificates(directory, name)
            raise
        return added


def remove_principal(directory: Path, name: str) -> Principal:
    """Remove principal `name` from the table and delete its certificates; return it."""
    with _exclusive(directory):
        existing = load_principals(directory)
        removed = existing.by_name(name)
        if removed is None:
            raise KeysInvalid(directory / PRINCIPALS_FILE, f"no principal named {name!r}")
        # The table first: once it is written the key is no longer admitted,
        # even if deleting the certificates then fails.
        _write_principals(directory, Principals(p for p in existing if p.name != name))
        remove_certificates(directory, name)
        return removed


def load_principals(directory: Path) -> Principals:
    """Read and check `principals.json` in `directory`; any problem raises `KeysInvalid`."""
    path = directory / PRINCIPALS_FILE
    raw = read_bounded(path, _no_table(directory).reason, MAX_PRINCIPALS_BYTES)
    try:
        decoded = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise KeysInvalid(path, f"not a principals table: {exc}") from None
    except msgspec.DecodeError as exc:
        raise KeysInvalid(path, f"not JSON: {exc}") from None
    try:
        return Principals(
            Principal(
                entry.name,
                # A key that is not ASCII is refused as not Z85, not as a crash.
                entry.public_key.encode("utf-8", "backslashreplace"),
                frozenset(entry.roles),
            )
            for entry in decoded.principals
        )
    except PrincipalsInvalid as exc:
        raise KeysInvalid(path, str(exc)) from None


def load_server_keys(directory: Path) -> ServerKeys:
    """Read the runtime's key pair from `runtime.key_secret` in `directory`."""
    path = secret_path(directory, RUNTIME)
    public, secret = load_secret(
        path, f"no runtime key in {directory}: run `baton keys init {directory}`"
    )
    return ServerKeys(public=public, secret=secret)


def load_client_keys(directory: Path, principal: str) -> ClientKeys:
    """Read principal `principal`'s key pair and the runtime's public key from `directory`."""
    try:
        check_name(principal)
    except PrincipalsInvalid as exc:
        raise KeysInvalid(directory, str(exc)) from None
    public, secret = load_secret(
        secret_path(directory, principal),
        f"no secret key for principal {principal!r}: create it with "
        f"`baton keys add {principal} --role ROLE --keys {directory}`",
    )
    server = load_public_key(
        directory / (RUNTIME + PUBLIC_SUFFIX),
        f"no runtime public key: copy {RUNTIME}{PUBLIC_SUFFIX} from the runtime's key "
        f"directory, or run `baton keys init {directory}`",
    )
    return ClientKeys(principal=principal, public=public, secret=secret, server=server)


def load_public_key(path: Path, missing: str = "no such file") -> bytes:
    """Read a public key from a ZPL certificate, or from a file holding one bare Z85 line.

    A secret certificate is refused: whoever passes it around meant the public one.
    `missing` is the reason given when the file does not exist.
    """
    raw = read_bounded(path, missing)
    if b"public-key" not in raw:
        key = raw.strip()
        check_key(path, "public key", key)
        return key
    public, secret = load_certificate(path)
    if secret is not None:
        raise KeysInvalid(
            path, "holds a secret key, which stays with its owner: use the public certificate"
        )
    check_key(path, "public key", public)
    return public


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold the directory's lock, so that two concurrent edits of the table both land."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        raise _no_table(directory) from None
    except OSError as exc:
        raise KeysInvalid(directory, f"cannot open: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _no_table(directory: Path) -> KeysInvalid:
    return KeysInvalid(
        directory / PRINCIPALS_FILE, f"no {PRINCIPALS_FILE}: run `baton keys init {directory}`"
    )


def _generate(directory: Path, name: str, roles: frozenset[str]) -> Principal:
    public, secret = zmq.curve_keypair()
    write_certificates(directory, name, public, secret)
    return Principal(name, public, roles)


def _write_principals(directory: Path, principals: Principals) -> None:
    table = _PrincipalsFile(
        format=1,
        principals=[
            _Entry(p.name, p.public_key.decode("ascii"), sorted(p.roles)) for p in principals
        ],
    )
    encoded = msgspec.json.format(msgspec.json.encode(table), indent=2) + b"\n"
    write_atomically(directory / PRINCIPALS_FILE, encoded)
