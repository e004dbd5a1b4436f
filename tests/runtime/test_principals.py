"""Principals: the role grammar, what each role permits, and the table's refusals."""

from __future__ import annotations

import pytest
import zmq

from protocols import WELL_KNOWN_TEST_KEYS
from runtime.errors import BatonError
from runtime.security._principals import (
    Principal,
    Principals,
    PrincipalsInvalid,
    RoleInvalid,
    check_role,
)

BARE_RULE = (
    "a role is operator, viewer, tools:HOST, approver:GROUP or an agent role of "
    "1-128 letters, digits, '_', '.' or '-'"
)
NAME_RULE = "a name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"


def key() -> bytes:
    """A fresh, real public key."""
    return zmq.curve_keypair()[0]


def principal(name: str, *roles: str, public_key: bytes | None = None) -> Principal:
    return Principal(name, key() if public_key is None else public_key, frozenset(roles))


class TestCheckRole:
    """`check_role` accepts the grammar and names what is wrong with the rest."""

    @pytest.mark.parametrize(
        "role",
        [
            "operator",
            "viewer",
            "tools:search",
            "tools:host-1.internal",
            "approver:finance",
            "researcher",
            "writer_v2.1-beta",
            "a" * 128,
        ],
    )
    def test_accepted(self, role: str) -> None:
        """Control roles, prefixed roles and bare agent roles come back unchanged."""
        assert check_role(role) == role

    @pytest.mark.parametrize(
        ("role", "reason"),
        [
            ("", BARE_RULE),
            ("a" * 129, BARE_RULE),
            ("has space", BARE_RULE),
            ("ops:deploy", BARE_RULE),
            ("tools:", "tools:HOST needs a HOST of 1-128 letters, digits, '_', '.' or '-'"),
            ("tools:a:b", "tools:HOST needs a HOST of 1-128 letters, digits, '_', '.' or '-'"),
            (
                "approver:",
                "approver:GROUP needs a GROUP of 1-128 letters, digits, '_', '.' or '-'",
            ),
            (
                "approver:" + "g" * 129,
                "approver:GROUP needs a GROUP of 1-128 letters, digits, '_', '.' or '-'",
            ),
            ("worker\n", BARE_RULE),
        ],
    )
    def test_refused_with_reason(self, role: str, reason: str) -> None:
        """A role outside the grammar raises `RoleInvalid` saying what a role may be."""
        with pytest.raises(RoleInvalid) as raised:
            check_role(role)
        assert raised.value.role == role
        assert raised.value.reason == reason
        assert str(raised.value) == f"role {role!r} is invalid: {reason}"
        assert isinstance(raised.value, BatonError)


class TestPrincipal:
    """What each role lets a principal do."""

    def test_operator(self) -> None:
        """An operator operates and reads, but serves no tools and approves nothing."""
        p = principal("ops", "operator")
        assert p.may_operate()
        assert p.may_read()
        assert not p.may_serve_tools("search")
        assert not p.may_approve("finance")

    def test_viewer_reads_only(self) -> None:
        """A viewer reads runs but may not operate."""
        p = principal("eyes", "viewer")
        assert p.may_read()
        assert not p.may_operate()

    def test_tool_host_is_per_host(self) -> None:
        """`tools:HOST` permits serving that host only."""
        p = principal("toolbox", "tools:search")
        assert p.may_serve_tools("search")
        assert not p.may_serve_tools("shell")
        assert not p.may_read()

    def test_approver_is_per_group(self) -> None:
        """`approver:GROUP` permits approving that group only."""
        p = principal("cfo", "approver:finance")
        assert p.may_approve("finance")
        assert not p.may_approve("legal")

    def test_holds_is_exact(self) -> None:
        """`holds` matches a role exactly, with no prefix matching."""
        p = principal("agent", "researcher", "tools:search")
        assert p.holds("researcher")
        assert p.holds("tools:search")
        assert not p.holds("tools:")
        assert not p.holds("research")


class TestPrincipals:
    """The table: lookups by key and name, and refusal of anything it must not admit."""

    def test_lookups_and_order(self) -> None:
        """Lookups find principals by key and by name; iteration is by name."""
        bob, alice = principal("bob", "viewer"), principal("alice", "operator")
        table = Principals([bob, alice])
        assert [p.name for p in table] == ["alice", "bob"]
        assert len(table) == 2
        assert "alice" in table
        assert "carol" not in table
        assert table.by_key(bob.public_key) is bob
        assert table.by_name("alice") is alice
        assert table.by_key(key()) is None
        assert table.by_name("carol") is None

    def test_empty(self) -> None:
        """An empty table admits no one."""
        for table in (Principals.empty(), Principals()):
            assert len(table) == 0
            assert list(table) == []

    def test_duplicate_name(self) -> None:
        """Two principals may not share a name."""
        with pytest.raises(PrincipalsInvalid, match=r"^principal 'a': the name is used twice$"):
            Principals([principal("a", "viewer"), principal("a", "operator")])

    def test_duplicate_key(self) -> None:
        """Two principals may not share a key: the key is the identity."""
        shared = key()
        with pytest.raises(PrincipalsInvalid) as raised:
            Principals(
                [
                    principal("a", "viewer", public_key=shared),
                    principal("b", "operator", public_key=shared),
                ]
            )
        assert str(raised.value) == "principal 'b': public key is already held by 'a'"

    @pytest.mark.parametrize("test_key", sorted(WELL_KNOWN_TEST_KEYS))
    def test_well_known_test_keys(self, test_key: bytes) -> None:
        """The zmq_curve manual's example keys are public, so never admitted."""
        with pytest.raises(PrincipalsInvalid) as raised:
            Principals([principal("a", "viewer", public_key=test_key)])
        assert raised.value.reason == (
            "public key is a well-known test key from the zmq_curve manual page"
        )

    @pytest.mark.parametrize(
        "bad_key",
        [b"", b"short", key()[:39], key() + b"\n", b" " * 40, "é".encode() * 20],
    )
    def test_not_z85(self, bad_key: bytes) -> None:
        """A key that is not exactly 40 Z85 characters is refused."""
        with pytest.raises(PrincipalsInvalid) as raised:
            Principals([principal("a", "viewer", public_key=bad_key)])
        assert raised.value.reason == "public key is not a 40-character Z85 key"

    @pytest.mark.parametrize(
        "name", ["", "-lead", ".hidden", "a/b", "../x", "a b", "é", "a" * 65, "x:y"]
    )
    def test_bad_names(self, name: str) -> None:
        """Names become file names: a narrow alphabet, no leading dot or dash."""
        with pytest.raises(PrincipalsInvalid) as raised:
            Principals([principal(name, "viewer")])
        assert raised.value.reason == NAME_RULE

    @pytest.mark.parametrize("name", ["runtime", "Runtime", "RUNTIME"])
    def test_runtime_is_reserved(self, name: str) -> None:
        """`runtime` names the runtime's own key files, in any case."""
        with pytest.raises(PrincipalsInvalid) as raised:
            Principals([principal(name, "viewer")])
        assert raised.value.reason == "'runtime' names the runtime's own key"

    def test_names_at_the_bounds(self) -> None:
        """One character and 64 characters are both valid names."""
        table = Principals([principal("a", "viewer"), principal("b" * 64, "viewer")])
        assert len(table) == 2

    def test_no_roles(self) -> None:
        """A principal holding no role could do nothing, so it is refused."""
        with pytest.raises(PrincipalsInvalid, match=r"^principal 'a': holds no role$"):
            Principals([principal("a")])

    def test_bad_role(self) -> None:
        """A role outside the grammar is refused, naming the principal and the role."""
        with pytest.raises(PrincipalsInvalid) as raised:
            Principals([principal("a", "viewer", "tools:")])
        assert str(raised.value) == (
            "principal 'a': role 'tools:' is invalid: "
            "tools:HOST needs a HOST of 1-128 letters, digits, '_', '.' or '-'"
        )
