"""The command line: one typer app whose command groups live in modules of their own (sessions,
people, galleries, searches, oversight, utilities); each parses, calls the backend and prints.
No rule lives here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click
import typer

from leadmatch.cli import backends as client
from leadmatch.cli import case, galleries, media, oversight, people, policy, searches, sessions, utilities
from leadmatch.cli.context import State
import leadmatch
from leadmatch.cli.render import err, out
from leadmatch.errors import DiskFull, FaceChoiceNeeded, LeadmatchError
from leadmatch.record.store import is_disk_full
from leadmatch.record.workspace import default_home
from leadmatch.safetext import shown

app = typer.Typer(help="leadmatch: face search for investigative leads. Every candidate is a lead, never an "
                       "identification.", no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False)
app.add_typer(sessions.commands)
app.add_typer(people.user_app, name="user")
app.add_typer(people.purposes_app, name="purposes")
app.add_typer(galleries.gallery_app, name="gallery")
app.add_typer(galleries.index_app, name="index")
app.add_typer(searches.commands)
app.add_typer(oversight.audit_app, name="audit")
app.add_typer(oversight.commands)
app.add_typer(utilities.commands)
app.add_typer(utilities.bench_app, name="bench")
app.add_typer(media.app, name="media")
app.add_typer(case.app, name="case")
app.add_typer(policy.app, name="policy")


def print_version(asked: bool) -> None:
    """--version: the version of leadmatch, then exit."""
    if asked:
        out.print(f"leadmatch {leadmatch.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", is_eager=True, callback=print_version,
                                              help="Print leadmatch's version and exit."),
                 home: Optional[Path] = typer.Option(
        None, "--home", envvar="LEADMATCH_HOME", help="Workspace folder (database, indexes/, photos/)."),
        server: Optional[str] = typer.Option(None, "--server", envvar=client.SERVER_ENV,
                                             help="URL of a leadmatch service: commands go through its API."),
        engine: Optional[str] = typer.Option(None, "--engine", envvar="LEADMATCH_ENGINE",
                                             help="Descriptor + CNN detector: onnx (default) or dlib; same numbers.")):
    State.home = home or default_home()
    State.server = server or None
    from leadmatch.biometrics import faces  # here, not at the top: commands without biometrics start faster

    faces.use_engine(engine)


def usage_line(exc: click.exceptions.UsageError) -> str:
    """click's usage error (a bad option value, a missing argument, an unknown command) as leadmatch's one
    line: what is wrong — where the command's help is."""
    what = exc.format_message().strip().rstrip(".")
    names, ctx = [], exc.ctx
    while ctx is not None and ctx.parent is not None:  # the subcommands; the root is "leadmatch" however run
        names.insert(0, ctx.info_name)
        ctx = ctx.parent
    return f"error: {shown(what[:1].lower() + what[1:])} — see {' '.join(['leadmatch', *names])} --help"


def main() -> None:
    """Entry point: run the app, turning every leadmatch error, and click's usage errors, into one line and an
    exit code (click's own layout is several lines: usage, a hint, the error)."""
    try:
        code = app(standalone_mode=False)
        if type(code) is int and code:  # typer.Exit(n) (^C: 130) comes back as a code; commands return None
            sys.exit(code)
    except click.exceptions.UsageError as exc:
        err.print(usage_line(exc))
        sys.exit(exc.exit_code)
    except click.exceptions.ClickException as exc:
        err.print(f"error: {shown(exc.format_message())}")
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # a prompt whose input ended (^D); typer turns ^C into exit code 130
        err.print("error: the input ended before the question was answered — run it again and answer it")
        sys.exit(1)
    except LeadmatchError as exc:
        if isinstance(exc, FaceChoiceNeeded):
            err.print(f"error: {shown(exc.message)} — {shown(exc.hint)}:")
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
            err.print(f"error: {shown(exc)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the last guard: no traceback reaches a user
        if os.environ.get("LEADMATCH_DEBUG"):
            raise
        if is_disk_full(exc):  # every write is a transaction or a temp file renamed: nothing half written
            full = DiskFull()
            err.print(f"error: {full}")
            sys.exit(full.exit_code)
        err.print(f"internal error: {type(exc).__name__}: {shown(exc)} — please report it; "
                  "set LEADMATCH_DEBUG=1 to see the traceback")
        sys.exit(70)
