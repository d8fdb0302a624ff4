"""Signing in and out, who am I, the rules of behavior, and creating the workspace."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from leadmatch.cli.context import State, backend, local_only, read_password
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import emit_json, out, when
from leadmatch.errors import InputError
from leadmatch.gallery import galleries as galleries
from leadmatch.governance import accounts, purposes
from leadmatch.record.workspace import init as init_workspace

commands = typer.Typer()  # top-level commands, added to the app as they are


@commands.command()
def init(admin: Optional[str] = typer.Option(None, "--admin", help="Create the first admin account."),
         password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
         model: Optional[str] = typer.Option(None, "--model", help="Face model of new galleries: dlib (the "
                                                                   "default) or dlib+faceres.")):
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
    if model:
        from leadmatch.gallery import space as spaces

        chosen = spaces.set_default_model(ws.conn, admin or "workspace-owner", model)
        out.print(f"new galleries use the {chosen} face model unless `gallery create --model` says otherwise")


@commands.command()
def login(name: str, password_stdin: bool = typer.Option(False, "--password-stdin"),
          hours: int = typer.Option(accounts.SESSION_HOURS, min=1, max=24, help="Session length in hours.")):
    """Sign in; the session token is kept for this OS user until it expires or you log out."""
    answer = backend().login(name, read_password(password_stdin, confirm=False), hours)
    out.print(f"signed in as {answer['user']} ({', '.join(answer['roles'])}) until {when(answer['expires'])}")


@commands.command()
def logout():
    """End this OS user's session."""
    name = backend().logout()
    out.print(f"signed out {name}" if name else "no session to end")


@commands.command()
def whoami(json_out: JsonOption = False):
    """Who is signed in, with roles and certification."""
    info = backend().whoami()
    if json_out:
        return emit_json(info)
    cert = info["certification"]
    out.print(f"{info['user']} ({', '.join(info['roles'])}); certification: "
              f"{cert['course'] + ' until ' + cert['expires'] if cert else 'none current'}; "
              f"rules of behavior: {'accepted ' + when(info['rules_accepted']) if info['rules_accepted'] else 'not accepted'}")
    if info.get("policy"):
        out.print("deployment policy: " + "; ".join(info["policy"]))
    out.print(f"service: {info['server']}" if info.get("server") else f"note: {info['note']}")


@commands.command("accept-rules")
def accept_rules(yes: bool = typer.Option(False, "--yes", help="Accept without the prompt (scripts).")):
    """Show the rules of behavior and record that you accept them (needed once before searching)."""
    out.print(accounts.RULES_OF_BEHAVIOR)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("no terminal to ask on", "pass --yes to accept")
        if not typer.confirm("Do you accept these rules?", default=False):
            raise InputError("rules not accepted", "you cannot search until you accept them")
    accepted = backend().accept_rules()
    out.print(f"accepted by {accepted['user']} at {when(accepted['at'])}")
