"""Accounts (admin) and the authorized purposes."""

from __future__ import annotations

from typing import Optional

import typer

from leadmatch.cli.context import backend, read_password
from leadmatch.cli.options import JsonOption
from leadmatch.cli.render import fitting_table, emit_json, out, when
from leadmatch.gallery import galleries as galleries
from leadmatch.governance import accounts

purposes_app = typer.Typer(help="Authorized search purposes.", invoke_without_command=True)

user_app = typer.Typer(help="Accounts (admin): add, grant, revoke, certify, disable, list.", no_args_is_help=True)


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


@user_app.command("grant")
def user_grant(name: str, role: str = typer.Option(..., "--role", help="admin, analyst, agent, reviewer, auditor")):
    """Give an account another role (admin; audited)."""
    result = backend().user_grant(name, role)
    out.print(f"granted {role} to {name}; roles now {', '.join(result['roles'])}")


@user_app.command("revoke")
def user_revoke(name: str, role: str = typer.Option(..., "--role", help="The role to take away.")):
    """Take a role from an account at once (admin; audited). Never its last role, nor your own admin role."""
    result = backend().user_revoke(name, role)
    out.print(f"revoked {role} from {name}; roles now {', '.join(result['roles'])}")


@user_app.command("disable")
def user_disable(name: str):
    """Disable an account at once (its sessions end)."""
    backend().user_disable(name)
    out.print(f"disabled {name}")


@user_app.command("list")
def user_list(json_out: JsonOption = False):
    """List accounts with roles, state and certification."""
    users = backend().user_list()
    if json_out:
        return emit_json(users)
    table = fitting_table("user", "roles", "state", "certification", "rules accepted")
    for u in users:
        cert = u["certification"]
        table.add_row(u["name"], ", ".join(u["roles"]), "disabled" if u["disabled"] else "active",
                      f"until {cert['expires']}" if cert else "none current",
                      when(u["rules_accepted"]) if u["rules_accepted"] else "no")
    out.print(table)


@purposes_app.callback()
def purposes_list(ctx: typer.Context, json_out: JsonOption = False,
                  retired: bool = typer.Option(False, "--retired", help="List the retired purposes instead.")):
    """List the authorized purposes (`purposes add NAME` adds one, `purposes retire NAME` retires one; admin)."""
    if ctx.invoked_subcommand:
        return
    if retired:
        gone = backend().retired_purposes()
        if json_out:
            return emit_json(gone)
        return out.print("\n".join(f"{p['name']} (retired {when(p['retired_at'])} by {p['retired_by']})"
                                   for p in gone) or "no purpose has been retired")
    names = backend().purposes()
    emit_json(names) if json_out else out.print("\n".join(names))


@purposes_app.command("add")
def purposes_add(name: str):
    """Authorize a new search purpose (admin)."""
    out.print(f"added purpose {backend().purpose_add(name)!r}")


@purposes_app.command("retire")
def purposes_retire(name: str):
    """Retire a search purpose (admin): no new search may name it; the searches that did keep it."""
    done = backend().purpose_retire(name)
    out.print(f"retired purpose {done['name']!r}: new searches can no longer name it")
