"""`leadmatch policy …`: the deployment policy (shown to everyone, set by an admin). Parse, call, print."""

from __future__ import annotations

from typing import Optional

import typer

from leadmatch.cli.context import backend
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import emit_json, out
from leadmatch.errors import InputError

app = typer.Typer(help="Deployment policy: video probes, case media, candidate list size, required course, "
                       "enhanced probes (set: admin, audited).", no_args_is_help=True)


def _switch(value: Optional[str], option: str) -> Optional[bool]:
    if value is None:
        return None
    if value.lower() in ("on", "true", "yes"):
        return True
    if value.lower() in ("off", "false", "no"):
        return False
    raise InputError(f"{option} {value!r} is not on or off", f"give {option} on or {option} off")


@app.command("show")
def show(json_out: JsonOption = False):
    """The policy in force."""
    current = backend().policy_show()
    if json_out:
        return emit_json(current)
    out.print("deployment policy: " + "; ".join(current["lines"]))


@app.command("set")
def set_policy(video_probes: Optional[str] = typer.Option(None, "--video-probes", help="on or off"),
               case_media: Optional[str] = typer.Option(None, "--case-media", help="on or off"),
               enhanced_probes: Optional[str] = typer.Option(None, "--enhanced-probes", help="on or off"),
               min_candidates: Optional[int] = typer.Option(None, "--min-candidates", help="2 to 50"),
               max_candidates: Optional[int] = typer.Option(None, "--max-candidates", help="2 to 50"),
               course: Optional[str] = typer.Option(None, "--course", help="Required certification course name.")):
    """Change the policy (admin; audited with before and after)."""
    changes = {key: value for key, value in (
        ("video_probes", _switch(video_probes, "--video-probes")), ("case_media", _switch(case_media, "--case-media")),
        ("enhanced_probes", _switch(enhanced_probes, "--enhanced-probes")), ("min_candidates", min_candidates),
        ("max_candidates", max_candidates), ("required_course", course)) if value is not None}
    if not changes:
        raise InputError("nothing to change", "give at least one option, e.g. --video-probes off")
    updated = backend().policy_set(changes)
    out.print("deployment policy now: " + "; ".join(updated["lines"]))
