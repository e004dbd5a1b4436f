"""The PostgreSQL journal's schema: versioned migrations, applied once under a lock.

Everything lives in the `baton` schema. `append` is a function so that a batch
costs one round trip and one transaction: it checks the writer's lease and its
ownership of every run in the batch in the same transaction as the insert (the
primary key on `(run_id, seq)` guards a second time).
"""

from __future__ import annotations

import psycopg

from runtime.errors import StoreError

LEASE_LAPSED = "BA001"
"""SQLSTATE raised by `baton.append` when the writer's lease is not live."""
NOT_OWNER = "BA002"
"""SQLSTATE raised by `baton.append` when a run of the batch is another's."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE baton.events (
        run_id text NOT NULL,
        seq integer NOT NULL,
        at double precision NOT NULL,
        body bytea NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE baton.clock (
        id integer PRIMARY KEY CHECK (id = 1),
        wall double precision NOT NULL,
        monotonic double precision NOT NULL,
        boot text NOT NULL
    );
    CREATE SEQUENCE baton.fencing;
    CREATE TABLE baton.supervisors (
        token bigint PRIMARY KEY,
        name text NOT NULL,
        agents text NOT NULL,
        control text NOT NULL,
        pid integer NOT NULL,
        host text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        renewed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        expires_at timestamptz NOT NULL,
        owned integer NOT NULL DEFAULT 0,
        active integer NOT NULL DEFAULT 0
    );
    CREATE TABLE baton.runs (
        run_id text PRIMARY KEY,
        owner bigint,
        started_at double precision NOT NULL,
        ended boolean NOT NULL DEFAULT false
    );
    CREATE INDEX runs_open ON baton.runs (owner) WHERE NOT ended;
    CREATE TABLE baton.takeovers (
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        token bigint NOT NULL,
        name text NOT NULL,
        lapsed_for double precision NOT NULL,
        runs integer NOT NULL,
        by_token bigint NOT NULL,
        agents text NOT NULL,
        started_at timestamptz NOT NULL,
        expired_at timestamptz NOT NULL
    );
    CREATE FUNCTION baton.append(
        p_fence bigint,
        p_fresh text[],
        p_fresh_at double precision[],
        p_ended text[],
        p_run_ids text[],
        p_seqs integer[],
        p_ats double precision[],
        p_bodies bytea[],
        p_wall double precision,
        p_mono double precision,
        p_boot text
    ) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        wanted integer;
        owned integer;
    BEGIN
        -- A takeover holds this token's lock exclusively while it ends the lease, so this
        -- append either commits before it or sees the lease gone. An advisory lock, not a
        -- row lock: locking the lease's row would write it, in every append.
        PERFORM pg_advisory_xact_lock_shared(p_fence);
        PERFORM 1 FROM baton.supervisors s
            WHERE s.token = p_fence AND s.expires_at > clock_timestamp();
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the lease of fencing token % is not live', p_fence
                USING ERRCODE = 'BA001';
        END IF;
        IF cardinality(p_fresh) > 0 THEN
            INSERT INTO baton.runs (run_id, owner, started_at)
                SELECT f.run_id, p_fence, f.started_at
                FROM unnest(p_fresh, p_fresh_at) AS f(run_id, started_at);
        END IF;
        SELECT count(*), count(*) FILTER (WHERE r.owner = p_fence) INTO wanted, owned
            FROM (SELECT DISTINCT unnest(p_run_ids) AS run_id) AS ids
            LEFT JOIN baton.runs r USING (run_id);
        IF owned <> wanted THEN
            RAISE EXCEPTION '% of the % runs written for are not owned under fencing token %',
                wanted - owned, wanted, p_fence USING ERRCODE = 'BA002';
        END IF;
        INSERT INTO baton.events (run_id, seq, at, body)
            SELECT * FROM unnest(p_run_ids, p_seqs, p_ats, p_bodies);
        IF cardinality(p_ended) > 0 THEN
            UPDATE baton.runs SET ended = true WHERE run_id = ANY(p_ended);
        END IF;
        IF p_wall IS NOT NULL THEN
            INSERT INTO baton.clock VALUES (1, p_wall, p_mono, p_boot)
                ON CONFLICT (id) DO UPDATE SET wall = EXCLUDED.wall,
                    monotonic = EXCLUDED.monotonic, boot = EXCLUDED.boot;
        END IF;
    END $$;
    """,
)
"""The schema's history: migration N takes `baton.schema_version` N-1 to N."""
SCHEMA_VERSION = len(MIGRATIONS)
_LOCK = 0x6261746F6E
"""The advisory lock that lets one starting runtime migrate while the others wait."""


def migrate(conn: psycopg.Connection[tuple[object, ...]], where: str) -> int:
    """Bring the schema to `SCHEMA_VERSION`, or refuse a newer one; the version found."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS baton")
        conn.execute("CREATE TABLE IF NOT EXISTS baton.schema_version (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM baton.schema_version").fetchone()
        found = 0 if row is None else int(str(row[0]))
        if row is None:
            conn.execute("INSERT INTO baton.schema_version VALUES (0)")
        if found > SCHEMA_VERSION:
            raise StoreError(
                where, f"schema version {found} is newer than this runtime's {SCHEMA_VERSION}"
            )
        for number in range(found + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[number - 1].encode())
            conn.execute("UPDATE baton.schema_version SET version = %s", (number,))
    return found


def version(conn: psycopg.Connection[tuple[object, ...]], where: str) -> int:
    """The schema's version, read and not written: refused unless it is this runtime's."""
    row = conn.execute("SELECT to_regclass('baton.schema_version') IS NOT NULL").fetchone()
    found = None
    if row is not None and row[0]:
        found_row = conn.execute("SELECT max(version) FROM baton.schema_version").fetchone()
        found = None if found_row is None or found_row[0] is None else int(str(found_row[0]))
    if not found:
        raise StoreError(where, "no Baton journal in this database: no runtime has used it")
    if found > SCHEMA_VERSION:
        raise StoreError(
            where, f"schema version {found} is newer than this runtime's {SCHEMA_VERSION}"
        )
    if found < SCHEMA_VERSION:
        raise StoreError(
            where,
            f"schema version {found} is older than this runtime's {SCHEMA_VERSION}: "
            "a runtime started on it brings it up to date",
        )
    return found
