"""A store chosen by its URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from runtime.errors import ConfigError
from runtime.store._memory import MemoryStore
from runtime.store._sqlite import SqliteStore

if TYPE_CHECKING:
    from runtime.store._postgres import PostgresStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def redact(url: str) -> str:
    """The URL without a password, for logs and errors: neither the one in its user part
    nor a `password=` parameter (libpq takes both)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The user part ends at the first '@' of the authority, which ends at '/' or '?'.
    ends = [i for i in (rest.find("/"), rest.find("?")) if i >= 0]
    cut = min(ends, default=len(rest))
    user, at, hosts = rest[:cut].partition("@")
    if at and ":" in user:
        rest = f"{user.partition(':')[0]}:***@{hosts}{rest[cut:]}"
    base, mark, query = rest.partition("?")
    if mark:
        query = "&".join(
            f"{name}=***" if name.lower() == "password" else part
            for part in query.split("&")
            for name in [part.partition("=")[0]]
        )
    return f"{scheme}://{base}{mark}{query}"


def open_postgres(url: str, *, migrate: bool = True) -> PostgresStore:
    """A PostgreSQL store, its schema checked and migrated (with `migrate=False`, left for
    `open` to check); a clear error without the extra."""
    try:
        from runtime.store._postgres import PostgresStore  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise ConfigError(
            "--store",
            redact(url),
            "PostgreSQL needs psycopg: pip install 'baton-runtime[postgres]'",
        ) from None
    store = PostgresStore(url)
    if migrate:
        store.migrate()
    return store


def open_store(url: str) -> MemoryStore | SqliteStore | PostgresStore:
    """A store from its URL: `memory://`; `postgresql://USER@HOST/DB` (any libpq URL: a
    cluster of runtimes may share it; see `runtime.cluster`); or `sqlite:///relative.db` and
    `sqlite:////absolute/path.db`, with `?synchronous=FULL` (default) or `NORMAL`,
    `&max_pages=N` to cap the journal's size (in SQLite pages, 4 KiB each), and
    `&commit=thread` to commit in a worker thread while the loop goes on (for a disk
    whose fsync is slow enough to stall it) instead of `inline`."""
    if url in ("memory://", "memory:"):
        return MemoryStore()
    if url.startswith(POSTGRES_SCHEMES):
        return open_postgres(url)
    if not url.startswith("sqlite:///"):
        raise ConfigError("--store", url, "use memory://, sqlite:///PATH or postgresql://...")
    path, _, query = url.removeprefix("sqlite:///").partition("?")
    if not path:
        raise ConfigError("--store", url, "the SQLite URL names no file")
    options = parse_qs(query)
    unknown = sorted(set(options) - {"synchronous", "max_pages", "commit"})
    if unknown:
        raise ConfigError("--store", url, f"unknown option {unknown[0]!r}")
    mode = options.get("synchronous", ["FULL"])[-1].upper()
    if mode not in ("FULL", "NORMAL"):
        raise ConfigError("--store", url, "synchronous must be FULL or NORMAL")
    commit = options.get("commit", ["inline"])[-1]
    if commit not in ("inline", "thread"):
        raise ConfigError("--store", url, "commit must be inline or thread")
    pages = options.get("max_pages", [None])[-1]
    if pages is not None and not (pages.isdigit() and int(pages) > 0):
        raise ConfigError("--store", url, "max_pages must be a positive whole number")
    target = Path(path)
    if not target.parent.exists():
        raise ConfigError("--store", url, f"folder {target.parent} does not exist")
    return SqliteStore(
        target,
        "FULL" if mode == "FULL" else "NORMAL",
        inline=commit == "inline",
        max_pages=None if pages is None else int(pages),
    )
