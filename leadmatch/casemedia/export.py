"""A case's disclosure export: every use of the tool in the case, for a court or a supervisor.

    <out>/case.json     every search (probes and originals, candidates, dispositions, corroboration, closure —
                        no-identification and excluded candidates included — model, threshold, calibration),
                        the case media and persons, the audit entries of the case with the chain's verification
                        at export time, and every file below with its sha256
    <out>/case.html     the same as one self-contained page (faces embedded), printable
    <out>/files/        the probe photos and frames, enhanced probes' originals, the case media and clip frames,
                        each named by its sha256
    <out>/SHA256SUMS    sha256 of case.json, case.html and every file (`sha256sum -c SHA256SUMS` checks them)

Auditor, reviewer or admin; the export is audited. `verify` checks an export folder: every hash, and every
exported audit entry's own hash and its link to the entry before it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

from leadmatch.biometrics.models.registry import sha256_file
from leadmatch.errors import InputError, NotFound
from leadmatch.governance import policy
from leadmatch.record import audit
from leadmatch.governance.accounts import Actor, require
from leadmatch.record.store import utc_now
from leadmatch.record.workspace import Workspace
from leadmatch.search import leads

FORMAT = "leadmatch-case-export/1"
EXPORTERS = ("auditor", "reviewer", "admin")


def _atomic_write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def export(ws: Workspace, actor: Actor, case: str, out: Path) -> dict:
    """Write the case's disclosure export to the new (or empty) folder `out`. Returns what was written."""
    from leadmatch.casemedia import media, persons
    from leadmatch.search import run as searching

    require(ws, actor, EXPORTERS, "case.export", case=case, objects={"out": str(out)})
    case = (case or "").strip()
    ids = [r[0] for r in ws.conn.execute("SELECT id FROM searches WHERE case_number = ? ORDER BY created_at, id",
                                         (case,))]
    has_media = ws.conn.execute("SELECT 1 FROM case_media WHERE case_number = ? LIMIT 1", (case,)).fetchone()
    if not ids and not has_media:
        raise NotFound(f"case {case!r} has no searches or media", "check the case number (see `leadmatch searches`)")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder", "give a new folder for the export")
    files_dir = out / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict] = {}

    def keep(relative: str | None, sha256: str, what: str) -> str | None:
        """Copy one stored file into files/ (checked against its recorded sha256); its export path."""
        if not relative or not (ws.home / relative).is_file():
            return None
        name = f"files/{sha256}{Path(relative).suffix}"
        if name not in files:
            shutil.copyfile(ws.home / relative, out / name)
            found = sha256_file(out / name)
            files[name] = {"path": name, "sha256": found, "bytes": (out / name).stat().st_size, "what": what,
                           "matches_record": found == sha256}
        return name

    searches = []
    for search_id in ids:
        record = searching.show(ws, actor, search_id)
        row = ws.conn.execute("SELECT probe_frames, details FROM searches WHERE id = ?", (search_id,)).fetchone()
        for frame in json.loads(row["probe_frames"] or "[]"):
            keep(frame.get("stored_path"), frame["sha256"], f"probe face image of search {search_id}")
        original = json.loads(row["details"] or "{}").get("enhancement", {}).get("original")
        if original:
            keep(original.get("stored_path"), original["sha256"], f"original of the enhanced probe of {search_id}")
        searches.append(record)
    media_rows = media.listing(ws, actor, case) if has_media else []
    for m in ws.conn.execute("SELECT stored_path, sha256, name FROM case_media WHERE case_number = ? AND purged_at "
                             "IS NULL", (case,)):
        keep(m["stored_path"], m["sha256"], f"case media file {m['name']}")
    for f in ws.conn.execute("SELECT f.image_path, f.image_sha256, m.name FROM case_faces f JOIN case_media m "
                             "ON m.id = f.media_id WHERE f.case_number = ? AND m.kind = 'video'", (case,)):
        keep(f["image_path"], f["image_sha256"], f"clip frame of {f['name']}")
    people = persons.listing(ws, actor, case, include_dropped=True) if has_media else None
    entries = _case_entries(ws, case, ids)
    chain = audit.verify(ws.conn).__dict__
    document = {"format": FORMAT, "case": case, "exported_at": utc_now(), "exported_by": actor.name,
                "notice": leads.NOTICE, "policy": policy.get(ws).__dict__, "searches": searches,
                "media": media_rows, "persons": people,
                "audit": {"entries": entries, "chain_at_export": chain,
                          "note": "each entry's hash covers its fields and the previous entry's hash; the chain's "
                                  "verification (with the workspace's HMAC key) was run at export time"},
                "files": sorted(files.values(), key=lambda f: f["path"])}
    _atomic_write(out / "case.json", json.dumps(document, ensure_ascii=False, indent=1, default=str) + "\n")
    _atomic_write(out / "case.html", _html(ws, actor, case, document, out))
    sums = {"case.json": sha256_file(out / "case.json"), "case.html": sha256_file(out / "case.html"),
            **{f["path"]: f["sha256"] for f in files.values()}}
    _atomic_write(out / "SHA256SUMS", "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))
    audit.record(ws.conn, actor.name, "case.export", case=case,
                 objects={"out": str(out), "searches": len(ids), "files": len(files), "audit_entries": len(entries),
                          "case_json_sha256": sums["case.json"], "chain_ok": chain["ok"]},
                 photos=[f["sha256"] for f in files.values()])
    return {"case": case, "out": str(out), "searches": len(ids), "files": len(files), "audit_entries": len(entries),
            "chain_ok": chain["ok"], "case_json_sha256": sums["case.json"], "case_html_sha256": sums["case.html"]}


def _case_entries(ws: Workspace, case: str, search_ids: list[str]) -> list[dict]:
    """Every audit entry naming the case or one of its searches, oldest first, with hash, link and HMAC."""
    marks = ",".join("?" * len(search_ids)) or "NULL"
    rows = ws.conn.execute(f"SELECT * FROM audit WHERE case_number = ? OR search_id IN ({marks}) ORDER BY id",
                           (case, *search_ids)).fetchall()
    return [dict(r) for r in rows]


def _html(ws: Workspace, actor: Actor, case: str, document: dict, out: Path) -> str:
    """The export as one self-contained HTML page (face images embedded as data URIs)."""
    from leadmatch.casemedia import persons
    from leadmatch.search import crops
    from leadmatch.search.report import templates

    def uri(png: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

    images = {}
    for s in document["searches"]:
        try:
            images[f"probe-{s['search_id']}"] = uri(crops.probe_crop(ws, actor, s["search_id"]))
        except Exception:  # a purged probe: the page says so instead of showing it
            images[f"probe-{s['search_id']}"] = uri(crops.unavailable_png("probe purged", 160))
        for c in s["candidates"]:
            images[f"{s['search_id']}-{c['rank']}"] = uri(crops.candidate_crop(ws, actor, s["search_id"], c["rank"]))
    for p in (document["persons"] or {}).get("persons", []):
        for face in p["best_faces"]:
            images[f"face-{face}"] = uri(persons.face_image(ws, actor, case, face, size=120))
    return templates.get_template("case_export.html").render(d=document, images=images, notice=leads.NOTICE)


def verify(folder: Path) -> dict:
    """Check an export folder: SHA256SUMS against every file, case.json's file list against the files, each
    exported audit entry's hash against its fields and its link to the exported entry before it (where that is
    the entry just before), and the chain's verification at export. Returns ok and the problems found."""
    folder = Path(folder)
    problems, checked = [], 0
    try:
        sums = [line.split("  ", 1) for line in (folder / "SHA256SUMS").read_text().splitlines() if line.strip()]
        document = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder} is not a leadmatch case export ({getattr(exc, 'strerror', None) or exc})",
                         "give the folder `leadmatch case export` wrote") from None
    if document.get("format") != FORMAT:
        raise InputError(f"{folder} is not a leadmatch case export", "give the folder `leadmatch case export` wrote")
    for digest, name in sums:
        checked += 1
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} does not match its sha256 in SHA256SUMS")
    listed = {name for _, name in sums}
    for f in document["files"]:
        if f["path"] not in listed:
            problems.append(f"{f['path']} is in case.json but not in SHA256SUMS")
        if not f.get("matches_record", True):
            problems.append(f"{f['path']} did not match the sha256 recorded for it when exported")
    previous = None
    for entry in document["audit"]["entries"]:
        if audit.entry_hash(entry) != entry["hash"]:
            problems.append(f"audit entry {entry['id']} does not match its hash")
        if previous is not None and entry["id"] == previous["id"] + 1 and entry["prev_hash"] != previous["hash"]:
            problems.append(f"audit entry {entry['id']} does not chain to entry {previous['id']}")
        previous = entry
    chain = document["audit"]["chain_at_export"]
    if not chain.get("ok"):
        problems.append(f"the workspace's audit chain did not verify at export: {chain.get('problem')}")
    return {"ok": not problems, "files_checked": checked, "audit_entries_checked": len(document["audit"]["entries"]),
            "chain_at_export": chain.get("ok"), "problems": problems}
