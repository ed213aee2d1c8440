"""The schema, as one numbered list of changes shared by SQLite and PostgreSQL.

Each store applies what its database lacks when it opens, in one transaction, under a lock
(PostgreSQL: an advisory lock, so nodes starting together apply each change once; SQLite: the
file's write lock). ``schema_migrations`` records what was applied. A change is never edited
once released: add the next one. Scripts are in SQLite's dialect; column types are translated
for PostgreSQL (INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, BLOB -> BYTEA).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .base import Database, postgres_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    script: str


# Pages and events live clustered by visit: a visit's rows share B-tree pages, so a batch
# dirties few of them, and reading a visit is one range scan. `seq` keeps arrival order.
HISTORY = """
CREATE TABLE IF NOT EXISTS visits (
    visit_id TEXT PRIMARY KEY,
    global_visit_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    closed_at INTEGER,
    identity TEXT NOT NULL,
    user_info TEXT NOT NULL,
    is_returning INTEGER NOT NULL,
    user_agent TEXT NOT NULL,
    language_code TEXT NOT NULL,
    timezone_offset INTEGER
);
CREATE INDEX IF NOT EXISTS visits_global ON visits (global_visit_id, started_at);
CREATE INDEX IF NOT EXISTS visits_started ON visits (started_at, visit_id);
CREATE TABLE IF NOT EXISTS pages (
    visit_id TEXT NOT NULL,
    page_id TEXT NOT NULL,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    referrer TEXT NOT NULL,
    utm TEXT NOT NULL,
    entered_at INTEGER NOT NULL,
    exited_at INTEGER,
    focused_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (visit_id, page_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    visit_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    page_id TEXT NOT NULL,
    global_visit_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_name TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    server_time INTEGER NOT NULL,
    url TEXT NOT NULL,
    category TEXT NOT NULL,
    language_code TEXT NOT NULL,
    data TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (visit_id, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id TEXT PRIMARY KEY,
    visit_id TEXT NOT NULL,
    global_visit_id TEXT NOT NULL,
    page_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    origin TEXT NOT NULL,
    invite TEXT NOT NULL,
    media TEXT NOT NULL,
    params TEXT NOT NULL,
    timeout_s REAL NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    transitions TEXT NOT NULL,
    handoff TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS attempts_visit ON attempts (visit_id, created_at);
CREATE INDEX IF NOT EXISTS attempts_visitor ON attempts (global_visit_id, created_at);
CREATE INDEX IF NOT EXISTS attempts_created ON attempts (created_at);
CREATE INDEX IF NOT EXISTS pages_page ON pages (page_id);
"""

VARIANTS = """
ALTER TABLE attempts ADD COLUMN variant TEXT NOT NULL DEFAULT '';
"""

# Tables that the history's row sources and the outbox created on their own before
# migrations existed: IF NOT EXISTS keeps this right on files that have some of them.
RECORDS = """
DROP INDEX IF EXISTS events_page;
CREATE TABLE IF NOT EXISTS conversions (
    attempt_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    variant TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    global_visit_id TEXT NOT NULL,
    goal TEXT NOT NULL,
    at INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (attempt_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversions_at ON conversions (at);
CREATE TABLE IF NOT EXISTS identities (
    identity_id TEXT PRIMARY KEY,
    name TEXT,
    location TEXT,
    entity_in_cs TEXT,
    visit_scope TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_visits (
    identity_id TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    global_visit_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    visit_scope TEXT NOT NULL,
    PRIMARY KEY (identity_id, visit_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identity_visits_started ON identity_visits (identity_id, started_at);
CREATE INDEX IF NOT EXISTS identity_visits_visit ON identity_visits (visit_id);
CREATE TABLE IF NOT EXISTS push_messages (
    visit_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    page_id TEXT,
    created_ms INTEGER NOT NULL,
    frame BLOB NOT NULL,
    PRIMARY KEY (visit_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS push_messages_created ON push_messages (created_ms);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);
CREATE TABLE IF NOT EXISTS callbacks (
    request_id TEXT PRIMARY KEY,
    attempt_id TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    service TEXT NOT NULL,
    form TEXT NOT NULL,
    state TEXT NOT NULL,          -- queued, delivered, failed
    tries INTEGER NOT NULL,
    next_try_at INTEGER NOT NULL,
    gms_id TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (state, next_try_at);
"""

# A node sending a callback holds it until claimed_until; one killed meanwhile lets it go.
CALLBACK_CLAIMS = """
ALTER TABLE callbacks ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE callbacks ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;
"""

# Widgets' async chat session per visitor (engagement/privacy/chat_sessions.py).
CHAT_SESSIONS = """
CREATE TABLE IF NOT EXISTS chat_sessions (
    global_visit_id TEXT PRIMARY KEY,
    visit_id TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_sessions_updated ON chat_sessions (updated_at);
"""
MIGRATIONS = (
    Migration(1, "visit history", HISTORY),
    Migration(2, "experiment variants of attempts", VARIANTS),
    Migration(3, "conversions, identities, push messages, audit, callbacks", RECORDS),
    Migration(4, "callback claims", CALLBACK_CLAIMS),
    Migration(5, "chat sessions", CHAT_SESSIONS),
)
# SQLite files from before migrations carry PRAGMA user_version: what it says was applied.
LEGACY_VERSIONS = {2: 1, 3: 2}

TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
);
"""


class OldSchemaError(RuntimeError):
    pass


async def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations ``db`` lacks; the versions applied now."""
    if db.dialect == "postgresql":
        return await _migrate_postgres(db, migrations)
    return await _migrate_sqlite(db, migrations)


def _record(m: Migration) -> str:
    name = m.name.replace("'", "''")
    now = time.time_ns() // 1_000_000
    return f"INSERT INTO schema_migrations VALUES ({m.version}, '{name}', {now});"


async def _migrate_sqlite(db: Database, migrations: tuple[Migration, ...]) -> list[int]:
    applied = await _applied(db)
    if applied is None:  # no schema_migrations: a new file, or one from before migrations
        version = await db.fetchone("PRAGMA user_version")
        legacy = version[0] if version else 0
        has_history = await db.fetchone("SELECT 1 FROM sqlite_master WHERE name = 'events'")
        if has_history and legacy not in LEGACY_VERSIONS:
            raise OldSchemaError(
                f"{db.where} holds history in an older format (version {legacy}); "
                "move it away to start with an empty history"
            )
        done = LEGACY_VERSIONS[legacy] if has_history else 0
        applied = {m.version for m in migrations if m.version <= done}
        script = TRACKING + "".join(_record(m) for m in migrations if m.version in applied)
    else:
        script = ""
    todo = [m for m in migrations if m.version not in applied]
    if not todo and not script:
        return []
    script += "".join(m.script + _record(m) for m in todo)
    latest = max(m.version for m in migrations)
    await db.execute_script(f"{script}\nPRAGMA user_version={latest};")
    _log(db, todo)
    return [m.version for m in todo]


async def _applied(db: Database) -> set[int] | None:
    if db.dialect == "sqlite":
        found = await db.fetchone("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'")
        if not found:
            return None
    rows = await db.fetchall("SELECT version FROM schema_migrations")
    return {int(r[0]) for r in rows}


async def _migrate_postgres(db: Database, migrations: tuple[Migration, ...]) -> list[int]:
    async with db.transaction() as tx:
        # One node at a time per schema; the lock ends with the transaction.
        await tx.fetchone(
            "SELECT pg_advisory_xact_lock(hashtext('engagement:' || current_schema()))"
        )
        await tx.execute(postgres_schema(TRACKING))
        applied = {int(r[0]) for r in await tx.fetchall("SELECT version FROM schema_migrations")}
        todo = [m for m in migrations if m.version not in applied]
        for m in todo:
            await tx.execute(postgres_schema(m.script))  # one round trip per migration
            await tx.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (m.version, m.name, time.time_ns() // 1_000_000),
            )
    _log(db, todo)
    return [m.version for m in todo]


def _log(db: Database, done: list[Migration]) -> None:
    for m in done:
        log.info("%s: migration %d applied (%s)", db.where, m.version, m.name)
