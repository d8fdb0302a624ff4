"""The demo: the main job end to end on a folder of sample photos, in a throw-away workspace."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import gallery
from .enrollment import EnrollmentReport, enroll
from .errors import FaceChoiceNeeded, InputError
from .photos import PHOTO_SUFFIXES
from .search import SearchRequest, run
from .workspace import Workspace

DEMO_GALLERY = "demo-gallery"
DEMO_PROBES = ("obama1.jpg", "johnsnow_test1.jpg", "two_people.jpg")


def default_photos() -> Path:
    """`$LEADMATCH_DEMO_PHOTOS`, else `../shared/data/faces` beside the project."""
    env = os.environ.get("LEADMATCH_DEMO_PHOTOS")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces"


def find_photos(folder: Path) -> tuple[Path, list[Path]]:
    """The gallery folder and probe photos under `folder` (laid out as gallery/<subject>/… and probes/…)."""
    folder = Path(folder)
    gallery_dir, probes_dir = folder / "gallery", folder / "probes"
    probes = sorted(p for p in probes_dir.glob("*") if p.suffix.lower() in PHOTO_SUFFIXES) if probes_dir.is_dir() else []
    if not gallery_dir.is_dir() or not any(gallery_dir.iterdir()) or not probes:
        raise InputError(f"no sample photos found in {folder}",
                         "pass --photos DIR holding gallery/<subject>/<photo> and probes/<photo>")
    chosen = [p for p in probes if p.name in DEMO_PROBES] or probes[:3]
    return gallery_dir, chosen


@dataclass
class DemoRun:
    enrollment: EnrollmentReport
    searches: list[dict] = field(default_factory=list)


def run_demo(ws: Workspace, actor: str, photos: Path, progress=None) -> DemoRun:
    """Create an authorized demo gallery, enroll the sample gallery, and search every face of a few probes."""
    gallery_dir, probes = find_photos(photos)
    gallery.create(ws, actor, DEMO_GALLERY, authority="Demonstration only: public sample photos (MIT licence)",
                   approved_by="leadmatch demo", approved_on="2026-01-01",
                   source=f"{gallery_dir} (face_recognition project sample images)", retention_days=30)
    result = DemoRun(enroll(ws, actor, DEMO_GALLERY, gallery_dir, progress=progress))
    for probe in probes:
        request = SearchRequest(probe=probe, gallery=DEMO_GALLERY, case="DEMO-0001", top_k=3)
        try:
            result.searches.append(run(ws, actor, request))
        except FaceChoiceNeeded as several:  # as an agent would: look at the list, search each face
            for face in several.faces:
                request.face = face["face"]
                result.searches.append(run(ws, actor, request))
    return result
