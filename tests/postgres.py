"""One PostgreSQL server for the test session, and a database of its own for each test.

The server starts when the first test asks for it and is removed when the session
ends, passed or failed. Each test gets a new, empty database, dropped after it, so
no test sees another's runs or leases. Under CI (`CI=true`) a server that cannot
run fails every test that needs it: a skipped test would let the build pass
without PostgreSQL ever being tried. Elsewhere those tests skip, saying why.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from runtime.cluster import LocalPostgres

SERVER_FIXTURES = {"postgres_server", "postgres", "postgres_url"}


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere; either way saying why."""
    if under_ci():
        pytest.fail(f"CI=true and no PostgreSQL server: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason}")


def database_url(server: LocalPostgres, database: str) -> str:
    return f"postgresql://baton@/{database}?host={server.folder}"


def admin(server: LocalPostgres, statement: str) -> None:
    """Run one statement on the server's own database, outside any transaction."""
    import psycopg  # noqa: PLC0415 - only the tests that ask for a server need the extra

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(statement.encode())


def running(server: LocalPostgres) -> LocalPostgres:
    """The server, started again if a test stopped or killed it."""
    if server.pid() is None:
        server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """The session's server; ask for `postgres` or `postgres_url` instead."""
    try:
        import psycopg  # noqa: F401, PLC0415 - the tests that need a server talk to it with it

        from runtime.cluster import LocalPostgres, LocalPostgresError  # noqa: PLC0415
    except ImportError as exc:
        unavailable(f"{exc} (pip install -e '.[dev]')")
    try:
        server = LocalPostgres()
    except LocalPostgresError as exc:
        unavailable(str(exc))
    try:
        server.start()
    except LocalPostgresError as exc:
        server.remove()
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres(postgres_server: LocalPostgres) -> Iterator[LocalPostgres]:
    """The session's server, for a test that stops or kills it: it runs again after."""
    yield postgres_server
    running(postgres_server)


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres) -> Iterator[str]:
    """The URL of a new, empty database on the session's server, dropped after the test."""
    name = f"t_{secrets.token_hex(6)}"
    admin(postgres_server, f"CREATE DATABASE {name}")
    try:
        yield database_url(postgres_server, name)
    finally:
        # FORCE: a pool a failed test left open must not keep its database.
        admin(running(postgres_server), f"DROP DATABASE {name} WITH (FORCE)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the server is marked `postgres`: `-m 'not postgres'` leaves
    them out."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
