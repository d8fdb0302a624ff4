"""Command line: parse, call the library, print. No rule lives here."""

from __future__ import annotations

import getpass
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import gallery as galleries
from . import leads, models
from . import search as searching
from .demo import default_photos, run_demo
from .enrollment import enroll
from .errors import FaceChoiceNeeded, InputError, LeadmatchError
from .workspace import Workspace, default_home, init as init_workspace, open_workspace

app = typer.Typer(help="leadmatch: face search for investigative leads. Every candidate is a lead, never an "
                       "identification.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)
gallery_app = typer.Typer(help="Authorized galleries: create, enroll, list, show, remove a subject.",
                          no_args_is_help=True)
app.add_typer(gallery_app, name="gallery")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class State:
    home: Path = default_home()


def workspace() -> Workspace:
    return open_workspace(State.home)


def actor() -> str:
    """Who is acting: the operating-system user (accounts arrive with the governance work)."""
    return getpass.getuser()


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@app.callback()
def main_options(home: Optional[Path] = typer.Option(
        None, "--home", envvar="LEADMATCH_HOME", help="Workspace folder (database, indexes/, photos/).")):
    State.home = home or default_home()


@app.command()
def init():
    """Create the workspace (SQLite record, indexes/, photos/) at --home."""
    ws, created = init_workspace(State.home)
    out.print(f"{'created' if created else 'already there:'} workspace {ws.home.resolve()}")


@app.command("models")
def models_check():
    """Check the model weights against the model card's sha256 values."""
    for name, digest in models.verify_all().items():
        out.print(f"ok  {name}  {digest}")


@gallery_app.command("create")
def gallery_create(
        name: str,
        authority: str = typer.Option(..., help="Legal authority for holding and searching these photos."),
        approved_by: str = typer.Option(..., help="Official who approved the gallery."),
        approved_on: str = typer.Option(..., help="Approval date, YYYY-MM-DD."),
        source: str = typer.Option(..., help="Where the photos come from."),
        retention_days: int = typer.Option(galleries.DEFAULT_RETENTION_DAYS, help="Retention period for searches."),
):
    """Create an authorized gallery. All four authorization fields are required."""
    ws = workspace()
    created = galleries.create(ws, actor(), name, authority, approved_by, approved_on, source, retention_days)
    out.print(f"created gallery {created.name!r} (authority: {created.authority}; approved by {created.approved_by} "
              f"on {created.approved_on}; retention {created.retention_days} days)")


@gallery_app.command("enroll")
def gallery_enroll(
        name: str,
        path: Path = typer.Argument(..., help="Folder of <subject>/<photos>, or a CSV manifest (path,subject,...)."),
        workers: Optional[int] = typer.Option(None, min=1, help="Worker processes (default: all cores)."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Enroll photos into a gallery. Already-enrolled photos (same sha256) are skipped; refusals are listed."""
    ws = workspace()
    with Progress(TextColumn("enrolling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=json_out) as bar:
        task = bar.add_task("enroll", total=None)
        report = enroll(ws, actor(), name, path, workers=workers,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        return emit_json(report.to_dict())
    out.print(f"gallery {report.gallery!r}: {report.enrolled} enrolled, {report.skipped} skipped (already enrolled), "
              f"{len(report.refused)} refused, {report.subjects_added} new subjects")
    for refusal in report.refused:
        out.print(f"  refused  {refusal.path}: {refusal.reason} — {refusal.detail}")
    if report.index_note:
        out.print(f"  index: {report.index_note}")


@gallery_app.command("list")
def gallery_list(json_out: bool = typer.Option(False, "--json")):
    """List galleries with their counts."""
    rows = galleries.list_all(workspace())
    if json_out:
        return emit_json(rows)
    if not rows:
        out.print("no galleries yet — create one with `leadmatch gallery create`")
        return
    table = Table("gallery", "subjects", "faces", "refused", "index", "authority")
    for g in rows:
        table.add_row(g["name"], str(g["subjects"]), str(g["faces"]), str(g["refused_photos"]), g["index"]["type"],
                      g["authorization"]["authority"])
    out.print(table)


@gallery_app.command("show")
def gallery_show(name: str, json_out: bool = typer.Option(False, "--json"),
                 refusals: bool = typer.Option(False, "--refusals", help="List every refused photo.")):
    """Show a gallery's authorization, counts and index."""
    ws = workspace()
    g = galleries.get(ws, name)
    info = galleries.describe(ws, g)
    if refusals or json_out:
        info["refusals"] = galleries.refusals(ws, g)
    if json_out:
        return emit_json(info)
    a = info["authorization"]
    out.print(f"gallery {info['name']}\n  authority:   {a['authority']}\n  approved by: {a['approved_by']} on "
              f"{a['approved_on']}\n  source:      {a['source']}\n  retention:   {a['retention_days']} days\n"
              f"  subjects {info['subjects']}, photos {info['photos']}, faces {info['faces']}, refused photos "
              f"{info['refused_photos']} {info['refused_by_reason'] or ''}\n  index: {info['index']['type']}, "
              f"{info['index']['bytes']:,} bytes at {info['index']['file']}")
    for r in info.get("refusals", []):
        out.print(f"  refused  {r['source_path']}: {r['reason']} — {r['detail']}")


@gallery_app.command("remove")
def gallery_remove(name: str, subject: str = typer.Option(..., help="Subject to remove, with all their faces.")):
    """Remove a subject's photos and faces from the record and the index."""
    result = galleries.remove_subject(workspace(), actor(), name, subject)
    out.print(f"removed subject {result['subject']!r} from {result['gallery']!r}: {result['faces_removed']} faces, "
              f"{result['photos_removed']} photos")


def parse_face(value: Optional[str]):
    if value is None or value == "largest":
        return value
    try:
        return int(value)
    except ValueError:
        raise InputError(f"--face {value!r} is not a face number", "give a number from 1, or largest") from None


@app.command()
def search(
        probe: Path = typer.Argument(..., help="Probe photo."),
        gallery: str = typer.Option(..., "--gallery", help="Authorized gallery to search."),
        case: str = typer.Option(..., "--case", help="Case number this search serves."),
        top_k: int = typer.Option(leads.DEFAULT_CANDIDATES, "--top-k", help="Candidates to return, 2 to 50."),
        face: Optional[str] = typer.Option(None, "--face", help="Face number (1 = leftmost) or 'largest'."),
        detector: str = typer.Option("hog", "--detector", help="hog (fast) or cnn (slower, finds more poses)."),
        json_out: bool = typer.Option(False, "--json", help="Print the search as JSON."),
):
    """Search a probe photo against a gallery: a ranked list of investigative leads."""
    ws = workspace()
    request = searching.SearchRequest(probe=probe, gallery=gallery, case=case, top_k=top_k, face=parse_face(face),
                                      detector=detector)
    result = searching.run(ws, actor(), request)
    emit_json(result) if json_out else print_search(result)


@app.command("show")
def show(search_id: str, json_out: bool = typer.Option(False, "--json")):
    """Show a recorded search and its candidates."""
    result = searching.show(workspace(), search_id)
    emit_json(result) if json_out else print_search(result)


def print_search(result: dict) -> None:
    """The candidate table, with the lead-only notice above, on every row, and below."""
    probe = result["probe"]
    wide = Console(highlight=False, width=max(out.width, 140))
    wide.print(f"[bold]{leads.NOTICE}[/bold]")
    wide.print(f"search {result['search_id']}  case {result['case']}  gallery {result['gallery']}  "
               f"probe {probe['name']} (face {probe['face_index']} of {probe['faces_in_photo']}, "
               f"{probe['quality']['size_px']} px, eyes {probe['quality']['eye_distance_px']} px, "
               f"sharpness {probe['quality']['sharpness']})")
    for flag in result["flags"]:
        wide.print(f"[yellow]flag: {flag}[/yellow]")
    if result.get("details", {}).get("index_repaired"):
        wide.print(f"note: {result['details']['index_repaired']}")
    table = Table("rank", "subject", "distance", "score", f"< {result['threshold']:g}", "face", "label")
    for c in result["candidates"]:
        table.add_row(str(c["rank"]), c["subject"], f"{c['distance']:.4f}", f"{c['score']:.1f}",
                      "yes" if c["within_threshold"] else "no", str(c["face_id"]), c["label"])
    wide.print(table)
    wide.print(f"[bold]{leads.NOTICE}[/bold]")


@app.command()
def demo(photos: Optional[Path] = typer.Option(None, "--photos", help="Folder with gallery/<subject>/… and probes/…"),
         keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the demo workspace in this folder.")):
    """Run the main job end to end on sample photos, in a throw-away workspace."""
    photos = photos or default_photos()
    with tempfile.TemporaryDirectory(prefix="leadmatch-demo-") as temp:
        home = keep or Path(temp)
        ws, _ = init_workspace(home)
        out.print(f"demo workspace: {home}  photos: {photos}")
        result = run_demo(ws, actor(), photos)
        e = result.enrollment
        out.print(f"enrolled {e.enrolled} photos into {e.gallery!r} ({e.skipped} skipped, {len(e.refused)} refused)")
        for r in e.refused:
            out.print(f"  refused  {r.path}: {r.reason} — {r.detail}")
        for found in result.searches:
            out.print()
            print_search(found)


def main() -> None:
    """Entry point: run the app, turning every leadmatch error into one line and an exit code."""
    try:
        app()
    except LeadmatchError as exc:
        if isinstance(exc, FaceChoiceNeeded):
            err.print(f"error: {exc.message} — {exc.hint}:")
            for f in exc.faces:
                err.print(f"  face {f['face']}: box {f['box']}, {f['size_px']} px wide, "
                          f"eyes {f['eye_distance_px']} px apart, sharpness {f['sharpness']}")
        else:
            err.print(f"error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the last guard: no traceback reaches a user
        if os.environ.get("LEADMATCH_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} — please report it; "
                  "set LEADMATCH_DEBUG=1 to see the traceback")
        sys.exit(70)
