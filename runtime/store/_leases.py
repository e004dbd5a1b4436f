"""Who owns which run in a cluster of runtimes on one PostgreSQL database.

A runtime joins with a new fencing token from a sequence (never a name, which a
restarted or another host could reuse) and keeps a lease that it renews well
before it expires. Time is the database's: lease expiry is compared with its
clock alone, so the runtimes' own clocks may differ. A lapsed lease is deleted
in the same transaction that takes up its runs, so no run is ever left without
an owner to find it; the deletion waits (an advisory lock per token, shared by
appends, exclusive here) for any append still checking that lease, so whatever
the lapsed runtime committed is seen by its successor.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import psycopg
from psycopg_pool import PoolTimeout

from runtime.errors import LeaseLapsed, StoreError, StoreUnavailable
from runtime.store._postgres import PostgresStore

CHANNEL = "baton_cluster"
"""Where runtimes say they joined or left; the payload is a fencing token, nothing more."""


@dataclass(frozen=True, slots=True)
class Member:
    """A runtime of the cluster as the database sees it."""

    token: int
    name: str
    agents: str
    control: str
    pid: int
    host: str
    started_at: float
    renewed_at: float
    expires_in: float
    """Seconds its lease has left by the database's clock; negative once lapsed."""
    owned: int
    active: int


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds a run: its owner's token and control plane (empty unless that owner's
    lease is live), and whether the run has ended."""

    token: int
    control: str
    ended: bool


@dataclass(frozen=True, slots=True)
class Takeover:
    """A lapsed lease whose runs were taken up."""

    token: int
    name: str
    lapsed_for: float
    """Seconds between the lease's expiry and its deletion."""
    runs: int
    agents: str = ""
    """The agent plane of the runtime that held the lease."""
    started_at: float = 0.0
    """When that runtime joined (the database's clock, seconds since the epoch)."""
    expired_at: float = 0.0
    """When its lease lapsed: from then on it may have sent nothing for its runs."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """What one claim took: runs to take up, and the lapsed leases it ended."""

    runs: dict[str, str]
    """The runs to take up, in the order they started, each with who held it before: a
    lapsed member's name, or `token N` where that member was ended by another claim."""
    takeovers: list[Takeover]


_MEMBERS = (
    "SELECT token, name, agents, control, pid, host, extract(epoch FROM started_at)::float8, "
    "extract(epoch FROM renewed_at)::float8, "
    "extract(epoch FROM expires_at - clock_timestamp())::float8, owned, active "
    "FROM baton.supervisors ORDER BY started_at, token"
)


class Leases:
    """The cluster's membership and run ownership, over a `PostgresStore`'s pool."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def join(self, agents: str, control: str, ttl: float) -> int:
        """Join the cluster with a lease of `ttl` seconds; the new fencing token."""
        name = f"{socket.gethostname()}:{os.getpid()}"
        rows = await self.store.fetch(
            "INSERT INTO baton.supervisors (token, name, agents, control, pid, host, expires_at) "
            "VALUES (nextval('baton.fencing'), %s, %s, %s, %s, %s, "
            "clock_timestamp() + make_interval(secs => %s)) RETURNING token",
            (name, agents, control, os.getpid(), socket.gethostname(), ttl),
        )
        token = int(rows[0][0])
        await self._notify(f"joined {token}")
        return token

    async def renew(self, token: int, ttl: float, owned: int, active: int) -> bool:
        """Extend a live lease by `ttl` from now; False if it had lapsed (it is not revived)."""
        rows = await self.store.fetch(
            "UPDATE baton.supervisors "
            "SET expires_at = clock_timestamp() + make_interval(secs => %s), "
            "renewed_at = clock_timestamp(), owned = %s, active = %s "
            "WHERE token = %s AND expires_at > clock_timestamp() RETURNING token",
            (ttl, owned, active, token),
        )
        return bool(rows)

    async def claim(self, token: int) -> Claimed:
        """End the lapsed leases and take this runtime's share of the runs without a live owner.

        The share is the open runs without a live owner divided among the live members,
        rounded up, so that survivors split a dead member's runs and a member that
        joined later takes its part of them.
        """
        try:
            async with self.store.connection() as conn, conn.transaction():
                # Shared, as appends take it: no other claim ends this lease meanwhile.
                await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (token,))
                live = await conn.execute(
                    "SELECT 1 FROM baton.supervisors WHERE token = %s "
                    "AND expires_at > clock_timestamp()",
                    (token,),
                )
                if await live.fetchone() is None:
                    raise LeaseLapsed(self.store.description, f"the lease of token {token} lapsed")
                lapsed_tokens = [
                    int(t)
                    for (t,) in await (
                        await conn.execute(
                            "SELECT token FROM baton.supervisors "
                            "WHERE expires_at <= clock_timestamp() ORDER BY token"
                        )
                    ).fetchall()
                ]
                # Exclusive: waits for every append still checking a lapsed lease to commit,
                # so its successor reads all that it wrote.
                for lapsed in lapsed_tokens:
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lapsed,))
                gone = await (
                    await conn.execute(
                        "DELETE FROM baton.supervisors WHERE token = ANY(%s) "
                        "AND expires_at <= clock_timestamp() "
                        "RETURNING token, name, "
                        "extract(epoch FROM clock_timestamp() - expires_at)::float8, "
                        "agents, started_at, expires_at, extract(epoch FROM started_at)::float8, "
                        "extract(epoch FROM expires_at)::float8",
                        (lapsed_tokens,),
                    )
                ).fetchall()
                takeovers = []
                for lapsed, name, lapsed_for, agents, started, expired, began, ended in gone:
                    count = await (
                        await conn.execute(
                            "SELECT count(*) FROM baton.runs WHERE owner = %s AND NOT ended",
                            (lapsed,),
                        )
                    ).fetchone()
                    runs = 0 if count is None else int(count[0])
                    takeovers.append(
                        Takeover(int(lapsed), str(name), float(lapsed_for), runs, str(agents),
                                 float(began), float(ended))
                    )  # fmt: skip
                    await conn.execute(
                        "INSERT INTO baton.takeovers (token, name, lapsed_for, runs, by_token, "
                        "agents, started_at, expired_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (lapsed, name, lapsed_for, runs, token, agents, started, expired),
                    )
                orphan = (
                    "NOT r.ended AND (r.owner IS NULL OR NOT EXISTS "
                    "(SELECT 1 FROM baton.supervisors s WHERE s.token = r.owner))"
                )
                counted = await (
                    await conn.execute(
                        f"SELECT (SELECT count(*) FROM baton.runs r WHERE {orphan}), "  # noqa: S608 - constant text
                        "(SELECT count(*) FROM baton.supervisors "
                        "WHERE expires_at > clock_timestamp())"
                    )
                ).fetchone()
                assert counted is not None
                orphans, members = int(counted[0]), max(1, int(counted[1]))
                claimed: dict[str, str] = {}
                if orphans:
                    share = -(-orphans // members)
                    rows = await (
                        await conn.execute(
                            "WITH picked AS (SELECT r.run_id, r.owner FROM baton.runs r "  # noqa: S608 - constant text
                            f"WHERE {orphan} ORDER BY r.started_at LIMIT %s "
                            "FOR UPDATE SKIP LOCKED) "
                            "UPDATE baton.runs u SET owner = %s FROM picked "
                            "WHERE u.run_id = picked.run_id "
                            "RETURNING u.run_id, u.started_at, picked.owner",
                            (share, token),
                        )
                    ).fetchall()
                    names = {t.token: t.name for t in takeovers}
                    for run_id, _, owner in sorted(rows, key=lambda row: row[1]):
                        before = "" if owner is None else names.get(int(owner), "")
                        claimed[str(run_id)] = before or f"token {owner}"
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(self.store.description, str(exc).strip()[:500]) from None
        except psycopg.Error as exc:
            raise StoreError(self.store.description, str(exc).strip()[:500]) from None
        if takeovers:
            await self._notify(f"claimed {token}")
        return Claimed(claimed, takeovers)

    async def leave(self, token: int) -> None:
        """Give up the lease at once: its open runs are for the others to take up now."""
        await self.store.fetch(
            "DELETE FROM baton.supervisors WHERE token = %s RETURNING token", (token,)
        )
        await self._notify(f"left {token}")

    async def owner_of(self, run_id: str) -> Owner | None:
        """Who holds `run_id`, or None for a run the cluster never started."""
        rows = await self.store.fetch(
            "SELECT r.owner, s.control, r.ended FROM baton.runs r "
            "LEFT JOIN baton.supervisors s ON s.token = r.owner "
            "AND s.expires_at > clock_timestamp() WHERE r.run_id = %s",
            (run_id,),
        )
        if not rows:
            return None
        owner, control, ended = rows[0]
        return Owner(0 if owner is None else int(owner), control or "", bool(ended))

    async def members(self) -> list[Member]:
        """Every member whose lease has not been ended, live or lapsed."""
        rows = await self.store.fetch(_MEMBERS)
        return [
            Member(int(t), str(n), str(a), str(c), int(p), str(h), float(s), float(r), float(e),
                   int(o), int(v))
            for t, n, a, c, p, h, s, r, e, o, v in rows
        ]  # fmt: skip

    async def takeovers(self, limit: int = 20) -> list[tuple[float, Takeover, int]]:
        """The latest takeovers: when, which lease, and the token that took it over."""
        rows = await self.store.fetch(
            "SELECT extract(epoch FROM at)::float8, token, name, lapsed_for, runs, by_token, "
            "agents, extract(epoch FROM started_at)::float8, "
            "extract(epoch FROM expired_at)::float8 "
            "FROM baton.takeovers ORDER BY at DESC LIMIT %s",
            (limit,),
        )
        return [
            (float(at), Takeover(int(t), str(n), float(lf), int(r), str(a), float(s), float(e)),
             int(b))
            for at, t, n, lf, r, b, a, s, e in rows
        ]  # fmt: skip

    async def _notify(self, payload: str) -> None:
        await self.store.fetch("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
