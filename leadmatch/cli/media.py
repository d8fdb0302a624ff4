"""`leadmatch media …`: case media and the persons found in them. Parse, call the backend, print."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from leadmatch.casemedia.media import MEDIA_EVERY_S, MediaRequest
from leadmatch.cli.context import backend
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import emit_json, err, fitting_table, out, plural, print_search
from leadmatch.search import leads, probes
from leadmatch.search import run as searching

app = typer.Typer(help="Case media (agent): add photos and clips to a case; the persons who recur in them; "
                       "merge, split, drop, undo; search a person.", no_args_is_help=True)



@app.command("add")
def add(case: str = typer.Argument(..., help="Case number the media belong to."),
        paths: list[Path] = typer.Argument(..., help="Photos, clips or folders of them (only read, never changed)."),
        purpose: str = typer.Option(..., "--purpose", help="Authorized purpose (see `leadmatch purposes`)."),
        justification: str = typer.Option(..., "--justification", help="Why these media are analyzed."),
        every: float = typer.Option(MEDIA_EVERY_S, "--every", help="Clips: sample a frame every S seconds."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes (default: all cores)."),
        ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|HOST:PORT",
                                          help="Analyze the photos on this Ray cluster (clips stay on this machine)."),
        batch: Optional[int] = typer.Option(None, "--batch", min=1, help="With --ray: photos per Ray task."),
        json_out: JsonOption = False):
    """Add photos and clips to a case: every face found and embedded, clips as face tracks, grouped into persons."""
    request = MediaRequest(case=case, paths=list(paths), purpose=purpose, justification=justification, every_s=every,
                           workers=workers, ray=ray, batch=batch)
    with Progress(TextColumn("analyzing case media"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=json_out) as bar:
        task = bar.add_task("media", total=None)
        report = backend().media_add(request, progress=lambda done, total: bar.update(task, completed=done,
                                                                                           total=total))
    if json_out:
        return emit_json(report)
    out.print(f"case {report['case']}: {plural(len(report['added']), 'file')} added "
              f"({plural(report['faces'], 'face')}, {plural(report['tracks'], 'clip track')}), "
              f"{len(report['skipped'])} already in the case, {len(report['refused'])} refused; "
              f"{plural(report['persons']['persons'], 'person')} ({report['persons']['new_persons']} new)")
    for r in report["refused"]:
        out.print(f"  refused  {r['file']}: {r['reason']} — {r['detail']}")


@app.command("list")
def media_list(case: str, json_out: JsonOption = False):
    """The files of a case, with their sha256 and faces."""
    rows = backend().media_list(case)
    if json_out:
        return emit_json(rows)
    table = fitting_table("file", "kind", "sha256", "faces", "added by", "added (UTC)")
    for r in rows:
        table.add_row(r["file"], r["kind"], r["sha256"][:16] + "…", str(r["faces"]), r["added_by"], r["added_at"][:19])
    out.print(table if rows else f"case {case} has no media")


@app.command("persons")
def persons(case: str, all_: bool = typer.Option(False, "--all", help="Also dropped and merged persons."),
            json_out: JsonOption = False):
    """The persons of a case: appearances, files, clip tracks, how tight each group is."""
    data = backend().persons(case, all_)
    if json_out:
        return emit_json(data)
    out.print(f"case {data['case']}: {len(data['persons'])} persons (model {data['model']}, grouping threshold "
              f"{data['threshold']}); {data['ungrouped_faces']} faces below the quality floor not grouped")
    table = fitting_table("person", "appearances", "files", "tracks", "max distance", "best faces", "state")
    for p in data["persons"]:
        c = p["cohesion"]
        table.add_row(p["label"], str(len(p["appearances"])), str(p["files"]), str(p["tracks"]),
                      "—" if c["max_distance"] is None else f"{c['max_distance']:.3f}",
                      " ".join(str(f) for f in p["best_faces"]),
                      "dropped: " + p["dropped"]["reason"] if p["dropped"] else "")
    out.print(table)


@app.command("person")
def person(case: str, label: str, json_out: JsonOption = False):
    """One person's appearances: face id, file, sha256, time in clip, box, quality."""
    p = backend().person_show(case, label)
    if json_out:
        return emit_json(p)
    out.print(f"person {p['label']} of case {p['case']} ({p['origin']}): {len(p['appearances'])} appearances in "
              f"{p['files']} files; best faces {p['best_faces']}")
    table = fitting_table("face", "file", "sha256", "track", "time (s)", "box", "px", "sharpness", "usable")
    for a in p["appearances"]:
        track = "" if a["track"] is None else str(a["track"])
        table.add_row(str(a["face_id"]), a["file"], a["sha256"][:12] + "…", track,
                      "" if a["time_s"] is None else f"{a['time_s']:.2f}", str(a["box"]), str(a["quality"]["size_px"]),
                      str(a["quality"]["sharpness"]), "yes" if a["usable"] else "no")
    out.print(table)


@app.command("merge")
def merge(case: str, labels: list[str] = typer.Argument(..., help="Persons to merge; the first keeps them all."),
          reason: str = typer.Option(..., "--reason", help="Why they are one person.")):
    """Merge persons the grouping kept apart (recorded with who and why; undo reverses it)."""
    r = backend().person_merge(case, labels, reason)
    out.print(f"merged {', '.join(r['merged'])} into {r['person']} ({r['faces_moved']} faces; "
              f"change {r['change']})")


@app.command("split")
def split(case: str, label: str,
          face: list[int] = typer.Option(..., "--face", help="Appearance (face id) to move; a clip face moves its "
                                                             "whole track."),
          reason: str = typer.Option(..., "--reason", help="Why they are someone else.")):
    """Split appearances off a person into a new person (recorded; undo reverses it)."""
    r = backend().person_split(case, label, face, reason)
    out.print(f"split {r['faces_moved']} faces off {r['person']} into {r['new_person']} (change {r['change']})")


@app.command("drop")
def drop(case: str, label: str, reason: str = typer.Option(..., "--reason", help="Why it is set aside.")):
    """Set a person aside: not listed or searchable; its appearances stay on record (undo restores it)."""
    r = backend().person_drop(case, label, reason)
    out.print(f"dropped {r['person']} (change {r['change']})")


@app.command("undo")
def undo(case: str, reason: str = typer.Option(..., "--reason", help="Why the change is undone.")):
    """Undo the case's latest merge, split or drop."""
    r = backend().person_undo(case, reason)
    out.print(f"undid the {r['undid']} (change {r['change']})")


@app.command("search")
def search(case: str, label: str,
           gallery: str = typer.Option(..., "--gallery", help="Authorized gallery to search."),
           purpose: str = typer.Option(..., "--purpose"),
           justification: str = typer.Option(..., "--justification"),
           traditional_means: str = typer.Option(..., "--traditional-means"),
           top_k: int = typer.Option(leads.DEFAULT_CANDIDATES, "--top-k", help="Candidates, 2 to 50."),
           fusion: str = typer.Option(probes.DEFAULT_FUSION, "--fusion", help="mean, min or best."),
           json_out: JsonOption = False):
    """Search a person's best faces against a gallery (agent): ranked investigative leads, provenance shown."""
    request = searching.SearchRequest(probe=Path(), gallery=gallery, case=case, purpose=purpose,
                                      justification=justification, traditional_means=traditional_means, top_k=top_k,
                                      fusion=fusion)
    result = backend().person_search(case, label, request)
    emit_json(result) if json_out else print_search(result)
