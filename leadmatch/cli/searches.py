"""Searching (agent) and what follows: list, show, dispositions, corroboration, closure, the report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from leadmatch.cli.clip_progress import clip_progress
from leadmatch.cli.context import State, backend, new_file, parse_face
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import emit_json, fitted, fitting_table, out, plural, print_search
from leadmatch.gallery import galleries as galleries
from leadmatch.governance import casework
from leadmatch.search import leads, probes, video
from leadmatch.search import run as searching

commands = typer.Typer()  # top-level commands, added to the app as they are


@commands.command()
def search(
        probe: list[Path] = typer.Argument(..., help="Probe photo; several stills of ONE person; or a video clip."),
        gallery: str = typer.Option(..., "--gallery", help="Authorized gallery to search."),
        case: str = typer.Option(..., "--case", help="Case number this search serves."),
        purpose: str = typer.Option(..., "--purpose", help="Authorized purpose (see `leadmatch purposes`)."),
        justification: str = typer.Option(..., "--justification", help="Why this search is needed."),
        traditional_means: str = typer.Option(..., "--traditional-means",
                                              help="What traditional steps were tried first, and why they failed."),
        probe_source: str = typer.Option("original", "--probe-source",
                                         help="original, cropped, enhanced (flagged; needs --original and "
                                              "--enhancement); composite and sketch are refused."),
        original: Optional[Path] = typer.Option(None, "--original", help="Enhanced probe: the photo before editing."),
        enhancement: str = typer.Option("", "--enhancement", help="Enhanced probe: what was done to the original."),
        top_k: int = typer.Option(leads.DEFAULT_CANDIDATES, "--top-k",
                                  help="Candidates to return, 2 to 50 (subjects; photos with --per-photo)."),
        face: Optional[str] = typer.Option(None, "--face", help="Face number (1 = leftmost), 'largest' or 'central'."),
        track: Optional[str] = typer.Option(None, "--track", help="Video: track number or 'largest'."),
        every: float = typer.Option(video.DEFAULT_EVERY_S, "--every", help="Video: sample a frame every S seconds."),
        best_frames: int = typer.Option(video.DEFAULT_BEST_FRAMES, "--best-frames",
                                        help="Video: search with the track's best K frames."),
        fusion: str = typer.Option(probes.DEFAULT_FUSION, "--fusion",
                                   help="Several frames or stills: min (closest any comes), mean or best."),
        per_photo: bool = typer.Option(False, "--per-photo", help="One candidate per gallery photo, not per subject."),
        detector: str = typer.Option("hog", "--detector", help="hog (fast) or cnn (slower, finds more poses)."),
        progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                                help="Video: show the analysis on stderr (default: a bar on a "
                                                     "terminal; --progress: plain lines elsewhere too)."),
        json_out: JsonOption = False,
):
    """Search a probe (photo, stills of one person, or video) against a gallery (agent): ranked investigative leads."""
    request = searching.SearchRequest(probe=probe[0], more_probes=tuple(probe[1:]), gallery=gallery, case=case,
                                      purpose=purpose, justification=justification,
                                      traditional_means=traditional_means, probe_source=probe_source, top_k=top_k,
                                      face=parse_face(face), track=parse_face(track, "--track"), every_s=every,
                                      best_frames=best_frames, fusion=fusion, per_photo=per_photo, detector=detector,
                                      original=original, enhancement=enhancement)
    # through --server the service analyses the clip and no progress comes back: no bar that would never move
    shown = progress if video.is_video(probe[0]) and not State.server else False
    with clip_progress(shown) as request.progress:
        result = backend().search(request)
    emit_json(result) if json_out else print_search(result)


@commands.command()
def searches(case: Optional[str] = typer.Option(None, "--case"),
             status: Optional[str] = typer.Option(None, "--status", help=", ".join(casework.STATUSES)),
             json_out: JsonOption = False):
    """List searches (agents see their own; reviewers, auditors and admins see all)."""
    rows = backend().searches(case, status)
    if json_out:
        return emit_json(rows)
    listed = fitting_table("search", "case", "status", "agent", "gallery", "purpose", "candidates", "created (UTC)", whole=(0,))
    for r in rows:
        listed.add_row(r["search_id"], r["case"], r["status"], r["agent"], r["gallery"], r["purpose"] or "",
                       str(r["candidates"]), r["created_at"][:16].replace("T", " "))
    fitted().print(listed if rows else "no searches match")


@commands.command("show")
def show(search_id: str, json_out: JsonOption = False):
    """Show a search: status, candidates, dispositions, corroboration, closure and history."""
    result = backend().show(search_id)
    emit_json(result) if json_out else print_search(result, full=True)


@commands.command()
def disposition(search_id: str, rank: int = typer.Option(..., "--rank"),
                decision: str = typer.Option(..., "--decision", help="possible-lead or excluded"),
                note: str = typer.Option(..., "--note", help="Why.")):
    """Record your decision on one candidate of your search (agent)."""
    r = backend().disposition(search_id, rank, decision, note)
    out.print(f"rank {r['rank']}: {r['decision']} — search {search_id} is {r['status']}"
              + (f" ({plural(r['remaining'], 'candidate')} left)" if r["remaining"] else ""))


@commands.command()
def corroborate(search_id: str, rank: int = typer.Option(..., "--rank"),
                evidence_type: str = typer.Option(..., "--evidence-type", help=", ".join(casework.EVIDENCE_TYPES)),
                evidence: str = typer.Option(..., "--evidence", help="What the evidence shows."),
                reference: str = typer.Option(..., "--reference", help="Report, record or exhibit number."),
                outcome: str = typer.Option(..., "--outcome", help="corroborated or refuted")):
    """Record independent evidence on a possible lead (reviewer, not the searching agent)."""
    r = backend().corroborate(search_id, rank, evidence_type, evidence, reference, outcome)
    out.print(f"rank {r['rank']}: {r['evidence_type']} evidence recorded, {r['outcome']}")


@commands.command("close")
def close_search(search_id: str, outcome: str = typer.Option(..., "--outcome", help="identified or no-identification"),
                 rank: Optional[int] = typer.Option(None, "--rank", help="The corroborated candidate (identified)."),
                 note: str = typer.Option(..., "--note")):
    """Close a search after review (reviewer, not the searching agent)."""
    r = backend().close(search_id, outcome, note, rank)
    out.print(f"search {search_id} is {r['status']}")


@commands.command()
def report(search_id: str, out_file: Optional[Path] = typer.Option(None, "--out", help="Write to FILE.html."),
           force: bool = typer.Option(False, "--force", help="Replace the file if it exists.")):
    """The lead report of a search: one self-contained, printable HTML file (never over a file without --force)."""
    target = out_file or Path(f"lead-report-{search_id}.html")
    new_file(target, force)
    backend().report(search_id, target)
    out.print(f"wrote {target}")
