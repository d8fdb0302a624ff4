"""The gallery pages: the list; a new gallery with its authority record; one gallery with its counts, index
health, refused photos and (admin) its target FPIR; enrollment by upload with progress and the refusals table
after it; the subjects (filtered, paged) with their removal; the quality-flagged faces.

No rule lives here: each route calls `operations.galleries`, whose gates refuse and audit. An enrollment's
progress is read from the file its worker keeps (`worker.progress_writer`); its answer waits here, in memory,
for the browser that started it, by a random id that browser chose (`ENROLLMENTS`)."""

from __future__ import annotations

import json
import secrets
import shutil
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from leadmatch.errors import InputError, LeadmatchError, NotFound
from leadmatch.gallery import enrollment, space
from leadmatch.governance import retention
from leadmatch.governance.accounts import Actor
from leadmatch.operations import galleries
from leadmatch.web import forms, worker
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser, ServiceSettings
from leadmatch.web.responses import attempt, page, refilled
from leadmatch.web.wording import Field

router = APIRouter()

MODELS = space.MODELS  # the face models a gallery may use
CREATE_FIELDS = {
    "name": Field("Gallery name", (r"gallery name", r"gallery '[^']*' already exists")),
    "authority": Field("Legal authority", (r"--authority",)),
    "approved_by": Field("Approved by", (r"--approved-by",)),
    "approved_on": Field("Approval date", (r"--approved-on",)),
    "source": Field("Source of the photos", (r"--source",)),
    "retention_days": Field("Retention (days)", (r"--retention-days", r"Retention \(days\)")),
    "model": Field("Face model", (r"--model", r"face model", r"FaceRes")),
}
ENROLL_FIELDS = {
    "subject": Field("Subject", (r"not named <subject>/<file>", r"subject name")),
    "photo": Field("Photos", (r"no photos were uploaded", r"upload '")),
}
FPIR_FIELDS = {"target": Field("Target false-alarm rate", (r"--target-fpir", r"Target false-alarm rate"))}
SUBJECTS_PER_PAGE = 25
#: Finished enrollments' answers, by the id the browser chose, for that browser to show (the newest few).
ENROLLMENTS: OrderedDict[str, dict] = OrderedDict()
KEPT_ANSWERS = 100


@router.get("/galleries", response_class=HTMLResponse)
def gallery_list(actor: PageUser, ws: OpenWorkspace, request: Request):
    return page(request, "galleries", galleries=galleries.list_galleries(ws, actor))


@router.get("/galleries/new", response_class=HTMLResponse)
def gallery_form(actor: PageUser, request: Request):
    """Analyst: the form for a new gallery's authority record (the library refuses anyone else on sending)."""
    return page(request, "gallery_new", form={"retention_days": "365"}, marked=set(), models=MODELS)


@router.post("/galleries", response_class=HTMLResponse)
def gallery_create(actor: FormUser, ws: OpenWorkspace, request: Request, name: str = Form(""),
                   authority: str = Form(""), approved_by: str = Form(""), approved_on: str = Form(""),
                   source: str = Form(""), retention_days: str = Form(""), model: str = Form("")):
    """Analyst: create the gallery (every authority field required, refused and audited by the library); then
    its page, or the form again, filled in, with the message."""
    form = {"name": name, "authority": authority, "approved_by": approved_by, "approved_on": approved_on,
            "source": source, "retention_days": retention_days, "model": model}

    def create():
        days = forms.whole_number(retention_days, "Retention (days)", 1, 36500)
        if not model:
            raise InputError("no face model was chosen", "choose the face model the gallery is searched with")
        created = galleries.create(ws, actor, name.strip(), authority, approved_by, approved_on, source, days, model)
        return RedirectResponse(f"/galleries/{created['name']}", status_code=303)

    return attempt(request, "gallery_new", CREATE_FIELDS, form, create, lambda: {"models": MODELS})


@router.get("/galleries/{name}", response_class=HTMLResponse)
def gallery_page(actor: PageUser, ws: OpenWorkspace, request: Request, name: str):
    return page(request, "gallery", g=galleries.show(ws, actor, name, refusals=True), form={}, marked=set())


@router.post("/galleries/{name}/target-fpir", response_class=HTMLResponse)
def gallery_target_fpir(actor: FormUser, ws: OpenWorkspace, request: Request, name: str, target: str = Form("")):
    """Admin: the false-alarm rate the gallery's threshold is calibrated for, as a fraction (0.01: 1 % of
    searches for someone not enrolled); the library range-checks, recalibrates and audits. Back to the gallery."""
    def apply():
        galleries.set_target_fpir(ws, actor, name, forms.decimal(target, "Target false-alarm rate", 0.0, 1.0))
        return RedirectResponse(f"/galleries/{name}", status_code=303)

    return attempt(request, "gallery", FPIR_FIELDS, {"target": target}, apply,
                   lambda: {"g": galleries.show(ws, actor, name, refusals=True)})


# Enrollment by upload ------------------------------------------------------------------------------------

@router.get("/galleries/{name}/enroll", response_class=HTMLResponse)
def enroll_form(actor: PageUser, ws: OpenWorkspace, request: Request, name: str):
    """Analyst: upload photos (a folder of <subject>/<photos>, or photos of one subject) to enroll."""
    galleries.may_enroll(ws, actor, name)
    return page(request, "gallery_enroll", g=galleries.show(ws, actor, name), form={}, marked=set())


@router.post("/galleries/{name}/enroll", response_class=HTMLResponse)
async def enroll_upload(actor: FormUser, ws: OpenWorkspace, config: ServiceSettings, request: Request, name: str,
                        photo: list[UploadFile] = File([]), subject: str = Form(""), job: str = Form("")):
    """Analyst: enroll the uploaded photos in a worker process. Each is named `<subject>/<file>` (a folder's
    photos, as the script sends them) or, with `subject`, filed under that subject. The script names the run
    (`job`, a random id) and asks `enroll_progress` meanwhile; then (and without the script) the answer's page."""
    job = job if forms.UPLOAD_ID.fullmatch(job or "") else secrets.token_hex(16)  # no script: no id sent
    form = {"subject": subject}
    chosen = [f for f in photo if f.filename]
    folder = None
    try:
        galleries.may_enroll(ws, actor, name)  # before anything is written
        if not chosen:
            raise InputError("no photos were uploaded", "choose the photos, or a folder of <subject>/<photos>")
        folder = retention.enroll_upload_folder(config.home)
        photos, progress = folder / "photos", folder / "progress.json"
        photos.mkdir()
        ENROLLMENTS[_key(actor, job)] = {"progress": progress, "answer": None}
        names = await run_in_threadpool(_store, photos, chosen, subject.strip())
        plan = galleries.enrollment_plan(ws, actor, config.deployment, name, None, uploaded=photos,
                                         uploaded_as=enrollment.upload_description(names))
        answer = await request.app.state.pool.call(worker.enroll_folder, str(config.home), actor, name, plan,
                                                   str(progress.absolute()))
    except LeadmatchError as exc:
        ENROLLMENTS.pop(_key(actor, job), None)
        return refilled(request, "gallery_enroll", exc, ENROLL_FIELDS, form,
                        lambda: {"g": galleries.show(ws, actor, name)})
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    _keep(actor, job, answer)
    return RedirectResponse(f"/galleries/{name}/enrollments/{job}", status_code=303)


@router.get("/galleries/{name}/enrollments/{job}/progress")
def enroll_progress(actor: PageUser, name: str, job: str):
    """How far the browser's own enrollment `job` is: {"stage": waiting|analysing|done, "done", "total"}."""
    kept = ENROLLMENTS.get(_key(actor, job))
    if kept is None:
        return JSONResponse({"stage": "waiting", "done": 0, "total": None})
    if kept["answer"] is not None:
        offered = kept["answer"]["offered"]
        return JSONResponse({"stage": "done", "done": offered, "total": offered})
    try:
        seen = json.loads(Path(kept["progress"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not started yet (still reading the upload)
        return JSONResponse({"stage": "waiting", "done": 0, "total": None})
    return JSONResponse({"stage": "analysing", "done": seen["done"], "total": seen["total"]})


@router.get("/galleries/{name}/enrollments/{job}", response_class=HTMLResponse)
def enroll_answer(actor: PageUser, ws: OpenWorkspace, request: Request, name: str, job: str):
    """The answer of the browser's own enrollment `job`: counts, and every refused photo with why, in words."""
    kept = ENROLLMENTS.get(_key(actor, job))
    if kept is None or kept["answer"] is None:
        raise NotFound("this enrollment's summary is no longer kept here",
                       "the gallery's page lists every photo refused at enrollment")
    return page(request, "gallery_enrolled", g=galleries.show(ws, actor, name), r=kept["answer"])


def _store(photos: Path, uploads: list[UploadFile], subject: str) -> list[str]:
    """Write each upload under `photos` as <subject>/<file> (the library checks the names); their names."""
    names = []
    for upload in uploads:
        named = f"{subject}/{Path(upload.filename).name}" if subject else upload.filename
        target = enrollment.uploaded_photo_path(photos, named)
        with open(target, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        names.append(named)
    return names


def _key(actor: Actor, job: str) -> str:
    return f"{actor.name}/{job}"  # one user's run is never another's to read


def _keep(actor: Actor, job: str, answer: dict) -> None:
    ENROLLMENTS[_key(actor, job)] = {"progress": None, "answer": answer}
    ENROLLMENTS.move_to_end(_key(actor, job))
    while len(ENROLLMENTS) > KEPT_ANSWERS:
        ENROLLMENTS.popitem(last=False)


# Subjects and flagged faces ------------------------------------------------------------------------------

@router.get("/galleries/{name}/subjects", response_class=HTMLResponse)
def subjects_page(actor: PageUser, ws: OpenWorkspace, request: Request, name: str, contains: str = "",
                  page_number: str = Query("1", alias="page"), flagged: str = "", removed: str = ""):
    """A page of the gallery's subjects (names containing `contains`; only those with a flagged face if
    `flagged`), with the removal form for analysts."""
    number = forms.whole_number(page_number or "1", "page", 1, 10**6)
    listing = galleries.subjects(ws, actor, name, contains, (number - 1) * SUBJECTS_PER_PAGE, SUBJECTS_PER_PAGE,
                                 bool(flagged))
    pages = max(1, -(-listing["total"] // SUBJECTS_PER_PAGE))
    return page(request, "gallery_subjects", s=listing, contains=contains, flagged=bool(flagged), number=number,
                pages=pages, removed=removed)


@router.post("/galleries/{name}/subjects/remove")
def subject_remove(actor: FormUser, ws: OpenWorkspace, name: str, subject: str = Form("")):
    """Analyst: remove one subject's photos and faces from the record and the index (the page asked first)."""
    if not subject.strip():
        raise InputError("no subject was named", "use the Remove button beside the subject")
    result = galleries.remove_subject(ws, actor, name, subject)
    note = f"{result['subject']} ({result['faces_removed']} faces, {result['photos_removed']} photos)"
    return RedirectResponse(f"/galleries/{name}/subjects?removed={_quoted(note)}", status_code=303)


@router.get("/galleries/{name}/flagged", response_class=HTMLResponse)
def flagged_page(actor: PageUser, ws: OpenWorkspace, request: Request, name: str):
    """Every face of the gallery enrolled with a quality flag (subject, photo, size, sharpness, flags)."""
    return page(request, "gallery_flagged", g=galleries.show(ws, actor, name),
                faces=galleries.flagged_faces(ws, actor, name))


def _quoted(text: str) -> str:
    return quote(text, safe="")
