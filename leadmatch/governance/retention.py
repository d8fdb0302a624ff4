"""Retention: closed searches past their gallery's retention period lose their probe photo and details.

What stays: the search's id, case, status and dates (so the audit trail still points somewhere), and every
audit entry. The purge itself is audited.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from leadmatch.record import audit
from leadmatch.governance.accounts import Actor, require
from leadmatch.record.store import transaction, utc_now
from leadmatch.record.workspace import Workspace

#: Uploaded probes wait in <home>/uploads/ only while an agent picks a face; older ones are abandoned.
UPLOAD_MAX_AGE_S = 15 * 60


def expired(ws: Workspace, now: datetime | None = None) -> list[dict]:
    """Closed, unpurged searches whose closure is older than their gallery's retention period."""
    now = now or datetime.now(timezone.utc)
    out = []
    for row in ws.conn.execute(
            "SELECT s.id, s.case_number, s.closed_at, s.probe_sha256, s.probe_stored_path, s.probe_frames, s.details, "
            "g.retention_days "
            "FROM searches s JOIN galleries g ON g.id = s.gallery_id "
            "WHERE s.status LIKE 'closed%' AND s.purged_at IS NULL"):
        closed = datetime.strptime(row["closed_at"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        if closed + timedelta(days=row["retention_days"]) < now:
            out.append(dict(row))
    return out


def stored_files(row: dict) -> set[str]:
    """The stored files an expired search (a row of `expired`) holds: its probe, its frames or stills, and an
    enhanced probe's original."""
    stored = {row["probe_stored_path"]} | {f["stored_path"] for f in json.loads(row["probe_frames"] or "[]")}
    original = json.loads(row["details"] or "{}").get("enhancement", {}).get("original", {})
    stored |= {original["stored_path"]} if original.get("stored_path") else set()  # an enhanced probe's original
    return {path for path in stored if path}


def preview(ws: Workspace, now: datetime | None = None) -> list[dict]:
    """What `purge_expired` would purge now, nothing changed: each expired search with its case, when it closed,
    its gallery's retention and how many stored probe files it holds. The caller checks the role and audits."""
    return [{"search_id": r["id"], "case": r["case_number"], "closed_at": r["closed_at"],
             "retention_days": r["retention_days"], "probe_files": len(stored_files(r))} for r in expired(ws, now)]


def purge_expired(ws: Workspace, actor: Actor) -> dict:
    """Admin: purge every expired search. Returns what was purged."""
    require(ws, actor, "admin", "purge")
    removed_files = 0
    now = utc_now()
    with transaction(ws.conn):  # what is due is read in the purge's transaction: two purges never purge one twice
        due = expired(ws)
        for row in due:
            ws.conn.execute("DELETE FROM candidates WHERE search_id = ?", (row["id"],))
            ws.conn.execute("DELETE FROM dispositions WHERE search_id = ?", (row["id"],))
            ws.conn.execute("DELETE FROM corroborations WHERE search_id = ?", (row["id"],))
            ws.conn.execute(
                "UPDATE searches SET justification = NULL, traditional_means = NULL, closure_note = NULL, "
                "probe_stored_path = NULL, probe_frames = NULL, quality = '{}', box = '[]', details = '{}', "
                "purged_at = ? WHERE id = ?",
                (now, row["id"]))
        audit.record(ws.conn, actor.name, "purge", objects={"searches": [r["id"] for r in due]},
                     photos=[r["probe_sha256"] for r in due])
    for row in due:  # files after the commit: a crash leaves an orphan file, never a record without its file
        removed_files += sum(ws.release_photo(path) for path in stored_files(row))
    sweep_uploads(ws.home)  # abandoned probe uploads go too; in-flight face picks (younger) stay
    return {"purged_searches": [r["id"] for r in due], "probe_files_removed": removed_files}


#: Photos uploaded for a gallery enrollment wait in <home>/enroll-uploads/leadmatch-enroll-*/ while it runs.
ENROLL_UPLOADS = "enroll-uploads"


def enroll_upload_folder(home: Path) -> Path:
    """A new private folder inside the workspace for one enrollment's uploaded photos (removed when it ends;
    one left by a killed service goes at the next start, `sweep_enroll_uploads`)."""
    root = Path(home) / ENROLL_UPLOADS
    root.mkdir(mode=0o700, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="leadmatch-enroll-", dir=root))


def sweep_enroll_uploads(home: Path) -> int:
    """Delete every enrollment upload folder (at the service's start, when no enrollment runs). Returns how
    many went."""
    root = Path(home) / ENROLL_UPLOADS
    folders = list(root.glob("leadmatch-enroll-*")) if root.is_dir() else []
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return len(folders)


def clip_analyses(home: Path, max_age_s: float = UPLOAD_MAX_AGE_S) -> Path:
    """The private folder (<home>/uploads/) where a clip search keeps the clip's analysis for the search after
    a track pick (`search.video.keep_analysis`), older leftovers swept first: an analysis waits as long as an
    upload does, then goes (it holds face crops of the clip)."""
    root = Path(home) / "uploads"
    root.mkdir(mode=0o700, exist_ok=True)
    sweep_uploads(home, max_age_s)
    return root


def sweep_uploads(home: Path, max_age_s: float = UPLOAD_MAX_AGE_S, now: float | None = None) -> int:
    """Delete upload folders under <home>/uploads/ untouched for more than `max_age_s` seconds (abandoned
    face picks, uploads of searches that failed). Searches keep their own copy of the probe, so nothing the
    record needs lives here. Returns how many folders went."""
    root = Path(home) / "uploads"
    now = time.time() if now is None else now
    swept = 0
    try:
        folders = list(root.iterdir())
    except OSError:
        return 0
    for folder in folders:
        try:
            age = now - folder.stat().st_mtime
        except OSError:
            continue
        if age >= max_age_s:
            shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else folder.unlink(missing_ok=True)
            swept += 1
    return swept
