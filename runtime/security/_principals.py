"""Who may do what: principals, the roles they hold, and the table the runtime admits.

A principal is a name, a CURVE public key and a set of roles. The key is the
identity (CURVE proves possession of its secret); the name is for people,
logs and key file names. Roles are plain strings with a small grammar:

- `operator`: may start, halt and inspect runs on the control plane;
- `viewer`: may read runs on the control plane;
- `tools:HOST`: may serve the tool host named HOST on the agent plane;
- `approver:GROUP`: may approve the gates of group GROUP;
- any other name: an agent role it may register as on the agent plane.

Pure: no files, no sockets. `runtime.security._keys` reads and writes the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from protocols import WELL_KNOWN_TEST_KEYS, is_z85_key
from runtime.errors import BatonError

OPERATOR = "operator"
VIEWER = "viewer"
TOOLS_PREFIX = "tools:"
APPROVER_PREFIX = "approver:"

RESERVED_NAME = "runtime"
"""The runtime's own key files are `runtime.key*`, so no principal may take the name."""

_PART = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_PART_RULE = "1-128 letters, digits, '_', '.' or '-'"
_NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
_KEY_LENGTH = 40


class RoleInvalid(BatonError):
    """A role does not follow the role grammar."""

    def __init__(self, role: str, reason: str) -> None:
        self.role = role
        self.reason = reason
        super().__init__(f"role {role!r} is invalid: {reason}")


class PrincipalsInvalid(BatonError):
    """A principal cannot be admitted: bad name, key or roles, or it clashes with another."""

    def __init__(self, principal: str, reason: str) -> None:
        self.principal = principal
        self.reason = reason
        super().__init__(f"principal {principal!r}: {reason}")


def check_role(role: str) -> str:
    """Return `role` when it follows the role grammar; raise `RoleInvalid` otherwise."""
    if role in (OPERATOR, VIEWER):
        return role
    for prefix, what in ((TOOLS_PREFIX, "HOST"), (APPROVER_PREFIX, "GROUP")):
        if role.startswith(prefix):
            if _PART.fullmatch(role.removeprefix(prefix)) is None:
                raise RoleInvalid(role, f"{prefix}{what} needs a {what} of {_PART_RULE}")
            return role
    if _PART.fullmatch(role) is None:
        raise RoleInvalid(
            role,
            f"a role is {OPERATOR}, {VIEWER}, {TOOLS_PREFIX}HOST, {APPROVER_PREFIX}GROUP "
            f"or an agent role of {_PART_RULE}",
        )
    return role


def check_name(name: str) -> str:
    """Return `name` when it may name a principal; raise `PrincipalsInvalid` otherwise.

    Names become file names (`NAME.key`), hence the narrow alphabet and the
    leading letter or digit (no hidden files, no `..`). `runtime` is refused in
    any case, since on a case-insensitive file system `Runtime.key` is
    `runtime.key`.
    """
    if _NAME.fullmatch(name) is None:
        raise PrincipalsInvalid(name, f"a name is {_NAME_RULE}")
    if name.lower() == RESERVED_NAME:
        raise PrincipalsInvalid(name, f"{RESERVED_NAME!r} names the runtime's own key")
    return name


def check_public_key(name: str, key: bytes) -> bytes:
    """Return `key` when it may identify principal `name`; raise `PrincipalsInvalid` otherwise."""
    # The length test is not redundant: `$` in the Z85 pattern also matches
    # before a trailing newline, which a key read from a file may carry.
    if len(key) != _KEY_LENGTH or not is_z85_key(key):
        raise PrincipalsInvalid(name, "public key is not a 40-character Z85 key")
    if key in WELL_KNOWN_TEST_KEYS:
        raise PrincipalsInvalid(
            name, "public key is a well-known test key from the zmq_curve manual page"
        )
    return key


@dataclass(frozen=True, slots=True)
class Principal:
    """One identity the runtime knows: its name, its CURVE public key (Z85) and its roles."""

    name: str
    public_key: bytes
    roles: frozenset[str]

    def holds(self, role: str) -> bool:
        """Whether this principal holds exactly `role`."""
        return role in self.roles

    def may_serve_tools(self, host: str) -> bool:
        """Whether it may register as the tool host named `host`."""
        return self.holds(TOOLS_PREFIX + host)

    def may_operate(self) -> bool:
        """Whether it may start and halt runs."""
        return self.holds(OPERATOR)

    def may_read(self) -> bool:
        """Whether it may read runs: operators and viewers."""
        return self.holds(OPERATOR) or self.holds(VIEWER)

    def may_approve(self, group: str) -> bool:
        """Whether it may approve the gates of `group`."""
        return self.holds(APPROVER_PREFIX + group)


class Principals:
    """An immutable table of principals, unique by name and by key, iterated by name.

    Building it checks every principal, so a table that exists is one the
    runtime may admit as it stands.
    """

    __slots__ = ("_by_key", "_by_name")

    def __init__(self, principals: Iterable[Principal] = ()) -> None:
        by_name: dict[str, Principal] = {}
        by_key: dict[bytes, Principal] = {}
        for principal in principals:
            _check(principal)
            if principal.name in by_name:
                raise PrincipalsInvalid(principal.name, "the name is used twice")
            holder = by_key.get(principal.public_key)
            if holder is not None:
                raise PrincipalsInvalid(
                    principal.name, f"public key is already held by {holder.name!r}"
                )
            by_name[principal.name] = principal
            by_key[principal.public_key] = principal
        self._by_name = dict(sorted(by_name.items()))
        self._by_key = by_key

    @classmethod
    def empty(cls) -> Principals:
        """A table admitting no one."""
        return cls()

    def by_key(self, key: bytes) -> Principal | None:
        """The principal whose public key (Z85) is `key`, if any."""
        return self._by_key.get(key)

    def by_name(self, name: str) -> Principal | None:
        """The principal named `name`, if any."""
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Principal]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"Principals({', '.join(self._by_name)})"


def _check(principal: Principal) -> None:
    check_name(principal.name)
    check_public_key(principal.name, principal.public_key)
    if not principal.roles:
        raise PrincipalsInvalid(principal.name, "holds no role")
    for role in sorted(principal.roles):
        try:
            check_role(role)
        except RoleInvalid as exc:
            raise PrincipalsInvalid(principal.name, str(exc)) from None
