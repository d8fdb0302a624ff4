"""The browser's case pages: a case's persons with their best faces, merge/split/drop/undo forms and searching a
person (cookie sessions, CSRF on every form). No rule lives here: each route calls the casemedia library."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.casemedia import media, persons
from leadmatch.errors import InputError
from leadmatch.gallery import galleries as gallery
from leadmatch.governance import purposes
from leadmatch.operations import cases, searches
from leadmatch.search import leads
from leadmatch.search import run as searching
from leadmatch.web import forms, worker
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser, ServiceSettings
from leadmatch.web.downloads import png
from leadmatch.web.responses import page

router = APIRouter()


def _back(case: str) -> RedirectResponse:
    return RedirectResponse(f"/cases/{case}/persons", status_code=303)


@router.get("/cases", response_class=HTMLResponse)
def case_jump(actor: PageUser, request: Request, case: str = ""):
    """A case number in, its page out."""
    if not case.strip():
        raise InputError("no case number given", "type the case number you want to see")
    return RedirectResponse(f"/cases/{quote(case.strip(), safe='')}", status_code=303)


@router.get("/cases/{case}", response_class=HTMLResponse)
def case_page(actor: PageUser, ws: OpenWorkspace, request: Request, case: str):
    """The case at a glance: its searches and their progress, leads, people, media, and what is next."""
    return page(request, "case", d=cases.overview(ws, actor, case))


@router.get("/cases/{case}/persons", response_class=HTMLResponse)
def persons_page(actor: PageUser, ws: OpenWorkspace, request: Request, case: str):
    listing = persons.listing(ws, actor, case, include_dropped=True)
    galleries = gallery.list_all(ws, actor) if "agent" in actor.roles else []
    return page(request, "persons", d=listing, galleries=galleries, purposes=purposes.list_all(ws),
                default_top_k=leads.DEFAULT_CANDIDATES)


@router.get("/cases/media/new", response_class=HTMLResponse)
def media_form(actor: PageUser, ws: OpenWorkspace, request: Request, case: str = ""):
    """Agent: the form that adds photos and clips to a case (a new case or one of the agent's)."""
    return page(request, "media_new", case=case, purposes=searches.search_form(ws, actor)["purposes"])


@router.post("/cases/media")
async def media_add(actor: FormUser, config: ServiceSettings, request: Request, case: str = Form(""),
                    file: list[UploadFile] = File([]), purpose: str = Form(""), justification: str = Form("")):
    """Agent: add uploaded photos and clips to a case (decoded in a worker process); then its persons."""
    chosen = [f for f in file if f.filename]
    if not chosen:
        raise InputError("no photo or clip was chosen", "choose the case's photos and clips to add")
    paths = await run_in_threadpool(forms.store_uploads, config.home, [(f.file, f.filename) for f in chosen])
    wanted = media.MediaRequest(case=case, paths=paths, purpose=purpose, justification=justification, workers=1)
    try:
        await request.app.state.pool.call(worker.add_case_media, str(config.home), actor, wanted)
    finally:
        forms.drop_upload(paths[0])  # the case keeps its own copies
    return _back(case.strip())


@router.get("/cases/{case}/faces/{face_id}.png")
def face_png(actor: PageUser, ws: OpenWorkspace, case: str, face_id: int):
    return png(persons.face_image(ws, actor, case, face_id))


@router.post("/cases/{case}/persons/merge")
async def merge(actor: FormUser, ws: OpenWorkspace, request: Request, case: str, reason: str = Form("")):
    labels = [str(v) for v in (await request.form()).getlist("label")]
    persons.merge(ws, actor, case, labels, reason)
    return _back(case)


@router.post("/cases/{case}/persons/undo")
def undo(actor: FormUser, ws: OpenWorkspace, case: str,
         reason: str = Form("")):
    persons.undo(ws, actor, case, reason)
    return _back(case)


@router.post("/cases/{case}/persons/{label}/split")
async def split(actor: FormUser, ws: OpenWorkspace, request: Request, case: str, label: str, reason: str = Form("")):
    faces = [forms.whole_number(str(v), "face", 1, 2**62) for v in (await request.form()).getlist("face")]
    persons.split(ws, actor, case, label, faces, reason)
    return _back(case)


@router.post("/cases/{case}/persons/{label}/drop")
def drop(actor: FormUser, ws: OpenWorkspace, case: str, label: str,
         reason: str = Form("")):
    persons.drop(ws, actor, case, label, reason)
    return _back(case)


@router.post("/cases/{case}/persons/{label}/search")
def search(actor: FormUser, ws: OpenWorkspace, case: str, label: str,
           gallery_name: str = Form("", alias="gallery"), purpose: str = Form(""), justification: str = Form(""),
           traditional_means: str = Form(""), top_k: str = Form("")):
    request = searching.SearchRequest(
        probe=Path(), gallery=gallery_name, case=case, purpose=purpose, justification=justification,
        traditional_means=traditional_means,
        top_k=forms.whole_number(top_k, "top_k", 2, 50) if top_k.strip() else leads.DEFAULT_CANDIDATES)
    result = persons.search(ws, actor, case, label, request)
    return RedirectResponse(f"/searches/{result['search_id']}", status_code=303)
