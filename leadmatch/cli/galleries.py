"""Authorized galleries (analyst): create, enroll, list, show, remove a subject; their indexes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from leadmatch.cli.context import State, backend
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import reasons, when, emit_json, err, out, print_build, print_enrollment
from leadmatch.gallery import galleries as galleries
from leadmatch.safetext import shown_all

gallery_app = typer.Typer(help="Authorized galleries: create, enroll, list, show, list or remove subjects.",
                          no_args_is_help=True)

index_app = typer.Typer(help="A gallery's FAISS index: build, rebuild, status.", no_args_is_help=True)


@gallery_app.command("create")
def gallery_create(
        name: str,
        authority: str = typer.Option(..., help="Legal authority for holding and searching these photos."),
        approved_by: str = typer.Option(..., help="Official who approved the gallery."),
        approved_on: str = typer.Option(..., help="Approval date, YYYY-MM-DD."),
        source: str = typer.Option(..., help="Where the photos come from."),
        retention_days: int = typer.Option(galleries.DEFAULT_RETENTION_DAYS, help="Retention period for searches."),
        model: Optional[str] = typer.Option(None, "--model", help="Face model: dlib, or dlib+faceres (fused; needs "
                                                                   "the FaceRes weights `make install` fetches). "
                                                                   "Default: the workspace's (init --model), dlib."),
):
    """Create an authorized gallery (analyst). All four authorization fields are required."""
    created = backend().gallery_create(name, authority, approved_by, approved_on, source, retention_days, model)
    a = created["authorization"]
    out.print(f"created gallery {created['name']!r} (authority: {a['authority']}; approved by "
              f"{a['approved_by']} on {a['approved_on']}; retention {a['retention_days']} days; "
              f"model {created.get('model', 'dlib')})")


@gallery_app.command("enroll")
def gallery_enroll(
        name: str,
        path: Path = typer.Argument(..., help="Folder of <subject>/<photos>, or a CSV manifest (path,subject,...)."),
        workers: Optional[int] = typer.Option(None, min=1, help="Worker processes (default: all cores; with "
                                                                "--ray: at most this many Ray workers)."),
        json_out: JsonOption = False,
        on_server: bool = typer.Option(False, "--on-server", help="With --server: PATH is on the service's "
                                                                   "machine, under its --enroll-root."),
        ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|HOST:PORT",
                                          help="Analyze the photos on this Ray cluster (needs leadmatch's "
                                               "cluster extra); the record is still written here."),
        batch: Optional[int] = typer.Option(None, "--batch", min=1, help="With --ray: photos per Ray task and "
                                                                         "per transaction (default: up to 64)."),
):
    """Enroll photos into a gallery (analyst). Already-enrolled photos are skipped; refusals are listed."""
    # Through --server the photos are uploaded (or, with --on-server, named on the service's machine), and with
    # --ray the service drives its own Ray cluster; in direct mode this process does the work, with a progress bar.
    try:
        with Progress(TextColumn("enrolling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True, disable=json_out or bool(State.server)) as bar:
            task = bar.add_task("enroll", total=None)
            report = backend().gallery_enroll(name, path, on_server, ray=ray, batch=batch, workers=workers,
                                              progress=lambda done, total: bar.update(task, completed=done,
                                                                                      total=total))
    except KeyboardInterrupt:
        err.print("interrupted — every photo written so far is kept; run the same command again to continue")
        raise typer.Exit(130)
    if json_out:
        return emit_json({k: v for k, v in report.items() if k != "index_note"})
    print_enrollment(report)


@gallery_app.command("list")
def gallery_list(json_out: JsonOption = False):
    """List galleries with their counts."""
    rows = backend().gallery_list()
    if json_out:
        return emit_json(rows)
    if not rows:
        out.print("no galleries yet — an analyst creates one with `leadmatch gallery create`")
        return
    table = Table("gallery", "subjects", "faces", "refused", "index", "authority")
    for g in rows:
        if "subjects" not in g:  # an agent or reviewer sees the names only
            table.add_row(g["name"], *["—"] * 5)
            continue
        table.add_row(g["name"], str(g["subjects"]), str(g["faces"]), str(g["refused_photos"]), g["index"]["type"],
                      g["authorization"]["authority"])
    out.print(table)


@gallery_app.command("show")
def gallery_show(name: str, json_out: JsonOption = False,
                 refusals: bool = typer.Option(False, "--refusals", help="List every refused photo.")):
    """Show a gallery's authorization, counts and index."""
    info = backend().gallery_show(name, refusals or json_out)
    if json_out:
        return emit_json(info)
    info = shown_all(info)
    a = info["authorization"]
    out.print(f"gallery {info['name']}\n  authority:   {a['authority']}\n  approved by: {a['approved_by']} on "
              f"{a['approved_on']}\n  source:      {a['source']}\n  retention:   {a['retention_days']} days\n"
              f"  subjects {info['subjects']}, photos {info['photos']}, faces {info['faces']}, refused photos "
              f"{info['refused_photos']}{reasons(info['refused_by_reason'])}\n  model: {info.get('model', 'dlib')}\n"
              f"  index: {info['index']['type']}, "
              f"{info['index']['bytes']:,} bytes at {info['index']['file']}")
    if info.get("calibration"):
        out.print(f"  {info['calibration']['text']}; {info['flagged_faces']} faces enrolled with a quality flag")
    for r in info.get("refusals", []):
        out.print(f"  refused  {r['source_path']}: {r['reason']} — {r['detail']}")


@gallery_app.command("subjects")
def gallery_subjects(name: str, contains: str = typer.Option("", "--filter", help="Only subjects whose name "
                                                                               "contains this (any case)."),
                     flagged: bool = typer.Option(False, "--flagged", help="Only subjects with a quality-flagged "
                                                                           "face."),
                     offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (for the next page)."),
                     limit: int = typer.Option(galleries.SUBJECTS_PAGE, "--limit", min=1,
                                               max=galleries.SUBJECTS_PAGE_MAX, help="Subjects per page."),
                     json_out: JsonOption = False):
    """List a gallery's subjects by name, with their photo and face counts and quality flags (analyst, auditor,
    admin)."""
    page = backend().gallery_subjects(name, contains, offset, limit, flagged)
    if json_out:
        return emit_json(page)
    rows = shown_all(page["subjects"])
    if not rows:
        out.print(f"no subjects in {page['gallery']}" + (f" matching {contains!r}" if contains else "")
                  + (" with a flagged face" if flagged else "") + (f" past {offset}" if offset else ""))
        return
    table = Table("subject", "photos", "faces", "flagged", "flags")
    for r in rows:
        table.add_row(r["subject"], str(r["photos"]), str(r["faces"]), str(r["flagged_faces"]) if r["flagged_faces"]
                      else "", "; ".join(r["flags"]))
    out.print(table)
    last = offset + len(rows)
    subjects = "subject" if page["total"] == 1 else "subjects"
    out.print(f"{offset + 1}–{last} of {page['total']} {subjects}"
              + (f"; the next page: --offset {last}" if last < page["total"] else ""))


@gallery_app.command("target-fpir")
def gallery_target_fpir(name: str, target: float = typer.Argument(..., help="Share of searches for someone not "
                                                                  "enrolled allowed a rank-1 within threshold, e.g. 0.01.")):
    """Set the false-alarm rate the gallery's threshold is calibrated for (admin; audited)."""
    result = backend().gallery_target_fpir(name, target)
    out.print(f"gallery {name}: {result['text']}")


@gallery_app.command("remove")
def gallery_remove(name: str, subject: str = typer.Option(..., help="Subject to remove, with all their faces.")):
    """Remove a subject's photos and faces from the record and the index (analyst)."""
    result = backend().gallery_remove(name, subject)
    out.print(f"removed subject {result['subject']!r} from {result['gallery']!r}: {result['faces_removed']} faces, "
              f"{result['photos_removed']} photos")


@index_app.command("build")
def index_build(gallery: str, index: Optional[str] = typer.Option(
        None, "--index", help='FAISS factory string, e.g. "Flat", "IVF4096,SQ8", "HNSW32" (default: by size).')):
    """Train the gallery's index afresh (analyst); --index sets its type from now on."""
    print_build(backend().index_build(gallery, index))


@index_app.command("rebuild")
def index_rebuild(gallery: str):
    """Retrain the gallery's index as its current type (analyst), e.g. after much growth."""
    print_build(backend().index_build(gallery))


@index_app.command("status")
def index_status(gallery: str, json_out: JsonOption = False):
    """Type, size, bytes per face, training, faces added since, last self-check."""
    st = backend().index_status(gallery)
    if json_out:
        return emit_json(st)
    check = st["self_check"] or {}
    out.print(f"index of {st['gallery']}: {st['type']} (chosen by {st['chosen_by']}), {st['faces']} faces, "
              f"{st['bytes']:,} bytes ({st['bytes_per_face']} per face)\n  trained on {st['trained_on']} faces at "
              f"{when(st['built_at'])}; {st['added_since_training']} added since"
              + (f"; nprobe {st['nprobe']}" if st["nprobe"] is not None else "")  # exact indexes have none
              + (f"\n  last self-check: recall {check['recall']} on {check['sample']} probes, {when(check.get('at'))}"
                 if check.get("recall") is not None else "\n  no self-check recorded"))
    if st["repaired"]:
        out.print(f"  repaired: {st['repaired']}")
    out.print(f"  rebuild recommended: {st['rebuild_recommended']}" if st["rebuild_recommended"]
              else "  no rebuild needed")


@gallery_app.command("model")
def gallery_model(name: str = typer.Argument(..., help="Gallery whose face model changes."),
                  model: str = typer.Argument(..., help="dlib, or dlib+faceres (dlib fused with FaceRes)."),
                  recompute: bool = typer.Option(False, "--recompute", help=(
                      "dlib+faceres: re-embed every face's FaceRes descriptor, also in a gallery already on it "
                      "(after a change to how FaceRes is fed).")),
                  json_out: JsonOption = False):
    """Switch a gallery's face model (admin): faces are re-embedded from the photos the workspace keeps, the index
    rebuilt and the threshold recalibrated."""
    with Progress(TextColumn("re-embedding faces"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=json_out) as bar:
        task = bar.add_task("model", total=None)
        result = backend().gallery_model(name, model,
                                         lambda done, total: bar.update(task, completed=done, total=total), recompute)
    if json_out:
        return emit_json(result)
    build = result["index"]
    now = ("still uses the {model} model" if result["previous"] == result["model"]
           else "now uses the {model} model (was {previous})").format(**result)
    out.print(f"gallery {result['gallery']!r} {now}: "
                  f"{result['faces_embedded']} faces re-embedded; index {build['factory']} rebuilt on "
                  f"{build['faces']} faces" + (f", fusion scales dlib {build['scales']['dlib']}, faceres "
                                               f"{build['scales']['faceres']}" if build.get("scales") else ""))
    if result.get("calibration"):
        out.print(f"  {result['calibration']['text']}")
