"""How a command reaches a runtime and as whom: the connection options, read once.

Every control-plane command takes the same `--control`, `--keys`,
`--principal` and `--insecure`. `connected` gives a command those options in
place of its `connection` parameter, and `Connection.call` is the one place a
command talks to the runtime, so that a refusal or a silent runtime reads the
same from each of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
import msgspec

from protocols import MAX_ENDPOINT, MAX_PEERS, ClientKeys, Endpoint, is_loopback
from runtime.cli._console import fail
from runtime.cli._options import (
    DEFAULT_CONTROL,
    DEFAULT_KEYS,
    DEFAULT_PRINCIPAL,
    ControlOption,
    InsecureOption,
    KeysOption,
    PrincipalOption,
    option,
    with_options,
)
from runtime.client._client import ControlClient, ControlRefused, RuntimeUnavailable
from runtime.security._certificates import KeysInvalid
from runtime.security._keys import load_client_keys

T = TypeVar("T")


def require_loopback(endpoint: str, flag: str) -> None:
    """Plain-text planes stay on this machine: --insecure is refused anywhere else."""
    if not is_loopback(endpoint):
        raise fail(
            f"{flag} {endpoint}: --insecure runs only on loopback or ipc:// endpoints "
            "(use keys to serve other hosts)"
        )


def endpoint_list(values: Sequence[str], flag: str, *, insecure: bool) -> tuple[str, ...]:
    """The endpoints a repeatable option names, each occurrence possibly a comma-separated
    list, in order and without repeats; a clear exit if one is not an endpoint."""
    endpoints = tuple(
        dict.fromkeys(part.strip() for value in values for part in value.split(",") if part.strip())
    )
    if len(endpoints) > MAX_PEERS:
        raise fail(f"{flag}: {len(endpoints)} endpoints; at most {MAX_PEERS}")
    for endpoint in endpoints:
        try:
            msgspec.convert(endpoint, Endpoint)
        except msgspec.ValidationError:
            raise fail(
                f"{flag} {endpoint}: not an endpoint: expected TRANSPORT://ADDRESS "
                f"(tcp://127.0.0.1:7710), at most {MAX_ENDPOINT} characters"
            ) from None
        if insecure:
            require_loopback(endpoint, flag)
    return endpoints


def client_keys(
    directory: Path, principal: str, insecure: bool, endpoint: str, flag: str
) -> ClientKeys | None:
    """The keys a client or actor connects with, or None for an insecure runtime."""
    if insecure:
        require_loopback(endpoint, flag)
        return None
    try:
        return load_client_keys(directory, principal)
    except KeysInvalid as exc:
        raise fail(
            f"{exc}\n(add the principal with `baton keys add {principal} --role ROLE --keys "
            f"{directory}`, or pass --insecure for a runtime without CURVE)"
        ) from None


@dataclass(frozen=True, slots=True)
class Connection:
    """The runtime's control plane and the principal a command acts as."""

    control: str
    keys: Path
    principal: str
    insecure: bool

    def call(self, request: Callable[[ControlClient], Awaitable[T]]) -> T:
        """Connect, make `request`, disconnect: its answer, or an exit saying why not."""
        credentials = client_keys(
            self.keys, self.principal, self.insecure, self.control, "--control"
        )

        async def ask() -> T:
            async with ControlClient(self.control, keys=credentials) as client:
                return await request(client)

        try:
            return anyio.run(ask)
        except ControlRefused as exc:
            raise fail(exc.message if exc.code != "unknown_run" else str(exc)) from None
        except RuntimeUnavailable as exc:
            raise fail(str(exc)) from None


CONNECTION_OPTIONS = (
    option("control", ControlOption, DEFAULT_CONTROL),
    option("keys", KeysOption, DEFAULT_KEYS),
    option("principal", PrincipalOption, DEFAULT_PRINCIPAL),
    option("insecure", InsecureOption, False),
)
"""The options a `Connection` is made of, in the order of its fields."""
connected = with_options(CONNECTION_OPTIONS, Connection, into="connection")
"""A command taking the connection options, handed to it as its `connection` argument."""
