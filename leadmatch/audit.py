"""The audit trail: one chained entry per action, refusals included.

Each entry's `hash` is the sha256 of its own fields plus the previous entry's hash, so editing, deleting,
inserting or reordering rows breaks the chain at that point, which `verify` reports. Truncating the newest
entries leaves a valid shorter chain: supervisors record the head hash that `verify` prints and pass it back
later with `expect_head`; if that entry is gone, verification fails.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass

from .store import transaction, utc_now

GENESIS = "0" * 64
FIELDS = ("id", "at", "actor", "action", "outcome", "case_number", "search_id", "objects", "reason",
          "photo_sha256", "prev_hash")


def _entry_hash(row: dict) -> str:
    canonical = json.dumps([row[f] for f in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record(conn: sqlite3.Connection, actor: str, action: str, outcome: str = "ok", *, case: str | None = None,
           search_id: str | None = None, objects: dict | None = None, reason: str | None = None,
           photos: list[str] | tuple[str, ...] = ()) -> int:
    """Append one entry (joining the caller's transaction if there is one). Returns its id.

    `outcome` is "ok" or "refused"; `photos` are sha256s of the photos involved.
    """
    with transaction(conn):
        last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        row = {
            "id": (last["id"] + 1) if last else 1,
            "at": utc_now(),
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "case_number": case,
            "search_id": search_id,
            "objects": json.dumps(objects or {}, ensure_ascii=False, sort_keys=True),
            "reason": reason,
            "photo_sha256": json.dumps(sorted(set(photos))),
            "prev_hash": last["hash"] if last else GENESIS,
        }
        row["hash"] = _entry_hash(row)
        conn.execute(
            f"INSERT INTO audit ({', '.join(FIELDS)}, hash) VALUES ({', '.join('?' * (len(FIELDS) + 1))})",
            [row[f] for f in FIELDS] + [row["hash"]],
        )
        return row["id"]


@dataclass
class Verification:
    """Result of walking the chain: `ok`, entries checked, the head hash, and the first bad entry if any."""

    ok: bool
    entries: int
    head: str
    bad_entry: int | None = None
    problem: str | None = None


def verify(conn: sqlite3.Connection, expect_head: str | None = None) -> Verification:
    """Walk the chain in id order, recomputing each hash; stop at the first entry that does not fit."""
    prev_hash, expected_id, count, head_seen = GENESIS, 1, 0, expect_head in (None, GENESIS)
    for raw in conn.execute(f"SELECT {', '.join(FIELDS)}, hash FROM audit ORDER BY id"):
        row = dict(raw)
        count += 1
        if row["id"] != expected_id:
            return Verification(False, count, prev_hash, row["id"],
                                f"entry {row['id']} follows entry {expected_id - 1}: entries missing or inserted")
        if row["prev_hash"] != prev_hash:
            return Verification(False, count, prev_hash, row["id"],
                                f"entry {row['id']} does not chain to the entry before it (deleted, inserted or reordered)")
        if _entry_hash(row) != row["hash"]:
            return Verification(False, count, prev_hash, row["id"], f"entry {row['id']} was edited after it was written")
        prev_hash, expected_id = row["hash"], expected_id + 1
        head_seen = head_seen or row["hash"] == expect_head
    if not head_seen:
        return Verification(False, count, prev_hash, None,
                            "the head recorded at an earlier verification is no longer in the chain: "
                            "entries removed or replaced since")
    return Verification(True, count, prev_hash)


def entries(conn: sqlite3.Connection, *, case: str | None = None, actor: str | None = None,
            since: str | None = None, until: str | None = None, search_id: str | None = None,
            limit: int | None = None) -> list[dict]:
    """Audit entries matching the filters, oldest first, as dicts with `objects` and `photo_sha256` decoded."""
    clauses, params = [], []
    for column, value, op in (("case_number", case, "="), ("actor", actor, "="), ("at", since, ">="),
                              ("at", until, "<"), ("search_id", search_id, "=")):
        if value:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    sql = "SELECT * FROM audit" + (f" WHERE {' AND '.join(clauses)}" if clauses else "") + " ORDER BY id"
    if limit:
        sql = f"SELECT * FROM ({sql.replace('ORDER BY id', 'ORDER BY id DESC')} LIMIT {int(limit)}) ORDER BY id"
    out = []
    for raw in conn.execute(sql, params):
        row = dict(raw)
        row["objects"] = json.loads(row["objects"])
        row["photo_sha256"] = json.loads(row["photo_sha256"])
        out.append(row)
    return out


def report(conn: sqlite3.Connection, start: str, end: str, stale_days: int = 30, now: str | None = None) -> dict:
    """Supervisors' periodic audit for [start, end): searches per user, refusals by reason, closures with and
    without identification, and searches still open after `stale_days`."""
    window = (start, end)
    per_user = [dict(r) for r in conn.execute(
        "SELECT actor AS user, count(*) AS searches FROM audit WHERE action = 'search' AND outcome = 'ok' "
        "AND at >= ? AND at < ? GROUP BY actor ORDER BY actor", window)]
    refusals = [dict(r) for r in conn.execute(
        "SELECT CASE WHEN instr(reason, ':') > 0 THEN substr(reason, 1, instr(reason, ':') - 1) ELSE reason END "
        "AS reason, action, count(*) AS count FROM audit WHERE outcome = 'refused' AND at >= ? AND at < ? "
        "GROUP BY 1, 2 ORDER BY 3 DESC, 1", window)]
    closures = {r[0]: r[1] for r in conn.execute(
        "SELECT status, count(*) FROM searches WHERE closed_at >= ? AND closed_at < ? GROUP BY status", window)}
    cutoff = _days_before(now or utc_now(), stale_days)
    stale = [dict(r) for r in conn.execute(
        "SELECT id AS search_id, case_number AS 'case', agent, created_at, status FROM searches "
        "WHERE status NOT LIKE 'closed%' AND created_at < ? ORDER BY created_at", (cutoff,))]
    return {
        "from": start, "to": end,
        "searches_by_user": per_user,
        "refusals_by_reason": refusals,
        "closed_identified": closures.get("closed-identified", 0),
        "closed_no_identification": closures.get("closed-no-identification", 0),
        "open_older_than_days": stale_days,
        "open_searches_older": stale,
        "chain": verify(conn).__dict__,
    }


def _days_before(stamp: str, days: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S") - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def report_csv(data: dict) -> str:
    """The report as CSV rows: section, key, value."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["section", "item", "value"])
    writer.writerow(["period", "from", data["from"]])
    writer.writerow(["period", "to", data["to"]])
    for row in data["searches_by_user"]:
        writer.writerow(["searches_by_user", row["user"], row["searches"]])
    for row in data["refusals_by_reason"]:
        writer.writerow(["refusals_by_reason", f"{row['action']}:{row['reason']}", row["count"]])
    writer.writerow(["closures", "identified", data["closed_identified"]])
    writer.writerow(["closures", "no-identification", data["closed_no_identification"]])
    for row in data["open_searches_older"]:
        writer.writerow([f"open_older_than_{data['open_older_than_days']}_days", row["search_id"], row["created_at"]])
    writer.writerow(["chain", "ok", data["chain"]["ok"]])
    writer.writerow(["chain", "head", data["chain"]["head"]])
    return buffer.getvalue()
