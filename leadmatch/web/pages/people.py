"""The admin's people pages: the accounts with their roles, state and certification; a new account; one
account's roles (grant, revoke), certification and disabling. No rule lives here: each route calls
`operations.people`, whose gates refuse and audit; a refused form comes back filled in (`wording`)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.errors import InputError, NotFound
from leadmatch.governance import accounts
from leadmatch.operations import people
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser
from leadmatch.web.responses import attempt, page
from leadmatch.web.wording import Field

router = APIRouter()

USER_FIELDS = {
    "name": Field("User name", (r"user name", r"user '[^']*' already exists")),
    "roles": Field("Roles", (r"--role", r"no role given", r"unknown role")),
    "password": Field("Password", (r"password",)),
}
ROLE_FIELDS = {"role": Field("Role", (r"\brole\b",))}
CERTIFY_FIELDS = {
    "course": Field("Course", (r"--course",)),
    "completed": Field("Completed on", (r"--completed", r"certification dates")),
    "expires": Field("Expires on", (r"--expires", r"certification dates")),
}


@router.get("/people", response_class=HTMLResponse)
def people_page(actor: PageUser, ws: OpenWorkspace, request: Request):
    """Admin: every account, and the form for a new one."""
    return page(request, "people", users=people.list_users(ws, actor), roles=accounts.ROLES, form={}, marked=set())


@router.post("/people", response_class=HTMLResponse)
def people_add(actor: FormUser, ws: OpenWorkspace, request: Request, name: str = Form(""),
               password: str = Form(""), password_again: str = Form(""), roles: list[str] = Form([], alias="role")):
    """Admin: a new account with the roles ticked (none is ticked to begin with); then its page."""
    form = {"name": name, "roles": roles}  # never the password

    def add():
        if password != password_again:
            raise InputError("the two passwords differ", "type the same password twice")
        added = people.add_user(ws, actor, name.strip(), roles, password)
        return RedirectResponse(f"/people/{added['user']}", status_code=303)

    return attempt(request, "people", USER_FIELDS, form, add,
                   lambda: {"users": people.list_users(ws, actor), "roles": accounts.ROLES})


@router.get("/people/{name}", response_class=HTMLResponse)
def person_page(actor: PageUser, ws: OpenWorkspace, request: Request, name: str):
    """Admin: one account — its roles with the grant and revoke forms, its certification, disabling."""
    return page(request, "person", **_person(ws, actor, name), form={}, marked=set(), failed="")


@router.post("/people/{name}/roles", response_class=HTMLResponse)
def role_grant(actor: FormUser, ws: OpenWorkspace, request: Request, name: str, role: str = Form("")):
    return _on_person(request, ws, actor, name, "grant", ROLE_FIELDS, {"role": role},
                      lambda: people.grant_role(ws, actor, name, _chosen(role)))


@router.post("/people/{name}/roles/revoke", response_class=HTMLResponse)
def role_revoke(actor: FormUser, ws: OpenWorkspace, request: Request, name: str, role: str = Form("")):
    return _on_person(request, ws, actor, name, "revoke", ROLE_FIELDS, {"revoke_role": role},
                      lambda: people.revoke_role(ws, actor, name, _chosen(role)))


@router.post("/people/{name}/certifications", response_class=HTMLResponse)
def certify(actor: FormUser, ws: OpenWorkspace, request: Request, name: str, course: str = Form(""),
            completed: str = Form(""), expires: str = Form("")):
    """Admin: a completed course (expiry empty: one year after completion)."""
    form = {"course": course, "completed": completed, "expires": expires}
    return _on_person(request, ws, actor, name, "certify", CERTIFY_FIELDS, form,
                      lambda: people.certify(ws, actor, name, course, completed, expires.strip() or None))


@router.post("/people/{name}/disable", response_class=HTMLResponse)
def disable(actor: FormUser, ws: OpenWorkspace, request: Request, name: str):
    """Admin: disable the account at once (the page asked first); its sessions end."""
    return _on_person(request, ws, actor, name, "disable", {}, {}, lambda: people.disable(ws, actor, name))


def _chosen(role: str) -> str:
    if not role:
        raise InputError("no role was chosen", "choose the role")
    return role


def _on_person(request: Request, ws, actor, name: str, which: str, fields: dict, form: dict, act):
    """Do `act` and come back to the account's page; refused, that page again with `which` form filled in."""
    def done():
        act()
        return RedirectResponse(f"/people/{name}", status_code=303)

    return attempt(request, "person", fields, form, done, lambda: {**_person(ws, actor, name), "failed": which})


def _person(ws, actor, name: str) -> dict:
    """The account `name` as the list shows it, and the roles it could be granted."""
    found = [u for u in people.list_users(ws, actor) if u["name"] == name]
    if not found:
        raise NotFound(f"no user named {name!r}", "choose one from the list of people")
    return {"person": found[0], "grantable": [r for r in accounts.ROLES if r not in found[0]["roles"]],
            "roles": accounts.ROLES}
