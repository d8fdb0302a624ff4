"""The keyed audit chain against someone who can write the database but does not hold the key: each attack is
replayed as a forger would do it (recomputing every hash after the change) and must be caught by `audit verify`
without a head written down elsewhere. Checkpoints, the migration of pre-key workspaces, and the key's secrecy."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import stat

import pytest

from leadmatch.errors import InputError, Refused, WorkspaceError
from leadmatch.governance import oversight
from leadmatch.record import audit, store
from leadmatch.record.workspace import AUDIT_KEY, DB_NAME, init, open_workspace
from leadmatch.search.run import run

from .helpers import ADMIN, AGENT, AUDITOR, PASSWORD, assert_clean_error, login, run_cli, search_request

# What a forger without the key can do: the hash rule is public ------------------------------------------------

def public_hash(row: dict) -> str:
    """sha256 of an entry's fields, as the chain defines it (the rule is no secret)."""
    canonical = json.dumps([row[f] for f in audit.FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def rehash_from(conn: sqlite3.Connection, first: int) -> None:
    """Recompute prev_hash and hash of every entry from `first` on, so the hash chain is whole again."""
    before = conn.execute("SELECT hash FROM audit WHERE id = ?", (first - 1,)).fetchone()
    prev = before[0] if before else audit.GENESIS
    for raw in conn.execute("SELECT * FROM audit WHERE id >= ? ORDER BY id", (first,)).fetchall():
        row = dict(raw) | {"prev_hash": prev}
        row["hash"] = public_hash(row)
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, row["hash"], row["id"]))
        prev = row["hash"]


def hash_chain_is_whole(conn: sqlite3.Connection) -> bool:
    """The unkeyed check (what `verify` did before keys): ids consecutive, links and hashes consistent."""
    prev = audit.GENESIS
    for number, raw in enumerate(conn.execute("SELECT * FROM audit ORDER BY id"), start=1):
        row = dict(raw)
        if row["id"] != number or row["prev_hash"] != prev or public_hash(row) != row["hash"]:
            return False
        prev = row["hash"]
    return True


def shift_ids(conn: sqlite3.Connection, first: int, by: int) -> None:
    conn.execute("UPDATE audit SET id = id + 100000 WHERE id >= ?", (first,))
    conn.execute("UPDATE audit SET id = id - 100000 + ? WHERE id >= 100000", (by,))


def key_hex(home) -> str:
    return json.loads((home / AUDIT_KEY).read_text())["key"]


def true_mac(home, entry_hash: str) -> str:
    """The MAC the key gives (only the test, holding the key file, can compute it)."""
    message = f"leadmatch audit entry v1\n{entry_hash}".encode()
    return hmac.new(bytes.fromhex(key_hex(home)), message, hashlib.sha256).hexdigest()


@pytest.fixture
def busy(ws):
    """The enrolled workspace after a search: a trail of a few dozen entries."""
    run(ws, AGENT, search_request("obama-720p.jpg", top_k=3))
    assert oversight.verify(ws, AUDITOR).ok
    assert ws.conn.execute("SELECT count(*) FROM audit").fetchone()[0] > 12
    return ws


# The attacks ------------------------------------------------------------------------------------------------

def test_recomputed_chain_is_detected(busy, home):
    conn = busy.conn
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE id = 5")
    rehash_from(conn, 5)
    assert hash_chain_is_whole(conn)  # the unkeyed chain is fooled…
    result = audit.verify(conn)
    assert not result.ok and result.bad_entry == 5, result  # …the keyed one is not
    assert "HMAC" in result.problem and result.found.startswith("HMAC ")
    # the error never hands out the MAC that would make the forgery pass
    forged_hash = conn.execute("SELECT hash FROM audit WHERE id = 5").fetchone()[0]
    assert true_mac(home, forged_hash) not in json.dumps(result.__dict__)

    login(home, AUDITOR)
    cli = run_cli("audit", "verify", home=home)
    assert_clean_error(cli, "broken at entry 5", "HMAC", code=6)
    assert "None" not in cli.stderr and true_mac(home, forged_hash) not in cli.stderr


def test_deleted_entries_are_detected(busy):
    conn = busy.conn
    conn.execute("DELETE FROM audit WHERE id = 6")
    shift_ids(conn, 7, -1)
    rehash_from(conn, 6)
    assert hash_chain_is_whole(conn)
    result = audit.verify(conn)
    assert not result.ok and result.bad_entry == 6 and "HMAC" in result.problem, result


def test_inserted_entries_are_detected(busy):
    conn = busy.conn
    shift_ids(conn, 8, 1)
    row = dict(conn.execute("SELECT * FROM audit WHERE id = 7").fetchone())
    row.update(id=8, action="gallery.enroll", actor="ana", mac=row["mac"])  # a made-up entry, MAC copied along
    conn.execute(f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    rehash_from(conn, 8)
    assert hash_chain_is_whole(conn)
    result = audit.verify(conn)
    assert not result.ok and result.bad_entry == 8 and "HMAC" in result.problem, result


def test_inserted_entry_without_a_mac_is_detected(busy):
    conn = busy.conn
    last = dict(conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT 1").fetchone())
    row = last | {"id": last["id"] + 1, "action": "search", "prev_hash": last["hash"], "mac": None}
    row["hash"] = public_hash(row)
    conn.execute(f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    result = audit.verify(conn)
    assert not result.ok and result.bad_entry == row["id"] and "no HMAC" in result.problem
    assert (result.expected, result.found) == ("an HMAC-SHA256 of its hash under the workspace's key", "none")


def test_reordered_entries_are_detected(busy):
    conn = busy.conn
    a, b = (dict(conn.execute("SELECT * FROM audit WHERE id = ?", (i,)).fetchone()) for i in (3, 4))
    for target, source in ((3, b), (4, a)):
        columns = [c for c in source if c != "id"]
        conn.execute(f"UPDATE audit SET {', '.join(c + ' = ?' for c in columns)} WHERE id = ?",
                     [source[c] for c in columns] + [target])
    rehash_from(conn, 3)
    assert hash_chain_is_whole(conn)
    result = audit.verify(conn)
    assert not result.ok and result.bad_entry == 3 and "HMAC" in result.problem, result


# Checkpoints ------------------------------------------------------------------------------------------------

def test_checkpoint_roundtrip(busy, home, tmp_path):
    busy.close()
    login(home, AUDITOR)
    filed = tmp_path / "filed" / "checkpoint-1.json"
    filed.parent.mkdir()
    made = run_cli("audit", "checkpoint", "--out", str(filed), home=home)
    assert made.returncode == 0, made.stderr
    checkpoint = json.loads(filed.read_text())
    assert set(checkpoint) == {"format", "entry", "hash", "mac", "at", "made_by", "signature"}
    assert checkpoint["made_by"] == "audra" and f"entry {checkpoint['entry']}" in made.stdout

    ws = open_workspace(home)
    head = ws.conn.execute("SELECT id, hash, mac, action FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert (head["id"], head["hash"], head["mac"], head["action"]) == \
        (checkpoint["entry"], checkpoint["hash"], checkpoint["mac"], "audit.checkpoint")
    run(ws, AGENT, search_request("obama1.jpg", case="T-2"))  # the trail goes on after the checkpoint
    ws.close()

    verified = run_cli("audit", "verify", "--checkpoint", str(filed), home=home)
    assert verified.returncode == 0 and f"checkpoint entry {checkpoint['entry']} unchanged" in verified.stdout
    as_json = json.loads(run_cli("audit", "verify", "--checkpoint", str(filed), "--json", home=home).stdout)
    assert as_json["ok"] and as_json["checkpoint"] == checkpoint["entry"]

    # without --out the checkpoint goes to stdout, and it verifies too
    printed = run_cli("audit", "checkpoint", home=home)
    second = tmp_path / "checkpoint-2.json"
    second.write_text(printed.stdout)
    assert run_cli("audit", "verify", "--checkpoint", str(second), home=home).returncode == 0

    # an edited checkpoint (someone making it fit a rewritten trail) is not signed by this workspace
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(checkpoint | {"hash": "1" * 64}))
    assert_clean_error(run_cli("audit", "verify", "--checkpoint", str(forged), home=home),
                       "not signed with this workspace's audit key", code=6)

    # filed checkpoints are never overwritten; bad files get a one-line error
    assert_clean_error(run_cli("audit", "checkpoint", "--out", str(filed), home=home), "already exists", code=1)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert_clean_error(run_cli("audit", "verify", "--checkpoint", str(garbage), home=home),
                       "cannot read checkpoint", code=1)
    garbage.write_text('{"format": "something else"}')
    assert_clean_error(run_cli("audit", "verify", "--checkpoint", str(garbage), home=home),
                       "not a leadmatch audit checkpoint", code=1)
    assert_clean_error(run_cli("audit", "verify", "--checkpoint", str(tmp_path / "nope.json"), home=home),
                       "no checkpoint file", code=1)


def test_checkpoint_is_for_auditors_and_audited(busy, tmp_path):
    with pytest.raises(Refused):
        oversight.checkpoint(busy, ADMIN, tmp_path / "c.json")
    refused = [e for e in audit.entries(busy.conn) if e["outcome"] == "refused"][-1]
    assert refused["action"] == "audit.checkpoint" and refused["actor"] == "admin"
    assert not (tmp_path / "c.json").exists()


def test_checkpoint_from_another_workspace_is_refused(busy, empty_ws, tmp_path):
    other = oversight.checkpoint(empty_ws, AUDITOR, tmp_path / "other.json")
    result = oversight.verify(busy, AUDITOR, checkpoint=audit.read_checkpoint(tmp_path / "other.json"))
    assert not result.ok and "another workspace" in result.problem
    assert other["signature"] == result.found


def test_truncation_behind_checkpoint(busy, home, tmp_path):
    filed = tmp_path / "checkpoint.json"
    made = oversight.checkpoint(busy, AUDITOR, filed)
    run(busy, AGENT, search_request("obama1.jpg", case="T-3"))
    assert oversight.verify(busy, AUDITOR, checkpoint=audit.read_checkpoint(filed)).ok
    busy.conn.execute("DELETE FROM audit WHERE id >= ?", (made["entry"] - 2,))  # cut back behind the checkpoint
    assert audit.verify(busy.conn).ok  # a shorter chain is still a valid chain…
    result = audit.verify(busy.conn, checkpoint=audit.read_checkpoint(filed))
    assert not result.ok and "cut back behind the checkpoint" in result.problem  # …but not the one filed
    assert result.expected == f"entry {made['entry']} with hash {made['hash']}"
    assert result.found.startswith(f"the trail ends at entry {made['entry'] - 3}, head ")

    login(home, AUDITOR)
    cli = run_cli("audit", "verify", "--checkpoint", str(filed), home=home)
    assert_clean_error(cli, "cut back behind the checkpoint", f"expected entry {made['entry']}", code=6)
    assert "None" not in cli.stderr


def test_checkpoint_holds_even_against_someone_with_the_key(busy, home, tmp_path):
    """If the key is ever stolen, entries can be re-signed; a checkpoint filed outside still pins the past."""
    filed = tmp_path / "checkpoint.json"
    made = oversight.checkpoint(busy, AUDITOR, filed)
    conn = busy.conn
    conn.execute("UPDATE audit SET reason = 'nothing to see' WHERE id = 4")
    rehash_from(conn, 4)
    for entry_id, entry_hash in conn.execute("SELECT id, hash FROM audit WHERE id >= 4").fetchall():
        conn.execute("UPDATE audit SET mac = ? WHERE id = ?", (true_mac(home, entry_hash), entry_id))
    assert audit.verify(conn).ok  # with the key, the rewrite is perfect…
    result = audit.verify(conn, checkpoint=audit.read_checkpoint(filed))
    assert not result.ok and result.bad_entry == made["entry"]  # …except against the filed checkpoint
    assert "differs from the checkpoint" in result.problem and result.expected == f"hash {made['hash']}"


# #10 item 15: a failed verification says what was expected and what was found ------------------------------

def test_expect_head_failure_says_expected_and_found(busy, home):
    head = oversight.verify(busy, AUDITOR).head
    run(busy, AGENT, search_request("obama1.jpg", case="T-3"))
    assert oversight.verify(busy, AUDITOR, expect_head=head).ok
    head_id = busy.conn.execute("SELECT id FROM audit WHERE hash = ?", (head,)).fetchone()[0]
    busy.conn.execute("DELETE FROM audit WHERE id >= ?", (head_id - 1,))
    login(home, AUDITOR)
    cli = run_cli("audit", "verify", "--expect-head", head, home=home)
    assert_clean_error(cli, "no longer in the chain", f"expected head {head}", "found the trail ends at entry",
                       code=6)  # (the auditor's sign-in added entries after the cut)
    assert "entry None" not in cli.stderr and "None" not in cli.stderr

    edited = run_cli("audit", "verify", "--json", home=home)  # the chain itself still verifies
    assert edited.returncode == 0
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute("UPDATE audit SET reason = 'nothing to see' WHERE id = 3")
    cli = run_cli("audit", "verify", home=home)
    assert_clean_error(cli, "broken at entry 3", "edited after it was written", "expected its fields to hash to",
                       "found they hash to", code=6)


# Migration of workspaces from before the key -----------------------------------------------------------------

def old_style_workspace(home, entries: int = 6) -> list[str]:
    """A workspace as the unkeyed version left it: schema 5, no key, entries chained by sha256 only."""
    home.mkdir(parents=True)
    conn = sqlite3.connect(home / DB_NAME, isolation_level=None)
    for number, script in enumerate(store.MIGRATIONS[:5], start=1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {number}")
    prev, hashes = audit.GENESIS, []
    for number in range(1, entries + 1):  # written the old way: hash of the fields, no MAC
        row = {"id": number, "at": f"2026-01-0{number}T10:00:00.000000Z", "actor": "chief", "action": "user.add",
               "outcome": "ok", "case_number": None, "search_id": None, "objects": json.dumps({"user": f"u{number}"}),
               "reason": None, "photo_sha256": "[]", "prev_hash": prev}
        row["hash"] = public_hash(row)
        conn.execute(f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        prev = row["hash"]
        hashes.append(prev)
    conn.close()
    return hashes


def test_migrated_workspace(tmp_path):
    home = tmp_path / "old"
    hashes = old_style_workspace(home)
    assert not (home / AUDIT_KEY).exists()

    ws = open_workspace(home)  # first open: key created, old entries verified once and sealed
    key_file = json.loads((home / AUDIT_KEY).read_text())
    assert key_file["legacy_entries"] == 6 and key_file["seal"]["entry"] == 7
    seal = audit.entries(ws.conn)[6]
    assert (seal["id"], seal["actor"], seal["action"], seal["outcome"]) == (7, "leadmatch", "audit.checkpoint", "ok")
    assert seal["objects"] == {"seal": True, "legacy_entries": 6, "legacy_head": hashes[-1], "legacy_chain": "intact"}
    audit.record(ws.conn, "chief", "user.add", objects={"user": "new"})
    macs = [r[0] for r in ws.conn.execute("SELECT mac FROM audit ORDER BY id")]
    assert macs[:6] == [None] * 6 and all(macs[6:])
    result = audit.verify(ws.conn)
    assert result.ok and result.entries == 8 and result.keyed_from == 7, result
    ws.close()

    ws = open_workspace(home)  # later opens do not seal again
    assert ws.conn.execute("SELECT count(*) FROM audit WHERE action = 'audit.checkpoint'").fetchone()[0] == 1

    # the old entries are now protected like the new: rewriting one breaks the seal
    conn = ws.conn
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE id = 2")
    rehash_from(conn, 2)
    assert hash_chain_is_whole(conn)
    result = audit.verify(conn)
    assert not result.ok and result.bad_entry == 7 and "HMAC" in result.problem, result

    # and they cannot be laundered by cutting the trail back to them and having them sealed again
    conn.execute("DELETE FROM audit WHERE id >= 7")
    ws.close()
    ws = open_workspace(home)
    assert ws.conn.execute("SELECT max(id) FROM audit").fetchone()[0] == 6  # not resealed
    result = audit.verify(ws.conn)
    assert not result.ok and "entries were removed" in result.problem and result.expected == "at least 7 entries"
    ws.close()


def test_migrated_workspace_with_a_broken_old_chain_says_so(tmp_path):
    home = tmp_path / "old"
    old_style_workspace(home)
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute("UPDATE audit SET actor = 'edited' WHERE id = 3")
    ws = open_workspace(home)
    seal = audit.entries(ws.conn)[-1]
    assert seal["outcome"] == "failed" and seal["objects"]["legacy_chain"].startswith("broken at entry 3")
    result = audit.verify(ws.conn)
    assert not result.ok and result.bad_entry == 3
    ws.close()


def test_concurrent_first_opens_seal_once(tmp_path):
    home = tmp_path / "old"
    old_style_workspace(home)
    first, second = open_workspace(home), open_workspace(home)
    assert audit.verify(first.conn).ok and audit.verify(second.conn).ok
    assert first.conn.execute("SELECT count(*) FROM audit WHERE action = 'audit.checkpoint'").fetchone()[0] == 1
    first.close()
    second.close()


# The key ----------------------------------------------------------------------------------------------------

def test_key_is_private_and_never_in_any_output_or_the_database(tmp_path):
    home = tmp_path / "fresh"
    created = run_cli("init", "--admin", "chief", "--password-stdin", home=home, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    assert stat.S_IMODE(os.stat(home / AUDIT_KEY).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / AUDIT_KEY.parent).st_mode) == 0o700
    secret = key_hex(home)
    outputs = [created]
    login(home, "chief")
    outputs.append(run_cli("user", "add", "audra", "--role", "auditor", "--password-stdin", home=home,
                           input=f"{PASSWORD}\n{PASSWORD}\n"))
    login(home, "audra")
    for command in (["audit", "verify", "--json"], ["audit", "checkpoint"], ["audit", "log", "--json"],
                    ["audit", "report", "--from", "2026-01-01", "--to", "2099-01-01"], ["whoami"]):
        outputs.append(run_cli(*command, home=home))
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    for o in outputs:
        assert secret not in o.stdout + o.stderr and secret.upper() not in o.stdout + o.stderr
    raw = bytes.fromhex(secret)
    for name in (DB_NAME, DB_NAME + "-wal"):
        if (home / name).exists():
            data = (home / name).read_bytes()
            assert raw not in data and secret.encode() not in data
    assert secret not in repr(audit.read_key(home / AUDIT_KEY))


def test_missing_key_with_a_keyed_trail_is_an_error(ws, home):
    ws.close()
    shutil.move(home / AUDIT_KEY, home / "stolen.key")
    with pytest.raises(WorkspaceError, match="audit key .* is missing"):
        open_workspace(home)
    login_result = run_cli("login", "audra", "--password-stdin", home=home, input=PASSWORD + "\n")
    assert_clean_error(login_result, "audit key", "restore keys/audit.key", code=1)
    assert not (home / AUDIT_KEY).exists()  # no new key was made in its place


def test_damaged_key_file_is_an_error(ws, home):
    ws.close()
    (home / AUDIT_KEY).write_text("not a key")
    with pytest.raises(WorkspaceError, match="not a leadmatch audit key"):
        open_workspace(home)


def test_connection_without_the_key_cannot_append(home):
    conn = store.connect(home / DB_NAME)
    with pytest.raises(WorkspaceError, match="holds no audit key"):
        audit.record(conn, "someone", "search")
    conn.close()


def test_new_workspace_is_keyed_from_its_first_entry(tmp_path):
    ws, created = init(tmp_path / "new")
    assert created and (tmp_path / "new" / AUDIT_KEY).exists()
    audit.record(ws.conn, "x", "first")
    assert ws.conn.execute("SELECT mac FROM audit WHERE id = 1").fetchone()[0]
    assert audit.verify(ws.conn).keyed_from == 1
    with pytest.raises(InputError):
        audit.read_checkpoint(tmp_path / "new" / DB_NAME)
    ws.close()
