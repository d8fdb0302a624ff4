"""The audit trail: one chained, keyed entry per action, refusals included.

Each entry's `hash` is the sha256 of its own fields plus the previous entry's hash, and its `mac` is an
HMAC-SHA256 of that hash under the workspace's audit key (`keys/audit.key`, created at `init`, held by whoever
owns the workspace, never in the database and never printed). Editing, deleting, inserting or reordering
entries breaks the hash chain; recomputing the hashes after an edit leaves entries whose HMAC does not match,
which only the key holder could fix. `verify` reports the first entry that does not fit, with what it expected
and what it found.

Truncating the newest entries leaves a valid shorter chain. Two answers: a head hash written down earlier
(`expect_head`), or a signed checkpoint (`checkpoint`: the head entry's id, hash, HMAC and time, signed with
the key) filed outside the system and passed back to `verify`.

Workspaces from before the key: the first open creates the key, verifies the old entries once with the old
(unkeyed) rule and appends a keyed `audit.checkpoint` entry that seals them; the key file records how many
entries were old and the seal's hash, so they cannot be rewritten and sealed again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from leadmatch.errors import InputError, WorkspaceError
from leadmatch.record.store import transaction, utc_now

GENESIS = "0" * 64
FIELDS = ("id", "at", "actor", "action", "outcome", "case_number", "search_id", "objects", "reason",
          "photo_sha256", "prev_hash")
KEY_FORMAT = "leadmatch-audit-key/1"
CHECKPOINT_FORMAT = "leadmatch-audit-checkpoint/1"
CHECKPOINT_FIELDS = ("format", "entry", "hash", "mac", "at", "made_by")
SYSTEM_ACTOR = "leadmatch"
_MAC_FUNCTION = "leadmatch_audit_mac"      # SQL function bound to a connection: the key stays in this process
_STATE_FUNCTION = "leadmatch_audit_state"  # what the key file says besides the key (old entries, seal)


def _canonical(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _entry_hash(row: dict) -> str:
    canonical = json.dumps([row[f] for f in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# The key ---------------------------------------------------------------------------------------------------

@dataclass
class AuditKey:
    """The workspace's audit key and what its file records: the number of entries written before the key
    existed (`legacy_entries`, verified once with the old rule) and the entry that sealed them (`seal`)."""

    secret: bytes = field(repr=False)
    created_at: str
    legacy_entries: int = 0
    seal: dict | None = None

    def mac(self, purpose: str, message: str) -> str:
        """HMAC-SHA256 of `message`, separated by `purpose` so an entry MAC never serves as a checkpoint's."""
        return hmac.new(self.secret, f"leadmatch audit {purpose} v1\n{message}".encode("utf-8"),
                        hashlib.sha256).hexdigest()

    def state(self) -> str:
        return json.dumps({"legacy_entries": self.legacy_entries, "seal": self.seal})


def read_key(path: Path) -> AuditKey | None:
    """The audit key at `path`, or None if there is no file. A file that is not a key is an error."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("format") != KEY_FORMAT:
            raise ValueError
        return AuditKey(bytes.fromhex(data["key"]), data["created_at"], int(data["legacy_entries"]),
                        data.get("seal"))
    except FileNotFoundError:
        return None
    except PermissionError:
        raise WorkspaceError(f"cannot read the audit key {path}",
                             "run leadmatch as the account that owns the workspace") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise WorkspaceError(f"{path} is not a leadmatch audit key",
                             "restore keys/audit.key from the workspace's backup") from None


def _write_key(path: Path, key: AuditKey) -> None:
    """Write the key file readable by its owner only (mode 0600, folder 0700), through a temp file."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    body = json.dumps({"format": KEY_FORMAT, "key": key.secret.hex(), "created_at": key.created_at,
                       "legacy_entries": key.legacy_entries, "seal": key.seal}, indent=1) + "\n"
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, body.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temp, path)


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
                _write_key(path, key)
    _bind(conn, key)
    if key.legacy_entries and key.seal is None:
        _seal(conn, key, path)
    return key


def _bind(conn: sqlite3.Connection, key: AuditKey) -> None:
    conn.create_function(_MAC_FUNCTION, 2, key.mac, deterministic=True)
    conn.create_function(_STATE_FUNCTION, 0, key.state)


def _mac(conn: sqlite3.Connection, purpose: str, message: str) -> str:
    try:
        return conn.execute(f"SELECT {_MAC_FUNCTION}(?, ?)", (purpose, message)).fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "no such function" not in str(exc):
            raise
        raise WorkspaceError("this connection holds no audit key",
                             "open the workspace with leadmatch (workspace.open_workspace)") from None


def _key_state(conn: sqlite3.Connection) -> dict:
    _mac(conn, "probe", "")  # raises the clear error when no key is bound
    return json.loads(conn.execute(f"SELECT {_STATE_FUNCTION}()").fetchone()[0])


def _seal(conn: sqlite3.Connection, key: AuditKey, path: Path) -> None:
    """Verify the entries written before the key once, with the old rule, and append the keyed checkpoint entry
    that seals them; then record the seal in the key file so the old entries can never be sealed again."""
    with transaction(conn):
        after = conn.execute("SELECT id, hash, action, mac FROM audit WHERE id = ?",
                             (key.legacy_entries + 1,)).fetchone()
        if after is None:
            legacy = _walk(conn, keyed=False, legacy=key.legacy_entries, upto=key.legacy_entries)
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
        _write_key(path, key)


# Appending -------------------------------------------------------------------------------------------------

def record(conn: sqlite3.Connection, actor: str, action: str, outcome: str = "ok", *, case: str | None = None,
           search_id: str | None = None, objects: dict | None = None, reason: str | None = None,
           photos: list[str] | tuple[str, ...] = ()) -> int:
    """Append one entry, hashed and HMAC'd (joining the caller's transaction if there is one). Returns its id.

    `outcome` is "ok" or "refused"; `photos` are sha256s of the photos involved. The connection must hold
    the audit key (`attach_key`, done by `workspace.open_workspace`).
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
        row["mac"] = _mac(conn, "entry", row["hash"])
        conn.execute(
            f"INSERT INTO audit ({', '.join(FIELDS)}, hash, mac) VALUES ({', '.join('?' * (len(FIELDS) + 2))})",
            [row[f] for f in FIELDS] + [row["hash"], row["mac"]],
        )
        return row["id"]


# Checking --------------------------------------------------------------------------------------------------

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


class _Broken(Exception):
    def __init__(self, entry: int | None, problem: str, expected: str | None = None, found: str | None = None):
        super().__init__(problem)
        self.entry, self.problem, self.expected, self.found = entry, problem, expected, found


def verify(conn: sqlite3.Connection, expect_head: str | None = None, checkpoint: dict | None = None) -> Verification:
    """Walk the chain in id order: ids consecutive, each entry chained to the one before, its fields giving its
    hash, and — after the entries from before the key — its HMAC matching under the workspace's key.

    `expect_head`: a head hash written down earlier must still be in the chain. `checkpoint` (from
    `read_checkpoint`): it must be signed with this workspace's key, and its entry must be in the chain
    unchanged, so nothing up to it changed and the trail was not cut back behind it.
    """
    state = _key_state(conn)
    if checkpoint is not None and not _signature_ok(conn, checkpoint):
        return Verification(False, 0, GENESIS, None,
                            "the checkpoint is not signed with this workspace's audit key: it was altered, or it "
                            "belongs to another workspace",
                            expected="a signature made with this workspace's key", found=checkpoint["signature"])
    return _walk(conn, keyed=True, legacy=state["legacy_entries"], seal=state["seal"], expect_head=expect_head,
                 checkpoint=checkpoint)


def _walk(conn: sqlite3.Connection, *, keyed: bool, legacy: int, seal: dict | None = None, upto: int | None = None,
          expect_head: str | None = None, checkpoint: dict | None = None) -> Verification:
    prev_hash, expected_id, count = GENESIS, 1, 0
    head_seen = expect_head in (None, GENESIS)
    sql = f"SELECT {', '.join(FIELDS)}, hash, mac FROM audit" + (" WHERE id <= ?" if upto is not None else "")
    keyed_from = legacy + 1 if keyed else None
    try:
        for raw in conn.execute(sql + " ORDER BY id", (upto,) if upto is not None else ()):
            row = dict(raw)
            count += 1
            _check_entry(conn, row, expected_id, prev_hash, keyed and row["id"] > legacy)
            if seal and row["id"] == seal["entry"] and row["hash"] != seal["hash"]:
                raise _Broken(row["id"], f"entry {row['id']} sealed the entries written before the audit key, "
                              "but is not the seal the key file recorded", seal["hash"], row["hash"])
            if checkpoint and row["id"] == checkpoint["entry"] and \
                    (row["hash"], row["mac"]) != (checkpoint["hash"], checkpoint["mac"]):
                raise _Broken(row["id"], f"entry {row['id']} differs from the checkpoint made at {checkpoint['at']}",
                              f"hash {checkpoint['hash']}", f"hash {row['hash']}")
            prev_hash, expected_id = row["hash"], expected_id + 1
            head_seen = head_seen or row["hash"] == expect_head
        last = expected_id - 1
        ends = f"the trail ends at entry {last}, head {prev_hash}" if last else "the trail is empty"
        needed = max(legacy if upto is None else 0, (seal or {}).get("entry", 0))
        if last < needed:
            raise _Broken(None, f"entries up to {needed} were written before the key or sealed them, but the "
                          "trail is shorter: entries were removed", f"at least {needed} entries", ends)
        if checkpoint and last < checkpoint["entry"]:
            raise _Broken(None, f"the checkpoint made at {checkpoint['at']} names entry {checkpoint['entry']}, "
                          "which is no longer in the trail: it was cut back behind the checkpoint",
                          f"entry {checkpoint['entry']} with hash {checkpoint['hash']}", ends)
        if not head_seen:
            raise _Broken(None, "the head recorded at an earlier verification is no longer in the chain: entries "
                          "removed or replaced since", f"head {expect_head}", ends)
    except _Broken as broken:
        return Verification(False, count, prev_hash, broken.entry, broken.problem, broken.expected, broken.found,
                            head_entry=expected_id - 1 or None, keyed_from=keyed_from)
    return Verification(True, count, prev_hash, head_entry=expected_id - 1 or None, keyed_from=keyed_from,
                        checkpoint=checkpoint["entry"] if checkpoint else None)


def _check_entry(conn: sqlite3.Connection, row: dict, expected_id: int, prev_hash: str, keyed: bool) -> None:
    """Raise _Broken if `row` is not the entry that should follow: its id, its link, its hash, its HMAC."""
    entry = row["id"]
    if entry != expected_id:
        raise _Broken(entry, f"entry {entry} follows entry {expected_id - 1}: entries missing or inserted",
                      f"entry {expected_id}", f"entry {entry}")
    if row["prev_hash"] != prev_hash:
        raise _Broken(entry, f"entry {entry} does not chain to the entry before it (deleted, inserted or reordered)",
                      f"previous hash {prev_hash}", f"previous hash {row['prev_hash']}")
    computed = _entry_hash(row)
    if computed != row["hash"]:
        raise _Broken(entry, f"entry {entry} was edited after it was written",
                      f"its fields to hash to {row['hash']}", f"they hash to {computed}")
    if keyed:
        # Never print the MAC the key would give: that would sign a forged entry for whoever reads the error.
        if not row["mac"]:
            raise _Broken(entry, f"entry {entry} carries no HMAC: it was written without the workspace's audit key",
                          "an HMAC-SHA256 of its hash under the workspace's key", "none")
        if not hmac.compare_digest(row["mac"], _mac(conn, "entry", row["hash"])):
            raise _Broken(entry, f"entry {entry}'s HMAC does not match: it was written or re-hashed without the "
                          "workspace's audit key", "the HMAC of its hash under the workspace's key",
                          f"HMAC {row['mac']}")


# Checkpoints -----------------------------------------------------------------------------------------------

def checkpoint(conn: sqlite3.Connection, actor: str) -> dict:
    """Append an `audit.checkpoint` entry and return the signed checkpoint of it (the new head): format, entry
    id, hash, HMAC, time, who made it, and a signature over those under the key. File it outside the system."""
    with transaction(conn):
        entry_id = record(conn, actor, "audit.checkpoint")
        row = conn.execute("SELECT id, hash, mac, at FROM audit WHERE id = ?", (entry_id,)).fetchone()
    made = {"format": CHECKPOINT_FORMAT, "entry": row["id"], "hash": row["hash"], "mac": row["mac"],
            "at": row["at"], "made_by": actor}
    return made | {"signature": _mac(conn, "checkpoint", _canonical(made))}


def _signature_ok(conn: sqlite3.Connection, made: dict) -> bool:
    expected = _mac(conn, "checkpoint", _canonical({f: made[f] for f in CHECKPOINT_FIELDS}))
    return hmac.compare_digest(expected, made["signature"])


def read_checkpoint(path: Path) -> dict:
    """A checkpoint file as written by `leadmatch audit checkpoint`, its shape checked (not yet its signature)."""
    try:
        made = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no checkpoint file {path}", CHECKPOINT_HINT) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot read checkpoint {path}: {getattr(exc, 'strerror', None) or 'not JSON'}",
                         CHECKPOINT_HINT) from None
    return checked_checkpoint(made, str(path))


CHECKPOINT_HINT = "pass the file that `leadmatch audit checkpoint --out FILE` wrote"


def checked_checkpoint(made, source: str = "the checkpoint") -> dict:
    """`made` if it has a checkpoint's shape (format, entry, time, author, three sha256-sized hex fields)."""
    hexes = ("hash", "mac", "signature")
    if not isinstance(made, dict) or made.get("format") != CHECKPOINT_FORMAT \
            or not isinstance(made.get("entry"), int) or isinstance(made.get("entry"), bool) or made["entry"] < 1 \
            or not all(isinstance(made.get(f), str) for f in ("at", "made_by", *hexes)) \
            or not all(len(made[f]) == 64 and all(c in "0123456789abcdef" for c in made[f]) for f in hexes):
        raise InputError(f"{source} is not a leadmatch audit checkpoint", CHECKPOINT_HINT)
    return made


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

    from leadmatch.safetext import csv_cell

    class SafeWriter:  # every cell shown safely, never a formula (user names and reasons are stored strings)
        def __init__(self, out) -> None:
            self._writer = csv.writer(out)

        def writerow(self, row) -> None:
            self._writer.writerow([csv_cell(cell) for cell in row])

    buffer = io.StringIO()
    writer = SafeWriter(buffer)
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
