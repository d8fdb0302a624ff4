"""The chain itself: appending an entry (hashed and HMAC'd), walking it entry by entry, reading entries, and
attaching the key to a connection (sealing the entries written before keys existed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from leadmatch.errors import WorkspaceError
from leadmatch.record.audit.keys import AuditKey, bind, mac, read_key, write_key
from leadmatch.record.audit.reading import Filters, decoded, where
from leadmatch.record.store import transaction, utc_now

GENESIS = "0" * 64
FIELDS = ("id", "at", "actor", "action", "outcome", "case_number", "search_id", "objects", "reason",
          "photo_sha256", "prev_hash")
SYSTEM_ACTOR = "leadmatch"


def entry_hash(row: dict) -> str:
    canonical = json.dumps([row[f] for f in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def attach_key(conn: sqlite3.Connection, path: Path) -> AuditKey:
    """Bind the workspace's audit key to `conn` so `record` signs every entry, creating the key for a new
    workspace or one from before keys (whose old entries are then verified once and sealed).

    A missing key with keyed entries in the trail is an error: a new key would not vouch for them.
    """
    key = read_key(path)
    if key is None:
        with transaction(conn):  # BEGIN IMMEDIATE: one opener creates the key, the others then read it
            key = read_key(path)
            if key is None:
                if conn.execute("SELECT 1 FROM audit WHERE mac IS NOT NULL LIMIT 1").fetchone():
                    raise WorkspaceError(f"the audit key {path} is missing, but the audit trail holds keyed entries",
                                         "restore keys/audit.key from the workspace's backup")
                legacy = conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]
                key = AuditKey(secrets.token_bytes(32), utc_now(), legacy)
                write_key(path, key)
    bind(conn, key)
    if key.legacy_entries and key.seal is None:
        seal_legacy(conn, key, path)
    return key


def seal_legacy(conn: sqlite3.Connection, key: AuditKey, path: Path) -> None:
    """Verify the entries written before the key once, with the old rule, and append the keyed checkpoint entry
    that seals them; then record the seal in the key file so the old entries can never be sealed again."""
    with transaction(conn):
        after = conn.execute("SELECT id, hash, action, mac FROM audit WHERE id = ?",
                             (key.legacy_entries + 1,)).fetchone()
        if after is None:
            legacy = walk(conn, keyed=False, legacy=key.legacy_entries, upto=key.legacy_entries)
            state = "intact" if legacy.ok else f"broken at entry {legacy.bad_entry}: {legacy.problem}"
            head = conn.execute("SELECT hash FROM audit WHERE id = ?", (key.legacy_entries,)).fetchone()
            sealed_id = record(conn, SYSTEM_ACTOR, "audit.checkpoint", "ok" if legacy.ok else "failed",
                               objects={"seal": True, "legacy_entries": key.legacy_entries,
                                        "legacy_head": head[0] if head else None, "legacy_chain": state},
                               reason=None if legacy.ok else f"legacy-chain-broken: {state}")
            after = conn.execute("SELECT id, hash, action, mac FROM audit WHERE id = ?", (sealed_id,)).fetchone()
        # else: sealed earlier, but the key file was not updated (interrupted): take that entry if it is ours
        if after["action"] != "audit.checkpoint" or not after["mac"] or \
                not hmac.compare_digest(after["mac"], key.mac("entry", after["hash"])):
            return  # not a seal this key made: leave it to `verify` to report
        key.seal = {"entry": after["id"], "hash": after["hash"]}
        write_key(path, key)


def record(conn: sqlite3.Connection, actor: str, action: str, outcome: str = "ok", *, case: str | None = None,
           search_id: str | None = None, objects: dict | None = None, reason: str | None = None,
           photos: list[str] | tuple[str, ...] = ()) -> int:
    """Append one entry, hashed and HMAC'd (joining the caller's transaction if there is one). Returns its id.

    `outcome` is "ok", "refused", or "choice-needed" (a search asking which face or track); `photos` are sha256s
    of the photos involved. The connection must hold the audit key (`attach_key`, done by
    `workspace.open_workspace`).
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
        row["hash"] = entry_hash(row)
        row["mac"] = mac(conn, "entry", row["hash"])
        conn.execute(
            f"INSERT INTO audit ({', '.join(FIELDS)}, hash, mac) VALUES ({', '.join('?' * (len(FIELDS) + 2))})",
            [row[f] for f in FIELDS] + [row["hash"], row["mac"]],
        )
        return row["id"]


@dataclass
class Verification:
    """Result of walking the chain: `ok`, entries checked, the head hash (and its entry), and on failure the
    first bad entry (None when the fault is not one entry, e.g. a missing head), what is wrong, and what was
    expected and found there. `keyed_from` is the first entry checked against the key; `checkpoint` the entry
    a checkpoint vouched for."""

    ok: bool
    entries: int
    head: str
    bad_entry: int | None = None
    problem: str | None = None
    expected: str | None = None
    found: str | None = None
    head_entry: int | None = None
    keyed_from: int | None = None
    checkpoint: int | None = None

    def describe(self) -> str:
        """One line for people: where the chain breaks, what is wrong, what was expected and found."""
        where = f" at entry {self.bad_entry}" if self.bad_entry is not None else ""
        detail = f" (expected {self.expected}; found {self.found})" if self.expected or self.found else ""
        return f"audit chain broken{where}: {self.problem}{detail}"


class Broken(Exception):
    def __init__(self, entry: int | None, problem: str, expected: str | None = None, found: str | None = None):
        super().__init__(problem)
        self.entry, self.problem, self.expected, self.found = entry, problem, expected, found


def walk(conn: sqlite3.Connection, *, keyed: bool, legacy: int, seal: dict | None = None, upto: int | None = None,
          expect_head: str | None = None, checkpoint: dict | None = None) -> Verification:
    prev_hash, expected_id, count = GENESIS, 1, 0
    head_seen = expect_head in (None, GENESIS)
    sql = f"SELECT {', '.join(FIELDS)}, hash, mac FROM audit" + (" WHERE id <= ?" if upto is not None else "")
    keyed_from = legacy + 1 if keyed else None
    try:
        for raw in conn.execute(sql + " ORDER BY id", (upto,) if upto is not None else ()):
            row = dict(raw)
            count += 1
            check_entry(conn, row, expected_id, prev_hash, keyed and row["id"] > legacy)
            if seal and row["id"] == seal["entry"] and row["hash"] != seal["hash"]:
                raise Broken(row["id"], f"entry {row['id']} sealed the entries written before the audit key, "
                              "but is not the seal the key file recorded", seal["hash"], row["hash"])
            if checkpoint and row["id"] == checkpoint["entry"] and \
                    (row["hash"], row["mac"]) != (checkpoint["hash"], checkpoint["mac"]):
                raise Broken(row["id"], f"entry {row['id']} differs from the checkpoint made at {checkpoint['at']}",
                              f"hash {checkpoint['hash']}", f"hash {row['hash']}")
            prev_hash, expected_id = row["hash"], expected_id + 1
            head_seen = head_seen or row["hash"] == expect_head
        last = expected_id - 1
        ends = f"the trail ends at entry {last}, head {prev_hash}" if last else "the trail is empty"
        needed = max(legacy if upto is None else 0, (seal or {}).get("entry", 0))
        if last < needed:
            raise Broken(None, f"entries up to {needed} were written before the key or sealed them, but the "
                          "trail is shorter: entries were removed", f"at least {needed} entries", ends)
        if checkpoint and last < checkpoint["entry"]:
            raise Broken(None, f"the checkpoint made at {checkpoint['at']} names entry {checkpoint['entry']}, "
                          "which is no longer in the trail: it was cut back behind the checkpoint",
                          f"entry {checkpoint['entry']} with hash {checkpoint['hash']}", ends)
        if not head_seen:
            raise Broken(None, "the head recorded at an earlier verification is no longer in the chain: entries "
                          "removed or replaced since", f"head {expect_head}", ends)
    except Broken as broken:
        return Verification(False, count, prev_hash, broken.entry, broken.problem, broken.expected, broken.found,
                            head_entry=expected_id - 1 or None, keyed_from=keyed_from)
    return Verification(True, count, prev_hash, head_entry=expected_id - 1 or None, keyed_from=keyed_from,
                        checkpoint=checkpoint["entry"] if checkpoint else None)


def check_entry(conn: sqlite3.Connection, row: dict, expected_id: int, prev_hash: str, keyed: bool) -> None:
    """Raise Broken if `row` is not the entry that should follow: its id, its link, its hash, its HMAC."""
    entry = row["id"]
    if entry != expected_id:
        raise Broken(entry, f"entry {entry} follows entry {expected_id - 1}: entries missing or inserted",
                      f"entry {expected_id}", f"entry {entry}")
    if row["prev_hash"] != prev_hash:
        raise Broken(entry, f"entry {entry} does not chain to the entry before it (deleted, inserted or reordered)",
                      f"previous hash {prev_hash}", f"previous hash {row['prev_hash']}")
    computed = entry_hash(row)
    if computed != row["hash"]:
        raise Broken(entry, f"entry {entry} was edited after it was written",
                      f"its fields to hash to {row['hash']}", f"they hash to {computed}")
    if keyed:
        # Never print the MAC the key would give: that would sign a forged entry for whoever reads the error.
        if not row["mac"]:
            raise Broken(entry, f"entry {entry} carries no HMAC: it was written without the workspace's audit key",
                          "an HMAC-SHA256 of its hash under the workspace's key", "none")
        if not hmac.compare_digest(row["mac"], mac(conn, "entry", row["hash"])):
            raise Broken(entry, f"entry {entry}'s HMAC does not match: it was written or re-hashed without the "
                          "workspace's audit key", "the HMAC of its hash under the workspace's key",
                          f"HMAC {row['mac']}")


def entries(conn: sqlite3.Connection, *, case: str | None = None, actor: str | None = None,
            since: str | None = None, until: str | None = None, search_id: str | None = None,
            limit: int | None = None, action: str | None = None, outcome: str | None = None) -> list[dict]:
    """Audit entries matching the filters (as `reading.Filters` reads them), oldest first — with `limit`, the
    newest `limit` of them — as dicts with `objects` and `photo_sha256` decoded."""
    condition, params = where(Filters(case=case, actor=actor, action=action, outcome=outcome, since=since,
                                      until=until, search_id=search_id))
    sql = f"SELECT * FROM audit{condition} ORDER BY id"
    if limit:
        sql = f"SELECT * FROM (SELECT * FROM audit{condition} ORDER BY id DESC LIMIT {int(limit)}) ORDER BY id"
    return [decoded(raw) for raw in conn.execute(sql, params)]
