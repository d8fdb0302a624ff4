"""Command line: parse, call the library, print. No rule lives here."""

from __future__ import annotations

import getpass
import json
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from leadmatch.governance import accounts, casework, purposes
from leadmatch.biometrics.models import agreement, registry as models
from leadmatch.tools import bench, evaluation
from leadmatch.cli import backends as client, credentials
from leadmatch.biometrics import faces
from leadmatch.search import leads, probes, video
from leadmatch.governance import audit as auditing
from leadmatch.gallery import galleries as galleries
from leadmatch.search import run as searching
from leadmatch.tools.demo import default_photos, run_demo
from leadmatch.gallery.enrollment import enroll
from leadmatch.errors import FaceChoiceNeeded, InputError, LeadmatchError, ModelError
from leadmatch.record.workspace import Workspace, default_home, init as init_workspace, open_workspace

app = typer.Typer(help="leadmatch: face search for investigative leads. Every candidate is a lead, never an "
                       "identification.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)
gallery_app = typer.Typer(help="Authorized galleries: create, enroll, list, show, remove a subject.",
                          no_args_is_help=True)
app.add_typer(gallery_app, name="gallery")
user_app = typer.Typer(help="Accounts (admin): add, certify, disable, list.", no_args_is_help=True)
app.add_typer(user_app, name="user")
audit_app = typer.Typer(help="The audit trail (auditor or admin): verify, checkpoint, log, report.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
index_app = typer.Typer(help="A gallery's FAISS index: build, rebuild, status.", no_args_is_help=True)
app.add_typer(index_app, name="index")
bench_app = typer.Typer(help="Speed measurements (see benchmarks/ for the full tables).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
purposes_app = typer.Typer(help="Authorized search purposes.", invoke_without_command=True)
app.add_typer(purposes_app, name="purposes")
from leadmatch.cli import case as case_cli, media as media_cli, policy as policy_cli  # noqa: E402
app.add_typer(media_cli.app, name="media")
app.add_typer(case_cli.app, name="case")
app.add_typer(policy_cli.app, name="policy")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class State:
    home: Path = default_home()
    server: str | None = None


def workspace() -> Workspace:
    return open_workspace(State.home)


def backend():
    """Where commands go: the leadmatch service (--server) or, in direct mode, the workspace itself."""
    return client.backend(State.home, State.server)


def session() -> tuple[Workspace, accounts.Actor]:
    """The workspace and the signed-in user of this OS account: direct mode only, so a command that forgot to go
    through `backend()` can never act on a local workspace while the user believes it went to the service."""
    if State.server:
        raise InputError("this command does not go through --server", "run it without --server, on the machine "
                         "that holds the workspace")
    ws = workspace()
    return ws, accounts.authenticate(ws, credentials.token_for(ws.home))


def local_only(command: str, why: str, hint: str = "run it without --server") -> None:
    """Refuse --server for a command that works on this machine by nature, saying why."""
    if State.server:
        raise InputError(f"{command} does not go through --server: {why}", hint)


def read_password(from_stdin: bool, confirm: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the password on", "pass --password-stdin and pipe it in")
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise InputError("the two passwords differ", "try again")
    return first


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


@app.callback()
def main_options(ctx: typer.Context, home: Optional[Path] = typer.Option(
        None, "--home", envvar="LEADMATCH_HOME", help="Workspace folder (database, indexes/, photos/)."),
        server: Optional[str] = typer.Option(None, "--server", envvar=client.SERVER_ENV,
                                             help="URL of a leadmatch service: commands go through its API."),
        engine: Optional[str] = typer.Option(None, "--engine", envvar="LEADMATCH_ENGINE",
                                             help="Descriptor + CNN detector: onnx (default) or dlib; same numbers.")):
    State.home = home or default_home()
    State.server = server or None
    faces.use_engine(engine)
    # what the command-group modules (media, case, policy) call and print through, without importing this one
    ctx.obj = SimpleNamespace(backend=backend, out=out, err=err, emit_json=emit_json, print_search=print_search)


@app.command()
def init(admin: Optional[str] = typer.Option(None, "--admin", help="Create the first admin account."),
         password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin.")):
    """Create the workspace (SQLite record, indexes/, photos/) at --home, and its first admin."""
    local_only("init", "it creates the service's own workspace",
               "run it as the service's account on the service's machine, without --server")
    ws, created = init_workspace(State.home)
    purposes.ensure_defaults(ws)
    out.print(f"{'created' if created else 'already there:'} workspace {ws.home.resolve()}")
    if admin:
        accounts.create_first_admin(ws, admin, read_password(password_stdin, confirm=True))
        out.print(f"created admin {admin!r}; sign in with `leadmatch login {admin}`")
    elif not accounts.has_users(ws):
        out.print("no accounts yet: create the first admin with `leadmatch init --admin NAME`")


@app.command()
def login(name: str, password_stdin: bool = typer.Option(False, "--password-stdin"),
          hours: int = typer.Option(accounts.SESSION_HOURS, min=1, max=24, help="Session length in hours.")):
    """Sign in; the session token is kept for this OS user until it expires or you log out."""
    answer = backend().login(name, read_password(password_stdin, confirm=False), hours)
    out.print(f"signed in as {answer['user']} ({', '.join(answer['roles'])}) until {answer['expires']}")


@app.command()
def logout():
    """End this OS user's session."""
    name = backend().logout()
    out.print(f"signed out {name}" if name else "no session to end")


@app.command()
def whoami(json_out: bool = typer.Option(False, "--json")):
    """Who is signed in, with roles and certification."""
    info = backend().whoami()
    if json_out:
        return emit_json(info)
    cert = info["certification"]
    out.print(f"{info['user']} ({', '.join(info['roles'])}); certification: "
              f"{cert['course'] + ' until ' + cert['expires'] if cert else 'none current'}; "
              f"rules of behavior: {'accepted ' + info['rules_accepted'] if info['rules_accepted'] else 'not accepted'}")
    if info.get("policy"):
        out.print("deployment policy: " + "; ".join(info["policy"]))
    out.print(f"service: {info['server']}" if info.get("server") else f"note: {info['note']}")


@app.command("accept-rules")
def accept_rules(yes: bool = typer.Option(False, "--yes", help="Accept without the prompt (scripts).")):
    """Show the rules of behavior and record that you accept them (needed once before searching)."""
    out.print(accounts.RULES_OF_BEHAVIOR)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("no terminal to ask on", "pass --yes to accept")
        if not typer.confirm("Do you accept these rules?", default=False):
            raise InputError("rules not accepted", "you cannot search until you accept them")
    accepted = backend().accept_rules()
    out.print(f"accepted by {accepted['user']} at {accepted['at']}")


@user_app.command("add")
def user_add(name: str, role: list[str] = typer.Option(..., "--role", help="admin, analyst, agent, reviewer, auditor"),
             password_stdin: bool = typer.Option(False, "--password-stdin")):
    """Add an account with one or more roles."""
    backend().user_add(name, role, read_password(password_stdin, confirm=True))
    out.print(f"added {name} ({', '.join(sorted(set(role)))})")


@user_app.command("certify")
def user_certify(name: str, course: str = typer.Option(accounts.DEFAULT_COURSE, help="Course completed."),
                 completed: str = typer.Option(..., help="Completion date, YYYY-MM-DD."),
                 expires: Optional[str] = typer.Option(None, help="Expiry, YYYY-MM-DD (default: one year later).")):
    """Record a user's completed certification course."""
    c = backend().user_certify(name, course, completed, expires)
    out.print(f"certified {name}: {c['course']}, completed {c['completed']}, expires {c['expires']}")


@user_app.command("disable")
def user_disable(name: str):
    """Disable an account at once (its sessions end)."""
    backend().user_disable(name)
    out.print(f"disabled {name}")


@user_app.command("list")
def user_list(json_out: bool = typer.Option(False, "--json")):
    """List accounts with roles, state and certification."""
    users = backend().user_list()
    if json_out:
        return emit_json(users)
    table = Table("user", "roles", "state", "certification", "rules accepted")
    for u in users:
        cert = u["certification"]
        table.add_row(u["name"], ", ".join(u["roles"]), "disabled" if u["disabled"] else "active",
                      f"until {cert['expires']}" if cert else "none current", u["rules_accepted"] or "no")
    out.print(table)


@purposes_app.callback()
def purposes_list(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")):
    """List the authorized purposes (`purposes add NAME` adds one; admin)."""
    if ctx.invoked_subcommand:
        return
    names = backend().purposes()
    emit_json(names) if json_out else out.print("\n".join(names))


@purposes_app.command("add")
def purposes_add(name: str):
    """Authorize a new search purpose (admin)."""
    out.print(f"added purpose {backend().purpose_add(name)!r}")


@app.command("models")
def models_check(
        photos: Optional[Path] = typer.Option(None, help="Photos for the ONNX-vs-dlib check (default: the samples)."),
        check: bool = typer.Option(True, "--check/--no-check", help="Compare ONNX and dlib embeddings.")):
    """Check the model weights and the converted ONNX model against the model card; show that they agree."""
    local_only("models", "it checks the model files installed on this machine")
    for name, digest in models.verify_all().items():
        out.print(f"ok  {name}  {digest}")
    for name, entry in models.expected_converted().items():
        onnx_file = models.converted_path(name)
        out.print(f"ok  {onnx_file.name}  {models.sha256_file(onnx_file)}  (converted from {entry['from']})")
    if not check:
        return
    folder = photos or default_photos()
    if not folder.is_dir():
        out.print(f"agreement: not checked (no photos at {folder}; pass --photos)")
        return
    result = agreement.check(folder)
    if not result.ok:
        raise ModelError(f"ONNX and dlib embeddings disagree: {result.line()}",
                         "use --engine dlib and report the model card mismatch")
    out.print(f"ok  agreement: {result.line()}")
    found = agreement.check_detector(folder)
    if not found.ok:
        raise ModelError(f"ONNX and dlib CNN face detectors disagree: {found.line()}",
                         "use --engine dlib with --detector cnn and report the model card mismatch")
    out.print(f"ok  detector agreement: {found.line()}")


@gallery_app.command("create")
def gallery_create(
        name: str,
        authority: str = typer.Option(..., help="Legal authority for holding and searching these photos."),
        approved_by: str = typer.Option(..., help="Official who approved the gallery."),
        approved_on: str = typer.Option(..., help="Approval date, YYYY-MM-DD."),
        source: str = typer.Option(..., help="Where the photos come from."),
        retention_days: int = typer.Option(galleries.DEFAULT_RETENTION_DAYS, help="Retention period for searches."),
):
    """Create an authorized gallery (analyst). All four authorization fields are required."""
    created = backend().gallery_create(name, authority, approved_by, approved_on, source, retention_days)
    out.print(f"created gallery {created['name']!r} (authority: {created['authority']}; approved by "
              f"{created['approved_by']} on {created['approved_on']}; retention {created['retention_days']} days)")


@gallery_app.command("enroll")
def gallery_enroll(
        name: str,
        path: Path = typer.Argument(..., help="Folder of <subject>/<photos>, or a CSV manifest (path,subject,...)."),
        workers: Optional[int] = typer.Option(None, min=1, help="Worker processes (default: all cores; with "
                                                                "--ray: at most this many Ray workers)."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        on_server: bool = typer.Option(False, "--on-server", help="With --server: PATH is on the service's "
                                                                   "machine, under its --enroll-root."),
        ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|HOST:PORT",
                                          help="Analyze the photos on this Ray cluster (needs leadmatch's "
                                               "cluster extra); the record is still written here."),
        batch: Optional[int] = typer.Option(None, "--batch", min=1, help="With --ray: photos per Ray task and "
                                                                         "per transaction (default: up to 64)."),
):
    """Enroll photos into a gallery (analyst). Already-enrolled photos are skipped; refusals are listed."""
    if batch and not ray:
        raise InputError("--batch applies only with --ray", "add --ray auto|HOST:PORT, or drop --batch")
    if State.server:  # the photos are uploaded (or, with --on-server, named on the service's machine);
        # with --ray the service drives its own Ray cluster
        report = client.summary(backend().gallery_enroll(name, path, on_server, ray=ray, batch=batch))
        return emit_json(report.to_dict()) if json_out else print_enrollment(report)
    ws, user = session()
    try:
        with Progress(TextColumn("enrolling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True, disable=json_out) as bar:
            task = bar.add_task("enroll", total=None)
            report = enroll(ws, user, name, path, workers=workers, ray=ray, batch=batch,
                            progress=lambda done, total: bar.update(task, completed=done, total=total))
    except KeyboardInterrupt:
        err.print("interrupted — every photo written so far is kept; run the same command again to continue")
        raise typer.Exit(130)
    if json_out:
        return emit_json(report.to_dict())
    print_enrollment(report)


def print_enrollment(report) -> None:
    out.print(f"gallery {report.gallery!r}: {report.enrolled} enrolled, {report.skipped} skipped (already enrolled), "
              f"{len(report.refused)} refused, {report.subjects_added} new subjects")
    for refusal in report.refused:
        out.print(f"  refused  {refusal.path}: {refusal.reason} — {refusal.detail}")
    for worker in getattr(report, "workers_refused", []):  # Ray workers left out (their models differ)
        out.print(f"  refused worker  {worker}")
    if report.index_note:
        out.print(f"  index: {report.index_note}")


@gallery_app.command("list")
def gallery_list(json_out: bool = typer.Option(False, "--json")):
    """List galleries with their counts."""
    rows = backend().gallery_list()
    if json_out:
        return emit_json(rows)
    if not rows:
        out.print("no galleries yet — an analyst creates one with `leadmatch gallery create`")
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
    info = backend().gallery_show(name, refusals or json_out)
    if json_out:
        return emit_json(info)
    a = info["authorization"]
    out.print(f"gallery {info['name']}\n  authority:   {a['authority']}\n  approved by: {a['approved_by']} on "
              f"{a['approved_on']}\n  source:      {a['source']}\n  retention:   {a['retention_days']} days\n"
              f"  subjects {info['subjects']}, photos {info['photos']}, faces {info['faces']}, refused photos "
              f"{info['refused_photos']} {info['refused_by_reason'] or ''}\n  index: {info['index']['type']}, "
              f"{info['index']['bytes']:,} bytes at {info['index']['file']}")
    if info.get("calibration"):
        out.print(f"  {info['calibration']['text']}; {info['flagged_faces']} faces enrolled with a quality flag")
    for r in info.get("refusals", []):
        out.print(f"  refused  {r['source_path']}: {r['reason']} — {r['detail']}")


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


def print_build(result: dict) -> None:
    check = result["self_check"]
    out.print(f"built {result['factory']} over {result['faces']} faces in {result['build_seconds']} s; self-check: "
              f"recall {check['recall']} on {check['sample']} probes vs exact"
              + (f", nprobe {check['nprobe']}" if check.get("nprobe") else ""))


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
def index_status(gallery: str, json_out: bool = typer.Option(False, "--json")):
    """Type, size, bytes per face, training, faces added since, last self-check."""
    st = backend().index_status(gallery)
    if json_out:
        return emit_json(st)
    check = st["self_check"] or {}
    out.print(f"index of {st['gallery']}: {st['type']} (chosen by {st['chosen_by']}), {st['faces']} faces, "
              f"{st['bytes']:,} bytes ({st['bytes_per_face']} per face)\n  trained on {st['trained_on']} faces at "
              f"{st['built_at']}; {st['added_since_training']} added since; nprobe {st['nprobe']}\n  last self-check: "
              f"recall {check.get('recall')} on {check.get('sample')} probes at {check.get('at')}")
    if st["repaired"]:
        out.print(f"  repaired: {st['repaired']}")
    out.print(f"  rebuild recommended: {st['rebuild_recommended']}" if st["rebuild_recommended"]
              else "  no rebuild needed")


@bench_app.command("search")
def bench_search(faces: int = typer.Option(100_000, "--faces", min=1000, help="Synthetic gallery size."),
                 index: Optional[str] = typer.Option(None, "--index", help="FAISS factory string (default: by size)."),
                 queries: int = typer.Option(500, "--queries", min=10),
                 json_out: bool = typer.Option(False, "--json")):
    """Search speed on a synthetic dlib-shaped gallery: leadmatch's index vs exact FAISS vs numpy."""
    local_only("bench", "it measures this machine on synthetic data and touches no workspace")
    from leadmatch.gallery import index as indexes

    row = bench.search_run(faces, indexes.validate_factory(index) if index else None, queries)
    if json_out:
        return emit_json(row)
    for key, value in row.items():
        out.print(f"{key:>22}: {value}")


def parse_face(value: Optional[str], option: str = "--face"):
    """--face / --track: a number from 1, or 'largest'."""
    if value is None or value == "largest":
        return value
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{option} {value!r} is not a number", "give a number from 1, or largest") from None


@app.command()
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
        face: Optional[str] = typer.Option(None, "--face", help="Face number (1 = leftmost) or 'largest'."),
        track: Optional[str] = typer.Option(None, "--track", help="Video: track number or 'largest'."),
        every: float = typer.Option(video.DEFAULT_EVERY_S, "--every", help="Video: sample a frame every S seconds."),
        best_frames: int = typer.Option(video.DEFAULT_BEST_FRAMES, "--best-frames",
                                        help="Video: search with the track's best K frames."),
        fusion: str = typer.Option(probes.DEFAULT_FUSION, "--fusion",
                                   help="Several frames or stills: min (closest any comes), mean or best."),
        per_photo: bool = typer.Option(False, "--per-photo", help="One candidate per gallery photo, not per subject."),
        detector: str = typer.Option("hog", "--detector", help="hog (fast) or cnn (slower, finds more poses)."),
        json_out: bool = typer.Option(False, "--json", help="Print the search as JSON."),
):
    """Search a probe (photo, stills of one person, or video) against a gallery (agent): ranked investigative leads."""
    request = searching.SearchRequest(probe=probe[0], more_probes=tuple(probe[1:]), gallery=gallery, case=case,
                                      purpose=purpose, justification=justification,
                                      traditional_means=traditional_means, probe_source=probe_source, top_k=top_k,
                                      face=parse_face(face), track=parse_face(track, "--track"), every_s=every,
                                      best_frames=best_frames, fusion=fusion, per_photo=per_photo, detector=detector,
                                      original=original, enhancement=enhancement)
    result = backend().search(request)
    emit_json(result) if json_out else print_search(result)


@app.command()
def searches(case: Optional[str] = typer.Option(None, "--case"),
             status: Optional[str] = typer.Option(None, "--status", help=", ".join(casework.STATUSES)),
             json_out: bool = typer.Option(False, "--json")):
    """List searches (agents see their own; reviewers, auditors and admins see all)."""
    rows = backend().searches(case, status)
    if json_out:
        return emit_json(rows)
    table = Table("search", "case", "status", "agent", "gallery", "purpose", "candidates", "created (UTC)")
    for r in rows:
        table.add_row(r["search_id"], r["case"], r["status"], r["agent"], r["gallery"], r["purpose"] or "",
                      str(r["candidates"]), r["created_at"][:19])
    out.print(table if rows else "no searches match")


@app.command("show")
def show(search_id: str, json_out: bool = typer.Option(False, "--json")):
    """Show a search: status, candidates, dispositions, corroboration, closure and history."""
    result = backend().show(search_id)
    emit_json(result) if json_out else print_search(result, full=True)


@app.command()
def disposition(search_id: str, rank: int = typer.Option(..., "--rank"),
                decision: str = typer.Option(..., "--decision", help="possible-lead or excluded"),
                note: str = typer.Option(..., "--note", help="Why.")):
    """Record your decision on one candidate of your search (agent)."""
    r = backend().disposition(search_id, rank, decision, note)
    out.print(f"rank {r['rank']}: {r['decision']} — search {search_id} is {r['status']}"
              + (f" ({r['remaining']} candidates left)" if r["remaining"] else ""))


@app.command()
def corroborate(search_id: str, rank: int = typer.Option(..., "--rank"),
                evidence_type: str = typer.Option(..., "--evidence-type", help=", ".join(casework.EVIDENCE_TYPES)),
                evidence: str = typer.Option(..., "--evidence", help="What the evidence shows."),
                reference: str = typer.Option(..., "--reference", help="Report, record or exhibit number."),
                outcome: str = typer.Option(..., "--outcome", help="corroborated or refuted")):
    """Record independent evidence on a possible lead (reviewer, not the searching agent)."""
    r = backend().corroborate(search_id, rank, evidence_type, evidence, reference, outcome)
    out.print(f"rank {r['rank']}: {r['evidence_type']} evidence recorded, {r['outcome']}")


@app.command("close")
def close_search(search_id: str, outcome: str = typer.Option(..., "--outcome", help="identified or no-identification"),
                 rank: Optional[int] = typer.Option(None, "--rank", help="The corroborated candidate (identified)."),
                 note: str = typer.Option(..., "--note")):
    """Close a search after review (reviewer, not the searching agent)."""
    r = backend().close(search_id, outcome, note, rank)
    out.print(f"search {search_id} is {r['status']}")


@audit_app.command("verify")
def audit_verify(expect_head: Optional[str] = typer.Option(None, "--expect-head",
                                                           help="Head hash recorded at an earlier verification."),
                 checkpoint: Optional[Path] = typer.Option(None, "--checkpoint",
                                                           help="A file written by `audit checkpoint`."),
                 json_out: bool = typer.Option(False, "--json")):
    """Walk the keyed hash chain; report the first bad entry. Exit 6 if the chain is broken."""
    result = backend().audit_verify(expect_head, checkpoint)
    if json_out:
        emit_json(result.__dict__)
    elif result.ok:
        out.print(f"audit chain intact: {result.entries} entries, head {result.head}"
                  + (f"; checkpoint entry {result.checkpoint} unchanged" if result.checkpoint else ""))
    else:
        err.print(f"error: {result.describe()} — restore leadmatch.db from a backup and find out who changed it")
    if not result.ok:
        sys.exit(6)


@audit_app.command("checkpoint")
def audit_checkpoint(out_file: Optional[Path] = typer.Option(None, "--out", help="Write the checkpoint to FILE.")):
    """Export the signed head of the trail (auditor) for filing outside the system; `verify --checkpoint` uses it."""
    made = backend().audit_checkpoint(out_file)
    if out_file is None:
        return emit_json(made)
    out.print(f"checkpoint of entry {made['entry']} (hash {made['hash']}, {made['at']}) written to {out_file}; "
              "file it outside this system")


@audit_app.command("log")
def audit_log(case: Optional[str] = typer.Option(None, "--case"), user: Optional[str] = typer.Option(None, "--user"),
              since: Optional[str] = typer.Option(None, "--since", help="YYYY-MM-DD"),
              limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Newest N entries."),
              json_out: bool = typer.Option(False, "--json")):
    """Audit entries, oldest first."""
    rows = backend().audit_log(case, user, since, limit)
    if json_out:
        return emit_json(rows)
    for e in rows:
        target = " ".join(x for x in (e["case_number"] and f"case={e['case_number']}",
                                      e["search_id"] and f"search={e['search_id']}") if x)
        out.print(f"{e['id']:>6} {e['at'][:19]} {e['actor']:<12} {e['action']:<22} {e['outcome']:<8} {target} "
                  f"{e['reason'] or ''}".rstrip())


@audit_app.command("report")
def audit_report(start: str = typer.Option(..., "--from", help="YYYY-MM-DD"),
                 end: str = typer.Option(..., "--to", help="YYYY-MM-DD (inclusive)"),
                 fmt: str = typer.Option("json", "--format", help="csv or json"),
                 stale_days: int = typer.Option(30, "--stale-days", help="Open searches older than this are listed.")):
    """Supervisors' report: searches per user, refusals by reason, closures, stale open searches."""
    if fmt not in ("csv", "json"):
        raise InputError(f"--format {fmt!r} is not supported", "use csv or json")
    data = backend().audit_report(start, end, stale_days)
    sys.stdout.write(auditing.report_csv(data)) if fmt == "csv" else emit_json(data)


@app.command()
def purge(expired: bool = typer.Option(False, "--expired", help="Purge closed searches past retention.")):
    """Delete probe photos and details of closed searches past their gallery's retention (admin)."""
    if not expired:
        raise InputError("purge needs --expired", "run `leadmatch purge --expired`")
    r = backend().purge_expired()
    out.print(f"purged {len(r['purged_searches'])} searches, removed {r['probe_files_removed']} probe photos"
              + (f": {', '.join(r['purged_searches'])}" if r["purged_searches"] else ""))
    if r.get("purged_cases"):
        out.print(f"purged the media of {len(r['purged_cases'])} cases ({r['media_files_removed']} files): "
                  f"{', '.join(r['purged_cases'])}")


def print_probe(console: Console, result: dict) -> None:
    """The probe line: which photo, stills or video frames were searched, and their quality."""
    probe = result["probe"]
    if probe.get("kind", "photo") == "photo":
        console.print(f"probe {probe['name']} ({result['probe_source']}; face {probe['face_index']} of "
                      f"{probe['faces_in_photo']}, {probe['quality'].get('size_px')} px, eyes "
                      f"{probe['quality'].get('eye_distance_px')} px, sharpness {probe['quality'].get('sharpness')})")
        return
    console.print(f"probe: {probe['description']} ({result['probe_source']}; "
                  f"{result['details'].get('fusion', 'min')} distance over {len(probe['frames'])} faces)")
    person = result["details"].get("person")
    if person:  # a case person: every appearance is provenance, not only the faces searched with
        console.print(f"  case person {person['label']} of case {person['case']}: "
                      + "; ".join(f"face {a['face_id']} {a['file']}" + (f" at {a['time_s']:.1f} s" if a["time_s"]
                                                                         is not None else "")
                                  for a in person["appearances"]))
    enhancement = result["details"].get("enhancement")
    if enhancement:
        console.print(f"  enhanced: {enhancement['description']}; original {enhancement['original']['name']} "
                      f"sha256 {enhancement['original']['sha256']}")
    for f in probe["frames"]:
        where = f"{f['time_s']:.2f} s" if "time_s" in f else f["source"]
        where = f"{f['source']} at {where}" if person and "time_s" in f else where
        q = f["quality"]
        console.print(f"  {where}: box {f['box']}, {q.get('size_px')} px, eyes {q.get('eye_distance_px')} px, "
                      f"sharpness {q.get('sharpness')}, sha256 {f['sha256'][:16]}…")


def print_search(result: dict, full: bool = False) -> None:
    """The candidate table, with the lead-only notice above, on every row, and below."""
    wide = Console(highlight=False, width=max(out.width, 180))
    wide.print(f"[bold]{leads.NOTICE}[/bold]")
    wide.print(f"search {result['search_id']}  status {result['status']}  case {result['case']}  purpose "
               f"{result['purpose']}  gallery {result['gallery']}  agent {result['agent']}")
    if result.get("purged_at"):
        wide.print(f"details purged under the retention rules on {result['purged_at'][:10]}")
    else:
        print_probe(wide, result)
    for flag in result["flags"]:
        wide.print(f"[yellow]flag: {flag}[/yellow]")
    if result.get("details", {}).get("index_repaired"):
        wide.print(f"note: {result['details']['index_repaired']}")
    if result.get("calibration"):
        wide.print(result["calibration"]["text"])
    subjects = result.get("candidate_list") == "subject"
    table = Table("rank", "subject", "distance", "est. false alarms", f"< {result['threshold']:.2f}",
                  *(["other photos: distances"] if subjects else []), "disposition", "label",
                  title="one candidate per subject" if subjects else "one candidate per gallery photo")
    table.columns[-1].no_wrap = True  # the lead-only label is read whole, on every row
    for c in result["candidates"]:
        decided = c["disposition"]["decision"] if c.get("disposition") else "—"
        if c.get("corroboration"):
            decided += " / " + ", ".join(e["outcome"] for e in c["corroboration"])
        also = [] if not subjects else [
            (f"{c['also_matched']}: " + ", ".join(f"{f['distance']:.3f}" for f in c["faces"][1:3])
             + (" …" if c["also_matched"] > 2 else "")) if c.get("also_matched") else "—"]
        subject = c["subject"] + ("" if not c.get("gallery_flags") else " (gallery photo flagged)")
        rate = (c.get("false_alarm_text") or "—").removeprefix("estimated false-alarm rate at this distance: ")
        table.add_row(str(c["rank"]), subject, f"{c['distance']:.4f}", rate,
                      "yes" if c["within_threshold"] else "no", *also, decided, c["label"])
    wide.print(table)
    if result["candidates"]:
        wide.print("est. false alarms: estimated false-alarm rate at this distance — the share of searches for "
                   "someone not in this gallery whose rank-1 is this close")
    for c in result["candidates"]:
        for flag in c.get("gallery_flags") or []:
            wide.print(f"[yellow]rank {c['rank']} gallery photo flag: {flag}[/yellow]")
        for seen in c.get("seen_before") or []:  # shown, never suppressed: this candidate still needs a decision
            wide.print(f"rank {c['rank']} seen before in this case: {seen['decision']} by {seen['decided_by']} "
                       f"in {seen['search_id']} ({seen['decided_at'][:10]}): {seen['note']}")
    if full and result.get("closure"):
        cl = result["closure"]
        wide.print(f"closed {cl['status']} by {cl['closed_by']} at {cl['closed_at'][:19]}"
                   + (f", rank {cl['rank']}" if cl["rank"] else "") + f": {cl['note']}")
    wide.print(f"[bold]{leads.NOTICE}[/bold]")


@app.command()
def evaluate(path: Path = typer.Argument(..., help="Folder of <subject>/<photos>, or a CSV manifest (path,subject)."),
             enroll_first: int = typer.Option(1, "--enroll-first", help="Photos per subject put in the gallery."),
             holdout: float = typer.Option(0.2, "--holdout-subjects", help="Fraction of subjects kept out (non-mated)."),
             labels: Optional[Path] = typer.Option(None, "--labels", help="CSV: subject,<attribute>,… for per-group rates."),
             seed: int = typer.Option(0, "--seed", help="Which subjects are held out (deterministic per seed)."),
             plot: Optional[Path] = typer.Option(None, "--plot", help="Write the DET curve to this PNG."),
             face: Optional[str] = typer.Option(None, "--face", help="Probes with several faces: search the "
                                                "largest or the central one (default: refuse them)."),
             workers: Optional[int] = typer.Option(None, "--workers", help="Enrollment worker processes (default: all cores)."),
             json_out: bool = typer.Option(False, "--json")):
    """Measure accuracy on your own labeled photos in a throw-away workspace: rank-k (refusals counted as misses),
    FNIR/FPIR, the gallery-calibrated threshold's measured FPIR."""
    if State.server:  # PATH names labeled photos on the service's machine, under its --enroll-root
        if labels or plot:
            raise InputError("--labels and --plot do not go through --server yet", "run evaluate in direct mode")
        result = backend().evaluate(path, enroll_first, holdout, seed, face)
        return emit_json(result) if json_out else print_evaluation(result)
    with Progress(TextColumn("searching probes"), BarColumn(), MofNCompleteColumn(), console=err, transient=True,
                  disable=json_out) as bar:
        task = bar.add_task("evaluate", total=None)
        result = evaluation.evaluate(path, enroll_first, holdout, labels, seed,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total),
                                     face=face, workers=workers)
    if plot:
        evaluation.plot_det(result, plot)
    if json_out:
        return emit_json({k: v for k, v in result.items() if k != "det"} | {"det": result["det"]})
    print_evaluation(result)
    if plot:
        out.print(f"DET curve written to {plot}")


def print_evaluation(r: dict) -> None:
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}%"

    g = r["gallery"]
    out.print(f"gallery: {g['enrolled']} of {g['photos_offered']} photos enrolled ({r['enroll_first']} per subject), "
              f"{g['refused']} refused ({pct(g['refusal_rate'])}), {g['flagged']} flagged low quality; "
              f"held-out subjects: {len(r['holdout_subjects'])}"
              + (f" ({', '.join(r['holdout_subjects'])})" if len(r["holdout_subjects"]) <= 5 else ""))
    out.print(f"probes: {r['mated_probes']} mated ({r['mated_refused']} refused or without a gallery photo), "
              f"{r['nonmated_probes']} non-mated searched ({r['nonmated_refused']} refused), "
              f"{r['probes_flagged_low_quality']} flagged low quality")
    for stage, reasons in r["refusals_by_reason"].items():
        out.print(f"  refused at {stage}: " + ", ".join(f"{reason} {n}" for reason, n in reasons.items()))
    if len(r["refused"]) <= 20:
        for x in r["refused"]:
            out.print(f"  refused  {x['path']}: {x['reason']} — {x['detail']}")
    accepted = r["mated_accepted"]
    for k in (1, 5, 20):
        out.print(f"rank-{k} hit rate, by subject: {pct(r[f'rank{k}'])} ({r[f'rank{k}_hits']} of {r['mated_probes']}, "
                  f"refusals counted as misses); accepted only {pct(r[f'rank{k}_accepted'])} of {accepted}; by "
                  f"photo {pct(r[f'rank{k}_by_photo'])}")
    c = r.get("calibrated_threshold")
    if c:
        out.print(f"calibrated: {c['text']}")
        out.print(f"  at {c['threshold']}: FPIR measured {pct(c['measured_fpir'])} ({c['measured_alarms']} of "
                  f"{c['nonmated_probes']} non-mated), estimated {pct(c['estimated_fpir'])}; FNIR {pct(c['fnir'])} "
                  f"({c['fnir_misses']} of {r['mated_probes']})")
    for target, v in r["fnir_at_fpir"].items():
        if v["fnir"] is None:
            out.print(f"FNIR at FPIR {target}: not measurable — {v['note']}")
        else:
            out.print(f"FNIR at FPIR {target}: {pct(v['fnir'])} ({v['misses']} of {r['mated_probes']} missed) "
                      f"at threshold {v['threshold']}")
    d = r["default_threshold"]
    out.print(f"dlib's 1:1 threshold {d['threshold']}: FNIR {pct(d['fnir'])} ({d['fnir_misses']} of "
              f"{r['mated_probes']}), FPIR {pct(d['fpir'])} ({d['fpir_alarms']} of {r['nonmated_probes']})")
    for attribute, groups in r.get("groups", {}).items():
        for value, grp in groups.items():
            out.print(f"  {attribute}={value}: rank-1 {pct(grp['rank1'])} of {grp['mated_probes']} mated; "
                      f"FNIR {pct(grp['default_threshold']['fnir'])}, FPIR {pct(grp['default_threshold']['fpir'])} "
                      f"of {grp['nonmated_probes']} non-mated at {d['threshold']}")
    out.print("These rates describe these photos only. Every search result remains an investigative lead.")


@app.command()
def report(search_id: str, out_file: Optional[Path] = typer.Option(None, "--out", help="Write to FILE.html.")):
    """The lead report of a search: one self-contained, printable HTML file."""
    target = out_file or Path(f"lead-report-{search_id}.html")
    backend().report(search_id, target)
    out.print(f"wrote {target}")


@app.command()
def serve(host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless told otherwise)."),
          port: int = typer.Option(8765, "--port"),
          certfile: Optional[Path] = typer.Option(None, "--certfile", help="TLS certificate (PEM)."),
          keyfile: Optional[Path] = typer.Option(None, "--keyfile", help="TLS private key (PEM)."),
          insecure_http: bool = typer.Option(False, "--insecure-http",
                                             help="Allow plain HTTP on a non-loopback address (behind a TLS proxy)."),
          enroll_root: Optional[Path] = typer.Option(None, "--enroll-root",
                                                     help="Folder under which analysts may name server-side paths."),
          ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|HOST:PORT",
                                            help="The Ray cluster `gallery enroll --ray` runs on (the token comes "
                                                 "from this account's RAY_AUTH_TOKEN* or ~/.ray/auth_token).")):
    """The leadmatch service: owns the workspace; serves the web app and the JSON API (/api/v1)."""
    local_only("serve", "it is the service itself",
               "run it as the service's account on the service's machine, without --server")
    from leadmatch.web import preflight as service
    from leadmatch import web

    options = service.ServeOptions(host, port, certfile, keyfile, insecure_http, enroll_root, ray)
    service.check_options(options)
    service.check_workspace(State.home)
    service.secure_new_files()
    scheme = "https" if options.tls else "http"
    out.print(f"leadmatch service on {scheme}://{host}:{port}/ (workspace {State.home.resolve()}"
              f"{f'; enrollments may run on Ray {ray}' if ray else ''}); Ctrl-C stops it")
    web.serve(State.home, options)


@app.command()
def demo(photos: Optional[Path] = typer.Option(None, "--photos", help="Folder with gallery/<subject>/… and probes/…"),
         keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the demo workspace in this folder.")):
    """The whole story on sample photos, in a throw-away workspace: accounts, gallery, search, review, audit."""
    local_only("demo", "it runs in a throw-away workspace of its own on this machine")
    photos = photos or default_photos()
    with tempfile.TemporaryDirectory(prefix="leadmatch-demo-") as temp:
        home = keep or Path(temp)
        ws, _ = init_workspace(home)
        out.print(f"demo workspace: {home}  photos: {photos}")
        run_demo(ws, photos, say=out.print, show=print_search)


def main() -> None:
    """Entry point: run the app, turning every leadmatch error into one line and an exit code."""
    try:
        app()
    except LeadmatchError as exc:
        if isinstance(exc, FaceChoiceNeeded):
            err.print(f"error: {exc.message} — {exc.hint}:")
            for f in exc.faces:
                if "track" in f:
                    b = f["best_frame"]
                    err.print(f"  track {f['track']}: {f['start_s']:.1f}–{f['end_s']:.1f} s, {f['frames_seen']} frames; "
                              f"best at {b['time_s']:.1f} s: {b['size_px']} px wide, eyes {b['eye_distance_px']} px, "
                              f"sharpness {b['sharpness']}" + ("" if f["usable"] else f" — not searchable: {f['why_not']}"))
                    continue
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
