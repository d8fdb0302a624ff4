"""The demo: the whole story on sample photos, in a throw-away workspace, through the same library calls the
CLI makes — admin, analyst, agent, reviewer and auditor each signed in with their own account."""

from __future__ import annotations

import json
import os
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

from leadmatch.governance import accounts, casework, oversight, purposes
from leadmatch.gallery import galleries as gallery
from leadmatch.gallery.enrollment import enroll
from leadmatch.errors import InputError, ModelError, Refused
from leadmatch.biometrics.photos import PHOTO_SUFFIXES
from leadmatch.search.run import SearchRequest, run
from leadmatch.record.workspace import Workspace

DEMO_GALLERY = "demo-gallery"
MATE_PROBE, UNKNOWN_PROBE = "johnsnow_test1.jpg", "obama_and_biden.jpg"


def default_photos() -> Path:
    """`$LEADMATCH_DEMO_PHOTOS`, else `../shared/data/faces` beside the project."""
    env = os.environ.get("LEADMATCH_DEMO_PHOTOS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "faces"


def find_photos(folder: Path) -> tuple[Path, list[Path]]:
    """The gallery folder and probe photos under `folder` (laid out as gallery/<subject>/… and probes/…)."""
    folder = Path(folder)
    gallery_dir, probes_dir = folder / "gallery", folder / "probes"
    probes = sorted(p for p in probes_dir.glob("*") if p.suffix.lower() in PHOTO_SUFFIXES) if probes_dir.is_dir() else []
    if not gallery_dir.is_dir() or not any(gallery_dir.iterdir()) or not probes:
        raise InputError(f"no sample photos found in {folder}",
                         "pass --photos DIR holding gallery/<subject>/<photo> and probes/<photo>")
    return gallery_dir, probes


def _sign_in(ws: Workspace, name: str, password: str) -> accounts.Actor:
    token, _, _ = accounts.login(ws, name, password)
    return accounts.authenticate(ws, token)


def run_demo(ws: Workspace, photos: Path, say: Callable = print, show: Callable = print) -> dict:
    """Run the story; `say` prints a line, `show` prints a search. Returns the ids of what it made."""
    gallery_dir, probes = find_photos(photos)
    passwords = {name: secrets.token_urlsafe(16) for name in ("admin", "ana", "avery", "riley", "audra")}
    purposes.ensure_defaults(ws)

    say("\n== admin: accounts, certification ==")
    accounts.create_first_admin(ws, "admin", passwords["admin"])
    admin = _sign_in(ws, "admin", passwords["admin"])
    for name, role in (("ana", "analyst"), ("avery", "agent"), ("riley", "reviewer"), ("audra", "auditor")):
        accounts.add_user(ws, admin, name, [role], passwords[name])
        say(f"added {name} ({role})")
    cert = accounts.certify(ws, admin, "avery", accounts.DEFAULT_COURSE, (date.today() - timedelta(days=30)).isoformat())
    say(f"certified avery: {cert['course']} until {cert['expires']}")

    say("\n== analyst: authorized gallery, enrollment ==")
    ana = _sign_in(ws, "ana", passwords["ana"])
    gallery.create(ws, ana, DEMO_GALLERY, authority="Demonstration only: public sample photos (MIT licence)",
                   approved_by="leadmatch demo", approved_on="2026-01-01",
                   source=f"{gallery_dir} (face_recognition project sample images)", retention_days=30)
    report = enroll(ws, ana, DEMO_GALLERY, gallery_dir)
    say(f"enrolled {report.enrolled} photos of {report.subjects_added} subjects into {DEMO_GALLERY!r} "
        f"({report.skipped} skipped, {len(report.refused)} refused)")
    for r in report.refused:
        say(f"  refused  {r.path}: {r.reason} — {r.detail}")

    say("\n== agent: search, compare every candidate ==")
    avery = _sign_in(ws, "avery", passwords["avery"])
    accounts.accept_rules(ws, avery)
    base = dict(gallery=DEMO_GALLERY, case="DEMO-2026-0001", purpose="robbery", top_k=5,
                justification="Suspect photographed by a store camera during an armed robbery on 3 March.")
    mate_probe = next((p for p in probes if p.name == MATE_PROBE), probes[0])
    try:
        run(ws, avery, SearchRequest(probe=mate_probe, traditional_means="", **base))
    except Refused as refused:
        say(f"refused as it should be: {refused}")
    means = ("Canvassed the area, checked the victim's contacts and circulated a bulletin to patrol; "
             "no one recognised the suspect.")
    first = run(ws, avery, SearchRequest(probe=mate_probe, traditional_means=means, **base))
    show(first)
    _disposition_all(ws, avery, first)
    searches = {"identified": first["search_id"]}

    unknown_probe = next((p for p in probes if p.name == UNKNOWN_PROBE), None)
    if unknown_probe is not None:
        second = run(ws, avery, SearchRequest(probe=unknown_probe, traditional_means=means, face=3,
                                              **{**base, "case": "DEMO-2026-0002"}))
        show(second)
        _disposition_all(ws, avery, second)
        searches["no-identification"] = second["search_id"]

    say("\n== reviewer: independent corroboration, closure ==")
    try:
        casework.close(ws, avery, first["search_id"], "identified", "Closing my own search.", rank=1)
    except Refused as refused:
        say(f"refused as it should be: {refused}")
    riley = _sign_in(ws, "riley", passwords["riley"])
    if 1 in possible_leads(ws, first["search_id"]):
        try:
            casework.close(ws, riley, first["search_id"], "identified", "Matches the lead.", rank=1)
        except Refused as refused:
            say(f"refused as it should be: {refused}")
        casework.corroborate(ws, riley, first["search_id"], 1, "records-check",
                             "Booking record and DMV photo checked by a second examiner; tattoo matches the "
                             "store footage.", "RC-2026-0417", "corroborated")
        casework.close(ws, riley, first["search_id"], "identified", "Lead corroborated by records check RC-2026-0417.",
                       rank=1)
    else:
        casework.close(ws, riley, first["search_id"], "no-identification", "No candidate was a possible lead.")
    if "no-identification" in searches:
        casework.close(ws, riley, searches["no-identification"], "no-identification",
                       "Every candidate excluded on comparison; no lead.")
    for search_id in searches.values():
        say(f"search {search_id}: {casework.workflow(ws, search_id)['status']}")

    say("\n== auditor: chain and report ==")
    audra = _sign_in(ws, "audra", passwords["audra"])
    chain = oversight.verify(ws, audra)
    say(f"audit chain {'intact' if chain.ok else 'BROKEN'}: {chain.entries} entries, head {chain.head[:16]}…")
    today = date.today().isoformat()
    data = oversight.report(ws, audra, today, today)
    say(json.dumps({k: data[k] for k in ("searches_by_user", "refusals_by_reason", "closed_identified",
                                         "closed_no_identification")}, indent=2))
    compare_models(ws, ana, avery, gallery_dir, probes, {**base, "case": "DEMO-2026-0003"}, means, say)
    return searches


#: Probes the model comparison searches: a different photo of a gallery person each.
COMPARED_PROBES = ("johnsnow_test1.jpg", "obama1.jpg", "alex_lacamoire1.jpg")


def compare_models(ws: Workspace, analyst, agent, gallery_dir: Path, probes: list[Path], base: dict, means: str,
                   say: Callable = print) -> None:
    """Both face models on the sample gallery: the same photos enrolled into a dlib+faceres gallery, the same
    probes searched in both, rank-1 and the margin to the runner-up side by side (each model's distances are on
    its own scale, so the margin is shown against its calibrated threshold). Said in one line and skipped when
    FaceRes is not installed."""
    say("\n== both face models on the sample gallery: dlib and dlib+faceres ==")
    fused = DEMO_GALLERY + "-fused"
    try:
        gallery.create(ws, analyst, fused, authority="Demonstration only: public sample photos (MIT licence)",
                       approved_by="leadmatch demo", approved_on="2026-01-01", source=f"{gallery_dir}",
                       retention_days=30, model="dlib+faceres")
    except ModelError as exc:
        say(f"dlib+faceres not shown: {exc}")
        return
    enroll(ws, analyst, fused, gallery_dir)
    for probe in (p for p in probes if p.name in COMPARED_PROBES):
        cells = []
        for name in (DEMO_GALLERY, fused):
            result = run(ws, agent, SearchRequest(probe=probe, traditional_means=means, **{**base, "gallery": name}))
            _disposition_all(ws, agent, result)
            first, second = result["candidates"][0], result["candidates"][1]
            cells.append(f"{result['model']}: {first['subject']} at {first['distance']:.3f}, runner-up "
                         f"{second['distance'] / first['distance']:.2f}× as far (threshold {result['threshold']:.2f})")
        say(f"{probe.name}: " + "  |  ".join(cells))
    say("each model measures distance on its own scale and is calibrated in its own space; on six people both "
        "are right: the fused model's gain shows on larger galleries (README: A second face model)")


def possible_leads(ws: Workspace, search_id: str) -> list[int]:
    """Ranks the agent marked as possible leads."""
    return [rank for rank, d in casework.workflow(ws, search_id)["dispositions"].items()
            if d["decision"] == "possible-lead"]


def _disposition_all(ws: Workspace, agent: accounts.Actor, result: dict) -> None:
    """As an agent would after comparing: the top candidate within threshold is a possible lead, the rest not."""
    for c in result["candidates"]:
        lead = c["rank"] == 1 and c["within_threshold"]
        casework.disposition(ws, agent, result["search_id"], c["rank"], "possible-lead" if lead else "excluded",
                             "Same face shape, eyes and hairline; worth checking." if lead
                             else "Different face shape and features on side-by-side comparison.")
