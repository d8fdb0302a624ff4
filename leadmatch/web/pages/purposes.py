"""The authorized purposes a search may name: the list, the retired ones, and (admin) a new one or a
retirement. The library refuses and audits anyone else; a refused form comes back filled in."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.operations import people
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser
from leadmatch.web.responses import attempt, page
from leadmatch.web.wording import Field

router = APIRouter()

FIELDS = {"name": Field("New purpose", (r"purpose",))}


@router.get("/purposes", response_class=HTMLResponse)
def purposes_page(actor: PageUser, ws: OpenWorkspace, request: Request, added: str = "", retired: str = ""):
    return page(request, "purposes", **_lists(ws), form={}, marked=set(), added=added, just_retired=retired)


def _lists(ws) -> dict:
    return {"purposes": people.list_purposes(ws), "retired": people.retired_purposes(ws)}


@router.post("/purposes", response_class=HTMLResponse)
def purpose_add(actor: FormUser, ws: OpenWorkspace, request: Request, name: str = Form("")):
    """Admin: authorize a new purpose (an offense category); then the list."""
    def add():
        added = people.add_purpose(ws, actor, name)["purpose"]
        return RedirectResponse(f"/purposes?added={added}", status_code=303)

    return attempt(request, "purposes", FIELDS, {"name": name}, add, lambda: {**_lists(ws), "added": ""})


@router.post("/purposes/{name}/retire", response_class=HTMLResponse)
def purpose_retire(actor: FormUser, ws: OpenWorkspace, request: Request, name: str):
    """Admin: retire a purpose (after the page's confirmation); then the list."""
    def retire():
        done = people.retire_purpose(ws, actor, name)
        return RedirectResponse(f"/purposes?retired={done['name']}", status_code=303)

    return attempt(request, "purposes", FIELDS, {}, retire, lambda: {**_lists(ws), "added": ""})
