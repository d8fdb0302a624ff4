"""The record's schema: the numbered migration files in leadmatch/record/migrations/ build it step by step, and
what they build is the reviewed snapshot in tests/data/schema.sql (a migration that changes the schema updates
the snapshot in the same commit: `LEADMATCH_UPDATE_SCHEMA=1` rewrites it)."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest

from leadmatch.record import store

SNAPSHOT = Path(__file__).parent / "data" / "schema.sql"


def schema(conn: sqlite3.Connection) -> str:
    """Every table, index and trigger as SQLite keeps it (white space folded), with the schema version."""
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name")
    lines = [f"-- user_version {conn.execute('PRAGMA user_version').fetchone()[0]}"]
    lines += [re.sub(r"\s+", " ", sql).strip() + ";" for _, _, sql in rows]
    return "\n".join(lines) + "\n"


def test_a_new_database_has_the_reviewed_schema(tmp_path):
    built = schema(store.connect(tmp_path / "new.db"))
    if os.environ.get("LEADMATCH_UPDATE_SCHEMA"):
        SNAPSHOT.write_text(built)
    assert built == SNAPSHOT.read_text(), "the schema changed: review it, then LEADMATCH_UPDATE_SCHEMA=1"


def test_migrations_are_numbered_files_without_gaps():
    found = store.migrations()
    assert [number for number, _, _ in found] == list(range(1, len(found) + 1))
    assert all(re.fullmatch(r"[a-z0-9_]+", name) for _, name, _ in found)


@pytest.mark.parametrize("stopped_at", [1, 7, 10, 12])
def test_an_older_database_migrates_forward_to_the_same_schema(tmp_path, stopped_at):
    """A record made by an earlier version (its migrations applied up to `stopped_at`) opens at the current one."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, _, sql in store.migrations()[:stopped_at]:
        for statement in store.statements(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.close()
    assert schema(store.connect(path)) == SNAPSHOT.read_text()
