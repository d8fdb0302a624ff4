"""The hardening campaign, kept: every input and every interruption ends in a clear answer, with nothing lost.

- kill -9 during enroll, search and index build at seeded random moments, then the consistency checks: SQLite
  integrity, record ↔ stored files ↔ index, the audit chain, and a re-run that completes without duplicates;
- two enrollments at once over overlapping photos;
- a generated corpus of bad files (truncations, bit flips, bombs, special files, odd names) through the real
  CLI: no traceback, no exit 70, no hang, and every entry offered accounted for;
- the defects the campaign found (issue #10), each reproduced.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leadmatch.cli import credentials
from leadmatch.errors import InputError, Refused
from leadmatch.gallery import galleries as galleries
from leadmatch.gallery import index
from leadmatch.gallery.enrollment import enroll
from leadmatch.governance import accounts
from leadmatch.record import audit, store
from leadmatch.record.workspace import init, open_workspace
from leadmatch.search.run import run as run_search

from .helpers import (
    ADMIN,
    AGENT,
    ANALYST,
    FACES,
    GALLERY,
    GALLERY_DIR,
    MEANS,
    PASSWORD,
    PROBES_DIR,
    ROOT,
    add_people,
    create_gallery,
    search_request,
)

LFW = Path(os.environ.get("LEADMATCH_TEST_LFW", FACES.parent / "lfw-dev"))
#: LFW photos that hold one gallery-quality face (checked when this campaign was written).
LFW_FACES = ["AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Pena/Aaron_Pena_0001.jpg", "Aaron_Tippin/Aaron_Tippin_0001.jpg",
             "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg", "Adam_Ant/Adam_Ant_0001.jpg",
             "Adam_Kennedy/Adam_Kennedy_0001.jpg", "Adam_Scott/Adam_Scott_0001.jpg"]
OBAMA = GALLERY_DIR / "barack_obama" / "obama.jpg"
SEED = 20261126
TRIALS = 3
LIMIT_S = 90  # no single command may take longer: a hang fails the test instead of stalling it


def cli(*args: str, home: Path, timeout: float = LIMIT_S) -> subprocess.CompletedProcess:
    """The real `leadmatch` command, bytes in and out (names need not be UTF-8), under a time limit."""
    env = {k: v for k, v in os.environ.items() if k != "LEADMATCH_DEBUG"}
    return subprocess.run([sys.executable, "-m", "leadmatch", "--home", os.fsencode(home), *args],
                          capture_output=True, env=env, timeout=timeout, cwd=ROOT)


def start(*args: str, home: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "LEADMATCH_DEBUG"}
    return subprocess.Popen([sys.executable, "-m", "leadmatch", "--home", str(home), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def assert_answered(result, *, allow_ok: bool = True) -> str:
    """A command ended in a clear answer: exit 0, or one `error:` line and an exit code other than 70."""
    err = result.stderr.decode("utf-8", "replace")
    out = result.stdout.decode("utf-8", "replace")
    assert "Traceback" not in err + out and "internal error" not in err, err
    assert result.returncode not in (70, -9), (result.returncode, err)
    if result.returncode == 0:
        assert allow_ok, out
    else:
        assert err.startswith("error: "), err
    return err


def sign_in(home: Path, actor) -> None:
    """Sign `actor` in for the CLI (the session kept in this test's private config folder)."""
    ws = open_workspace(home)
    token, _, _ = accounts.login(ws, actor.name, PASSWORD)
    credentials.remember(home, token)
    ws.close()


@pytest.fixture(scope="module")
def blank_template(tmp_path_factory) -> Path:
    """A workspace with accounts and an empty authorized gallery."""
    home = tmp_path_factory.mktemp("blank") / "home"
    ws, _ = init(home)
    add_people(ws)
    create_gallery(ws)
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()
    return home


def copy_of(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


# Consistency checks ------------------------------------------------------------------------------------

def check_consistent(home: Path) -> None:
    """The workspace after an interruption: SQLite whole, every recorded photo with its face and stored file,
    the trigger-kept stats right, any index file readable and the repaired index equal to the record, and the
    audit chain intact."""
    with sqlite3.connect(home / "leadmatch.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    ws = open_workspace(home)
    try:
        conn = ws.conn
        assert conn.execute("SELECT count(*) FROM photos p LEFT JOIN (SELECT photo_id, count(*) AS n FROM faces "
                            "GROUP BY photo_id) f ON f.photo_id = p.id WHERE coalesce(f.n, 0) != 1").fetchone()[0] == 0
        for (stored,) in conn.execute("SELECT DISTINCT stored_path FROM photos"):
            assert (home / stored).is_file(), stored
        for (stored,) in conn.execute("SELECT probe_stored_path FROM searches WHERE probe_stored_path IS NOT NULL"):
            assert (home / stored).is_file(), stored
        assert conn.execute("SELECT count(*) FROM searches s WHERE NOT EXISTS "
                            "(SELECT 1 FROM candidates c WHERE c.search_id = s.id)").fetchone()[0] == 0
        gallery = galleries.get(ws, GALLERY)
        faces = conn.execute("SELECT count(*), coalesce(sum(id), 0) FROM faces WHERE gallery_id = ?",
                             (gallery.id,)).fetchone()
        assert index.record_fingerprint(conn, gallery.id) == tuple(faces)
        path = index.index_path(ws.indexes, gallery.id)
        if path.exists():
            assert index.read(path) is not None, "torn index file"
        info = index.build_info(conn, gallery.id)
        if gallery.index_factory:  # a chosen type is recorded only together with a build of it
            assert info and info["factory"] == gallery.index_factory
        if faces[0]:
            loaded = index.load(conn, ws.indexes, gallery.id, galleries.factory(ws, gallery))
            held = np.sort(index.stored_ids(loaded.index))
            record = np.array([r[0] for r in conn.execute("SELECT id FROM faces WHERE gallery_id = ? ORDER BY id",
                                                          (gallery.id,))], dtype=np.int64)
            assert np.array_equal(held, record)
        assert audit.verify(conn).ok
    finally:
        ws.close()


def stored_files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in (home / "photos").rglob("*") if p.is_file()}


def check_no_duplicates(home: Path) -> None:
    """After a completed re-run: one row per photo and per refusal, and no stored file the record lacks."""
    ws = open_workspace(home)
    try:
        conn = ws.conn
        assert conn.execute("SELECT count(*) - count(DISTINCT gallery_id || sha256) FROM photos").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) - count(DISTINCT gallery_id || source_path || reason) "
                            "FROM enrollment_refusals").fetchone()[0] == 0
        referenced = {r[0] for r in conn.execute(
            "SELECT stored_path FROM photos UNION SELECT probe_stored_path FROM searches "
            "WHERE probe_stored_path IS NOT NULL")}
        assert stored_files(home) == referenced
    finally:
        ws.close()


def duration(*args: str, home: Path) -> float:
    """Seconds the command takes uninterrupted here and now (kills are placed within it)."""
    started = time.monotonic()
    process = start(*args, home=home)
    _, err = process.communicate(timeout=LIMIT_S)
    assert process.returncode == 0, err.decode()
    return time.monotonic() - started


def kill_at(process: subprocess.Popen, delay: float) -> bool:
    """SIGKILL the command (and any workers) after `delay` seconds; False if it had already finished."""
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        return True


# kill -9 --------------------------------------------------------------------------------------------------

def test_kill_during_enroll_leaves_a_consistent_workspace_and_the_rerun_completes(blank_template, tmp_path):
    rng = random.Random(SEED)
    source = tmp_path / "source"
    shutil.copytree(GALLERY_DIR, source)
    for name in LFW_FACES:
        (source / name).parent.mkdir(exist_ok=True)
        shutil.copy(LFW / name, source / name)
    (source / "broken").mkdir()
    (source / "broken" / "half.jpg").write_bytes(OBAMA.read_bytes()[:4000])
    command = ("gallery", "enroll", GALLERY, str(source), "--workers", "2", "--json")
    reference = copy_of(blank_template, tmp_path / "reference")
    sign_in(reference, ANALYST)
    whole = duration(*command, home=reference)
    check_consistent(reference)
    killed = 0
    for trial in range(TRIALS):
        home = copy_of(blank_template, tmp_path / f"home{trial}")
        sign_in(home, ANALYST)
        process = start(*command, home=home)
        killed += kill_at(process, rng.uniform(0.3, 0.95) * whole)
        check_consistent(home)
        ws = open_workspace(home)
        report = enroll(ws, ANALYST, GALLERY, source, workers=1)
        ws.close()
        assert report.offered == 19 and report.enrolled + report.skipped == 18
        assert [r.reason for r in report.refused] == ["unreadable"]
        check_consistent(home)
        check_no_duplicates(home)
        ws = open_workspace(home)
        assert ws.conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 18
        assert ws.conn.execute("SELECT count(*) FROM enrollment_refusals").fetchone()[0] == 1
        ws.close()
    assert killed >= 1, "no trial was interrupted: the delays are too long"


def test_kill_during_search_leaves_a_consistent_workspace_and_the_rerun_completes(home, tmp_path):
    rng = random.Random(SEED + 1)
    template = tmp_path / "searched-template"
    shutil.copytree(home, template)
    command = ("search", str(PROBES_DIR / "obama1.jpg"), "--gallery", GALLERY, "--case", "K-1", "--purpose",
               "robbery", "--justification", "Armed robbery suspect caught on camera.", "--traditional-means", MEANS,
               "--json")
    reference = copy_of(template, tmp_path / "reference")
    sign_in(reference, AGENT)
    whole = duration(*command, home=reference)
    check_consistent(reference)
    killed = 0
    for trial in range(TRIALS):
        workspace = copy_of(template, tmp_path / f"home{trial}")
        sign_in(workspace, AGENT)
        process = start(*command, home=workspace)
        finished = not kill_at(process, rng.uniform(0.3, 0.95) * whole)
        killed += not finished
        check_consistent(workspace)
        ws = open_workspace(workspace)
        before = ws.conn.execute("SELECT count(*) FROM searches").fetchone()[0]
        # finished: its search is recorded; killed: recorded whole or not at all (never a second or a half one)
        assert before == 1 if finished else before in (0, 1)
        result = run_search(ws, AGENT, search_request("obama1.jpg", case="K-1"))
        assert result["candidates"][0]["subject"] == "barack_obama"
        assert ws.conn.execute("SELECT count(*) FROM searches").fetchone()[0] == before + 1
        ws.close()
        check_consistent(workspace)
        check_no_duplicates(workspace)
    assert killed >= 1


def add_synthetic_faces(home: Path, count: int) -> None:
    """`count` made-up faces (unit-ish random embeddings) in the test gallery, so an index build takes a while."""
    ws = open_workspace(home)
    gallery = galleries.get(ws, GALLERY)
    rng = np.random.default_rng(7)
    now = store.utc_now()
    with store.transaction(ws.conn):
        subject = ws.conn.execute("INSERT INTO subjects (gallery_id, name, created_at) VALUES (?, 'synthetic', ?)",
                                  (gallery.id, now)).lastrowid
        first = ws.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM photos").fetchone()[0]
        ws.conn.executemany(
            "INSERT INTO photos (id, gallery_id, subject_id, sha256, source_path, stored_path, enrolled_at, "
            "enrolled_by) VALUES (?, ?, ?, ?, 'synthetic', ?, ?, 'test')",
            [(first + i, gallery.id, subject, f"{i:064x}", "photos/synthetic", now) for i in range(count)])
        vectors = rng.normal(0, 0.09, (count, 128)).astype("<f4")
        ws.conn.executemany(
            "INSERT INTO faces (gallery_id, subject_id, photo_id, box_top, box_right, box_bottom, box_left, size_px, "
            "eye_distance_px, sharpness, detector_score, embedding) VALUES (?, ?, ?, 0, 100, 100, 0, 100, 40, 100, 1, ?)",
            [(gallery.id, subject, first + i, vectors[i].tobytes()) for i in range(count)])
    (home / "photos/synthetic").touch()  # the stored file the records name (empty: nothing reads it here)
    ws.close()


def test_kill_during_index_build_leaves_a_consistent_workspace_and_the_rerun_completes(home, tmp_path):
    rng = random.Random(SEED + 2)
    add_synthetic_faces(home, 12_000)
    template = tmp_path / "big-template"
    shutil.copytree(home, template)
    command = ("index", "build", GALLERY, "--index", "IVF256,SQ8")
    reference = copy_of(template, tmp_path / "reference")
    sign_in(reference, ANALYST)
    whole = duration(*command, home=reference)
    check_consistent(reference)
    killed = 0
    for trial in range(TRIALS):
        workspace = copy_of(template, tmp_path / f"home{trial}")
        sign_in(workspace, ANALYST)
        process = start(*command, home=workspace)
        finished = not kill_at(process, rng.uniform(0.3, 0.95) * whole)
        killed += not finished
        check_consistent(workspace)
        ws = open_workspace(workspace)
        gallery = galleries.get(ws, GALLERY)
        # finished: the new index is recorded; killed: the old one (none) or the new one, never a third state
        assert gallery.index_factory == "IVF256,SQ8" if finished else gallery.index_factory in (None, "IVF256,SQ8")
        result = galleries.build_index(ws, ANALYST, GALLERY, "IVF256,SQ8")
        assert result["faces"] == 12_011 and galleries.get(ws, GALLERY).index_factory == "IVF256,SQ8"
        ws.close()
        check_consistent(workspace)
    assert killed >= 1


# Two enrollments at once --------------------------------------------------------------------------------

def test_two_enrollments_over_overlapping_photos_at_once_both_finish(blank_template, tmp_path):
    home = copy_of(blank_template, tmp_path / "home")
    sign_in(home, ANALYST)
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(GALLERY_DIR, first)
    shutil.copytree(GALLERY_DIR, second)  # the same 11 photos…
    for name in LFW_FACES[:4]:  # …and 4 more of its own
        (second / name).parent.mkdir(exist_ok=True)
        shutil.copy(LFW / name, second / name)
    runs = [start("gallery", "enroll", GALLERY, str(folder), "--workers", "1", "--json", home=home)
            for folder in (first, second)]
    reports = []
    for process in runs:
        out, err = process.communicate(timeout=LIMIT_S)
        assert process.returncode == 0, err.decode()
        assert b"Traceback" not in err
        reports.append(json.loads(out))
    assert [r["offered"] for r in reports] == [11, 15]
    assert sum(r["enrolled"] for r in reports) == 15 and sum(r["skipped_duplicates"] for r in reports) == 11
    assert all(not r["refused"] for r in reports)
    check_consistent(home)
    check_no_duplicates(home)


def test_a_photo_enrolled_meanwhile_by_another_enrollment_is_a_skip(blank_template, tmp_path):
    """The second enrollment is recorded after the first listed what the gallery held: no UNIQUE failure."""
    home = copy_of(blank_template, tmp_path / "home")
    ws, other = open_workspace(home), open_workspace(home)
    meanwhile = []

    def other_enrollment_runs(done, total):
        if not meanwhile:
            meanwhile.append(enroll(other, ANALYST, GALLERY, GALLERY_DIR, workers=1))

    report = enroll(ws, ANALYST, GALLERY, GALLERY_DIR, workers=1, progress=other_enrollment_runs)
    assert meanwhile[0].enrolled == 11
    assert (report.enrolled, report.skipped, report.refused) == (0, 11, [])
    ws.close(), other.close()
    check_consistent(home)
    check_no_duplicates(home)


# The bad-file corpus --------------------------------------------------------------------------------------

def flipped(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    damaged = bytearray(data)
    for _ in range(8):
        damaged[rng.randrange(600, len(damaged))] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def bad_corpus(root: Path) -> tuple[Path, dict[str, str]]:
    """A folder of <subject>/<entries> holding every kind of bad entry, and what must become of each entry
    (by its shown path): "enrolled", "skipped" or "refused"."""
    source = root / "corpus"
    alice, empty = source / "alice", source / "nobody"
    (alice / "more").mkdir(parents=True)
    empty.mkdir()
    good, obama = (LFW / LFW_FACES[0]).read_bytes(), OBAMA.read_bytes()
    expect: dict[str, str] = {}

    def put(path: Path, data: bytes | None, outcome: str) -> None:
        if data is not None:
            with open(os.fsencode(path), "wb") as handle:
                handle.write(data)
        expect[os.fsencode(path).decode("utf-8", "backslashreplace")] = outcome

    put(alice / "good.jpg", good, "enrolled")
    put(alice / "very-good.jpg", good, "skipped")
    put(alice / "more" / "nested.jpg", (LFW / LFW_FACES[1]).read_bytes(), "enrolled")
    put(Path(os.fsdecode(os.fsencode(alice) + b"/caf\xe9.jpg")), (LFW / LFW_FACES[2]).read_bytes(), "enrolled")
    odd_subject = Path(os.fsdecode(os.fsencode(source) + b"/b\xf6b"))
    os.mkdir(odd_subject)
    put(odd_subject / "photo.jpg", (LFW / LFW_FACES[3]).read_bytes(), "enrolled")
    for cut in (100, 2000, len(obama) // 2):
        put(alice / f"cut-{cut}.jpg", obama[:cut], "refused")
    for seed in (0, 3, 13):
        put(alice / f"flip-{seed}.jpg", flipped(obama, seed), "refused")
    put(alice / "empty.jpg", b"", "refused")
    put(alice / "text.jpg", b"not a photo\n" * 50, "refused")
    bomb = root / "bomb.png"
    Image.new("1", (9400, 9400)).save(bomb)
    put(alice / "bomb.png", bomb.read_bytes(), "refused")
    big = root / "big.png"
    Image.new("1", (12_000, 12_000)).save(big)
    put(alice / "big.png", big.read_bytes(), "refused")
    put(alice / "notes.txt", b"notes", "refused")
    put(alice / ".hidden.jpg", good, "refused")
    (alice / "zero.jpg").symlink_to("/dev/zero")
    put(alice / "zero.jpg", None, "refused")
    os.mkfifo(alice / "fifo.jpg")
    put(alice / "fifo.jpg", None, "refused")
    (alice / "dangling.jpg").symlink_to(root / "gone.jpg")
    put(alice / "dangling.jpg", None, "refused")
    (alice / "loop.jpg").symlink_to(alice / "loop.jpg")
    put(alice / "loop.jpg", None, "refused")
    (alice / "linked").symlink_to(GALLERY_DIR / "joe_biden", target_is_directory=True)
    put(alice / "linked", None, "refused")
    (source / "linked-person").symlink_to(GALLERY_DIR / "joe_biden", target_is_directory=True)
    put(source / "linked-person", None, "refused")
    put(source / "loose.jpg", good, "refused")
    put(source / ".DS_Store", b"\x00\x00\x00\x01Bud1", "refused")
    put(empty, None, "refused")
    return source, expect


def test_bad_file_corpus_through_enroll_and_search_gets_an_answer_for_every_entry(blank_template, tmp_path):
    home = copy_of(blank_template, tmp_path / "home")
    sign_in(home, ANALYST)
    source, expect = bad_corpus(tmp_path)

    result = cli("gallery", "enroll", GALLERY, os.fsencode(source), "--workers", "2", "--json", home=home)
    assert_answered(result)
    assert result.returncode == 0 and result.stderr == b""  # no decoder chatter, no warnings
    report = json.loads(result.stdout)
    assert report["offered"] == len(expect)
    refused = {r["path"]: r for r in report["refused"]}
    assert len(refused) == len(report["refused"])  # each entry once
    assert all(r["reason"] and r["detail"] for r in refused.values())
    ws = open_workspace(home)
    enrolled = {r[0] for r in ws.conn.execute("SELECT source_path FROM photos")}
    raw = {r[0] for r in ws.conn.execute("SELECT source_path_raw FROM photos WHERE source_path_raw IS NOT NULL")}
    ws.close()
    assert enrolled == {p for p, outcome in expect.items() if outcome == "enrolled"}
    assert set(refused) == {p for p, outcome in expect.items() if outcome == "refused"}
    assert report["skipped_duplicates"] == sum(outcome == "skipped" for outcome in expect.values())
    assert os.fsencode(source) + b"/alice/caf\xe9.jpg" in raw  # the exact name is kept
    assert refused[str(source / "alice" / "fifo.jpg")]["reason"] == "not-a-file"
    assert refused[str(source / "alice" / "zero.jpg")]["reason"] == "outside-root"  # a link out of the folder
    assert refused[str(source / "alice" / "bomb.png")]["reason"] == "too-large"
    assert {refused[str(source / "alice" / f"flip-{s}.jpg")]["reason"] for s in (0, 13)} == {"corrupt"}

    again = cli("gallery", "enroll", GALLERY, os.fsencode(source), "--workers", "1", "--json", home=home)
    assert_answered(again)
    rerun = json.loads(again.stdout)
    assert (rerun["offered"], rerun["enrolled"]) == (len(expect), 0)
    check_consistent(home)
    check_no_duplicates(home)

    sign_in(home, AGENT)
    alice = source / "alice"
    probes = [alice / n for n in ("bomb.png", "big.png", "zero.jpg", "fifo.jpg", "dangling.jpg", "loop.jpg",
                                  "cut-2000.jpg", "flip-0.jpg", "empty.jpg", "linked")]
    probes += [Path("/dev/zero"), alice, Path(os.fsdecode(os.fsencode(alice) + b"/caf\xe9.jpg"))]
    for probe in probes:
        started = time.monotonic()
        searched = cli("search", os.fsencode(probe), "--gallery", GALLERY, "--case", "C-9", "--purpose", "robbery",
                       "--justification", "Armed robbery suspect caught on the store camera.",
                       "--traditional-means", MEANS, home=home)
        assert time.monotonic() - started < LIMIT_S
        err = assert_answered(searched)
        if searched.returncode:
            assert len(err.strip().splitlines()) == 1, err
    assert searched.returncode == 0 and b"caf\\xe9.jpg" in searched.stdout  # the odd name, escaped
    check_consistent(home)


def test_manifest_rows_naming_special_files_are_refused_not_read(blank_template, tmp_path):
    home = copy_of(blank_template, tmp_path / "home")
    sign_in(home, ANALYST)
    os.mkfifo(tmp_path / "fifo.jpg")
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["path", "subject"])
        rows.writerows([["/dev/zero", "zero"], [str(tmp_path / "fifo.jpg"), "fifo"],
                        [str(tmp_path / "gone.jpg"), "gone"], [str(tmp_path), "folder"],
                        [str(LFW / LFW_FACES[0]), "aj"]])
    result = cli("gallery", "enroll", GALLERY, str(manifest), "--json", home=home)
    assert_answered(result)
    report = json.loads(result.stdout)
    assert report["offered"] == 5 and report["enrolled"] == 1
    assert sorted(r["reason"] for r in report["refused"]) == ["not-a-file", "not-a-file", "not-a-file", "not-found"]


# The other defects ------------------------------------------------------------------------------------------

def test_rerunning_an_enrollment_keeps_one_refusal_row_per_photo_and_reason(home, tmp_path):
    source = tmp_path / "batch"
    (source / "someone").mkdir(parents=True)
    (source / "someone" / "half.jpg").write_bytes(OBAMA.read_bytes()[:3000])
    (source / "someone" / "notes.txt").write_text("x")
    ws = open_workspace(home)
    for _ in range(3):
        report = enroll(ws, ANALYST, GALLERY, source, workers=1)
        assert len(report.refused) == 2  # each run still reports what it refused
    assert ws.conn.execute("SELECT count(*) FROM enrollment_refusals").fetchone()[0] == 2
    ws.close()


def test_migration_removes_duplicate_refusal_rows_and_index_types_never_built(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    for number, script in enumerate(store.MIGRATIONS[:5], start=1):
        for statement in store.statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute("INSERT INTO galleries VALUES (1, 'g', 'a', 'b', '2026-01-01', 's', 30, NULL, 'now', 'ana')")
    # a gallery whose --index was recorded by a build that then failed (too few faces): the type never built
    conn.execute("INSERT INTO galleries VALUES (2, 'h', 'a', 'b', '2026-01-01', 's', 30, 'IVF256,Flat', 'now', 'a')")
    conn.execute("INSERT INTO index_builds (gallery_id, factory, trained_on, built_max_face_id, built_at, "
                 "build_seconds) VALUES (2, 'Flat', 11, 11, 'now', 0.1)")
    for _ in range(3):
        conn.executemany("INSERT INTO enrollment_refusals (gallery_id, source_path, reason, detail, refused_at) "
                         "VALUES (1, ?, ?, 'd', 'now')", [("a.jpg", "no-face"), ("b.jpg", "unreadable")])
    conn.close()
    migrated = store.connect(tmp_path / "old.db")
    rows = migrated.execute("SELECT source_path, reason FROM enrollment_refusals ORDER BY 1").fetchall()
    assert [tuple(r) for r in rows] == [("a.jpg", "no-face"), ("b.jpg", "unreadable")]
    assert migrated.execute("SELECT index_factory FROM galleries WHERE id = 2").fetchone()[0] is None
    migrated.close()


def test_non_utf8_names_enroll_and_search_without_an_orphan_file(blank_template, tmp_path):
    home = copy_of(blank_template, tmp_path / "home")
    sign_in(home, ANALYST)
    source = os.fsencode(tmp_path) + b"/gal\xe9rie"
    os.makedirs(source + b"/j\xfcrgen")
    shutil.copy(LFW / LFW_FACES[4], os.fsdecode(source + b"/j\xfcrgen/p\xe9.jpg"))
    result = cli("gallery", "enroll", GALLERY, source, "--json", home=home)
    assert_answered(result)
    assert json.loads(result.stdout)["enrolled"] == 1
    ws = open_workspace(home)
    row = ws.conn.execute("SELECT p.source_path, p.source_path_raw, s.name FROM photos p "
                          "JOIN subjects s ON s.id = p.subject_id").fetchone()
    ws.close()
    assert row["source_path_raw"] == source + b"/j\xfcrgen/p\xe9.jpg"
    assert row["source_path"].endswith("gal\\xe9rie/j\\xfcrgen/p\\xe9.jpg") and row["name"] == "j\\xfcrgen"
    check_no_duplicates(home)
    sign_in(home, AGENT)
    searched = cli("search", source + b"/j\xfcrgen/p\xe9.jpg", "--gallery", GALLERY, "--case", "C-1",
                   "--purpose", "robbery", "--justification", "Armed robbery suspect caught on the store camera.",
                   "--traditional-means", MEANS, "--json", home=home)
    assert_answered(searched)
    found = json.loads(searched.stdout)
    assert found["probe"]["name"] == "p\\xe9.jpg" and found["candidates"][0]["subject"] == "j\\xfcrgen"


def test_failed_index_build_keeps_the_index_type_and_a_missing_index_is_rebuilt(ws):
    gallery = galleries.get(ws, GALLERY)
    with pytest.raises(InputError, match="needs at least 256 faces"):
        galleries.build_index(ws, ANALYST, GALLERY, "IVF256,Flat")
    assert galleries.get(ws, GALLERY).index_factory is None
    assert galleries.index_status(ws, ANALYST, GALLERY)["type"] == "Flat"
    index.index_path(ws.indexes, gallery.id).unlink()
    result = run_search(ws, AGENT, search_request("obama1.jpg"))
    assert result["index"] == "Flat" and "missing" in result["details"]["index_repaired"]


def test_index_path_that_is_a_folder_is_a_clear_error(home):
    ws = open_workspace(home)
    path = index.index_path(ws.indexes, galleries.get(ws, GALLERY).id)
    ws.close()
    path.unlink()
    path.mkdir()
    sign_in(home, AGENT)
    result = cli("search", str(PROBES_DIR / "obama1.jpg"), "--gallery", GALLERY, "--case", "C-1", "--purpose",
                 "robbery", "--justification", "Armed robbery suspect caught on the store camera.",
                 "--traditional-means", MEANS, home=home)
    assert "is not a file" in assert_answered(result, allow_ok=False)


@pytest.mark.parametrize("content", ["[1, 2]", '{"%s": 12}', '{"%s": ["t"]}', "null", "not json"])
def test_odd_sessions_file_means_not_signed_in(home, content):
    folder = credentials.config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sessions.json").write_text(content.replace("%s", str(home.resolve())))
    result = cli("whoami", home=home)
    assert "not signed in" in assert_answered(result, allow_ok=False) and result.returncode == 3


def test_a_disabled_users_old_session_is_refused_and_audited(ws):
    token, _, _ = accounts.login(ws, AGENT.name, PASSWORD)
    accounts.disable(ws, ADMIN, AGENT.name)
    with pytest.raises(Refused, match="ended"):
        accounts.authenticate(ws, token)
    last = ws.conn.execute("SELECT actor, action, outcome, reason FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert (last["actor"], last["action"], last["outcome"]) == (AGENT.name, "session", "refused")
    assert last["reason"].startswith("disabled")
    token, _, _ = accounts.login(ws, ANALYST.name, PASSWORD)
    accounts.logout(ws, token)
    with pytest.raises(Refused, match="ended"):
        accounts.authenticate(ws, token)
    last = ws.conn.execute("SELECT actor, reason FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    assert last["actor"] == ANALYST.name and last["reason"].startswith("session-ended")
