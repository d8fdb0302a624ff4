"""The JSON API, /api/v1: the same library as the pages, for the CLI's client mode and other programs.

The only credential is `Authorization: Bearer <token>` (from POST /api/v1/login); cookies are ignored here,
so a browser cannot be tricked into calling it and no CSRF token is needed. Errors are
{"error": {kind, message, hint, reason, exit_code}} with an HTTP status (401 sign-in, 403 refused, 404, 409
pick a face, 429 throttled, 400 bad input). Every time is the service's own clock; no route takes one.
"""

from __future__ import annotations

from typing import Literal

import shutil

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile as StarletteUpload
from pydantic import BaseModel, Field, ValidationError, field_validator

from leadmatch.governance import accounts, retention
from leadmatch.operations import galleries, oversight, people, searches, sessions
from leadmatch.gallery import enrollment, galleries as gallery
from leadmatch.search import leads, probes
from leadmatch.governance.accounts import Actor
from leadmatch.errors import InputError
from leadmatch.record.workspace import Workspace
from leadmatch.web import forms, pages, worker
from leadmatch.web.deps import Settings, api_user, bearer_token, client_address, settings, workspace
from leadmatch.web.responses import json_response

router = APIRouter(prefix="/api/v1")


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    hours: int = Field(accounts.SESSION_HOURS, ge=1, le=24)


class Disposition(BaseModel):
    rank: int = Field(ge=1, le=50)
    decision: str = Field(max_length=40)
    note: str = Field(max_length=10_000)


class Corroboration(BaseModel):
    rank: int = Field(ge=1, le=50)
    evidence_type: str = Field(max_length=40)
    evidence: str = Field(max_length=10_000)
    reference: str = Field(max_length=500)
    outcome: str = Field(max_length=40)


class Verify(BaseModel):
    expect_head: str | None = Field(None, max_length=64)
    checkpoint: dict | None = None


class Closure(BaseModel):
    outcome: str = Field(max_length=40)
    note: str = Field(max_length=10_000)
    rank: int | None = Field(None, ge=1, le=50)


class GalleryCreate(BaseModel):
    name: str = Field(max_length=100)
    authority: str = Field(max_length=2000)
    approved_by: str = Field(max_length=500)
    approved_on: str = Field(max_length=20)
    source: str = Field(max_length=2000)
    retention_days: int = Field(gallery.DEFAULT_RETENTION_DAYS, ge=1, le=36500)
    model: str | None = Field(None, max_length=40)  # None: the workspace's default (dlib unless set at init)


class ServerPath(BaseModel):
    path: str = Field(max_length=4096)

    @field_validator("path")
    @classmethod
    def no_nul(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("the path holds a NUL character")
        return value


class EnrollPath(ServerPath):
    ray: str | None = Field(None, max_length=300)
    batch: int | None = Field(None, ge=1, le=100_000)


class Evaluation(ServerPath):
    enroll_first: int = Field(1, ge=1, le=100)
    holdout_subjects: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = 0
    face: Literal["largest", "central"] | None = None


class UserAdd(BaseModel):
    name: str = Field(max_length=64)
    roles: list[str] = Field(min_length=1, max_length=5)
    password: str = Field(max_length=1024)


class Certification(BaseModel):
    course: str = Field(accounts.DEFAULT_COURSE, max_length=200)
    completed: str = Field(max_length=20)
    expires: str | None = Field(None, max_length=20)


class PurposeAdd(BaseModel):
    name: str = Field(max_length=200)


class TargetFpir(BaseModel):
    target: float


class IndexBuild(BaseModel):
    index: str | None = Field(None, max_length=200)


# Sessions --------------------------------------------------------------------------------------------------

@router.post("/login")
def login(body: Login, request: Request, ws: Workspace = Depends(workspace), config: Settings = Depends(settings)):
    """Password → bearer token (only its sha256 is stored), throttled per account at an address and per address."""
    address, peer = client_address(request)
    return sessions.login(ws, body.name, body.password, body.hours, throttle=config.throttle, address=address,
                          peer=peer)


@router.post("/logout")
def logout(request: Request, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return sessions.logout(ws, bearer_token(request))


@router.get("/whoami")
def whoami(actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return {**sessions.whoami(ws, actor), "mode": "service"}


@router.post("/accept-rules")
def accept_rules(actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    """Record that the caller accepted the rules of behavior (the text is in GET /rules)."""
    return sessions.accept_rules(ws, actor)


@router.get("/rules")
def rules(actor: Actor = Depends(api_user)):
    return sessions.rules()


@router.get("/purposes")
def purpose_list(actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return people.list_purposes(ws)


@router.post("/purposes")
def purpose_add(body: PurposeAdd, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    """Admin: authorize a new search purpose; answers its name as stored."""
    return people.add_purpose(ws, actor, body.name)


# Accounts (admin) ------------------------------------------------------------------------------------------

@router.get("/users")
def user_list(actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return people.list_users(ws, actor)


@router.post("/users")
def user_add(body: UserAdd, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return people.add_user(ws, actor, body.name, body.roles, body.password)


@router.post("/users/{name}/certifications")
def user_certify(name: str, body: Certification, actor: Actor = Depends(api_user),
                 ws: Workspace = Depends(workspace)):
    return people.certify(ws, actor, name, body.course, body.completed, body.expires)


@router.post("/users/{name}/disable")
def user_disable(name: str, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return people.disable(ws, actor, name)


# Searches --------------------------------------------------------------------------------------------------

@router.post("/searches")
async def search(request: Request, actor: Actor = Depends(api_user), config: Settings = Depends(settings),
                 probe: list[UploadFile] = File([]), gallery_name: str = Form("", alias="gallery"),
                 case: str = Form(""), purpose: str = Form(""), justification: str = Form(""),
                 traditional_means: str = Form(""), probe_source: str = Form("original"),
                 top_k: str = Form(str(leads.DEFAULT_CANDIDATES)), face: str = Form(""),
                 detector: str = Form("hog"), track: str = Form(""), every: str = Form(""),
                 best_frames: str = Form(""), fusion: str = Form(probes.DEFAULT_FUSION), per_photo: str = Form(""),
                 original: UploadFile | None = File(None), enhancement: str = Form("")):
    """A search on uploaded probe files — one photo, several stills of one person (repeat the field 'probe'),
    or one video clip — decoded in a worker process; 409 lists the faces (or the clip's tracks) when one must
    be picked (send it again with face= or track=)."""
    request_ = forms.search_request(
        gallery=gallery_name, case=case, purpose=purpose, justification=justification,
        traditional_means=traditional_means, probe_source=probe_source, top_k=top_k, face=face, detector=detector,
        track=track, every=every, best_frames=best_frames, fusion=fusion, per_photo=per_photo)
    if not probe:
        raise InputError("no probe photo or video was uploaded", "send the file as the multipart field 'probe' "
                         "(repeat it for several stills)")
    paths = forms.store_uploads(config.home, [(upload.file, upload.filename or "probe") for upload in probe])
    request_.probe, request_.more_probes = paths[0], tuple(paths[1:])
    request_.enhancement = enhancement
    if original is not None and original.filename:  # an enhanced probe's original, in an upload folder of its own
        request_.original = forms.store_uploads(config.home, [(original.file, original.filename)])[0]
    try:
        result = await worker.search_watched(request, config.home, actor, request_)
    finally:
        forms.drop_upload(paths[0])  # the search keeps its own copy; a refused one keeps nothing
        if request_.original is not None:
            forms.drop_upload(request_.original)
    return json_response(result)


@router.get("/searches")
def search_list(case: str | None = None, status: str | None = None, actor: Actor = Depends(api_user),
                ws: Workspace = Depends(workspace)):
    return searches.listing(ws, actor, case, status)


@router.get("/searches/{search_id}")
def search_show(search_id: str, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return json_response(searches.show(ws, actor, search_id))


@router.post("/searches/{search_id}/dispositions")
def disposition(search_id: str, body: Disposition, actor: Actor = Depends(api_user),
                ws: Workspace = Depends(workspace)):
    return searches.disposition(ws, actor, search_id, body.rank, body.decision, body.note)


@router.post("/searches/{search_id}/corroborations")
def corroborate(search_id: str, body: Corroboration, actor: Actor = Depends(api_user),
                ws: Workspace = Depends(workspace)):
    return searches.corroborate(ws, actor, search_id, body.rank, body.evidence_type, body.evidence, body.reference,
                                body.outcome)


@router.post("/searches/{search_id}/close")
def close(search_id: str, body: Closure, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return searches.close(ws, actor, search_id, body.outcome, body.note, body.rank)


@router.get("/searches/{search_id}/report")
def report(search_id: str, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return pages.report_response(ws, actor, search_id)


# Galleries -------------------------------------------------------------------------------------------------

@router.get("/galleries")
def gallery_list(actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return galleries.list_galleries(ws, actor)


@router.post("/galleries")
def gallery_create(body: GalleryCreate, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return galleries.create(ws, actor, body.name, body.authority, body.approved_by, body.approved_on, body.source,
                            body.retention_days, body.model)


@router.get("/galleries/{name}")
def gallery_show(name: str, refusals: bool = False, actor: Actor = Depends(api_user),
                 ws: Workspace = Depends(workspace)):
    return galleries.show(ws, actor, name, refusals)


@router.post("/galleries/{name}/enroll")
async def gallery_enroll(name: str, request: Request, actor: Actor = Depends(api_user),
                         ws: Workspace = Depends(workspace), config: Settings = Depends(settings)):
    """Enroll uploaded photos (multipart fields 'photo', each file named '<subject>/<file>') or, with JSON
    {"path": ...}, a folder or manifest on the server under the configured --enroll-root. Either may add
    `ray` (auto, or the address of the service's own cluster) and `batch` (photos per Ray task, only with
    `ray`): the photos are then analyzed on the service's Ray cluster, driven by the service."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            payload = await request.json()
        except ValueError:  # not JSON, or not UTF-8
            raise InputError("the request body is not valid JSON", 'send {"path": ...}') from None
        if not isinstance(payload, dict):
            raise InputError("the request body is not a JSON object", 'send {"path": ...}')
        try:
            body = EnrollPath(**payload)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        plan = galleries.enrollment_plan(ws, actor, config.deployment, name, body.path, ray=body.ray, batch=body.batch)
        return json_response(await enroll_call(request, config, actor, name, plan))
    galleries.may_enroll(ws, actor, name)  # before the form is read
    form = await request.form()
    batch = forms.optional_number(str(form.get("batch") or ""), "batch", 1, 100_000)
    ray = str(form.get("ray") or "").strip() or None
    galleries.ray_cluster(ws, actor, config.deployment, name, ray, batch)  # before the upload is written
    # inside the workspace, private to the service's account; not under uploads/, whose age sweep must not race
    # a long enroll; one left by a killed service is swept at the next start
    folder = retention.enroll_upload_folder(config.home)
    try:
        names = []
        for upload in form.getlist("photo"):
            if not isinstance(upload, StarletteUpload):
                raise InputError("the field 'photo' holds text, not a file", "send each photo as a file upload")
            target = enrollment.uploaded_photo_path(folder, upload.filename or "")
            target.write_bytes(await upload.read())
            names.append(upload.filename)
        if not names:
            raise InputError("no photos were uploaded", "send them as multipart fields 'photo'")
        plan = galleries.enrollment_plan(ws, actor, config.deployment, name, None, ray=ray, batch=batch,
                                         uploaded=folder, uploaded_as=enrollment.upload_description(names))
        result = await enroll_call(request, config, actor, name, plan)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return json_response(result)


@router.delete("/galleries/{name}/subjects/{subject}")
def gallery_remove(name: str, subject: str, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    """Analyst: remove a subject's photos and faces from the record and the index."""
    return galleries.remove_subject(ws, actor, name, subject)


@router.post("/galleries/{name}/target-fpir")
def gallery_target_fpir(name: str, body: TargetFpir, actor: Actor = Depends(api_user),
                        ws: Workspace = Depends(workspace)):
    """Admin: the false-alarm rate the gallery's threshold is calibrated for (recalibrates; audited)."""
    return json_response(galleries.set_target_fpir(ws, actor, name, body.target))


@router.get("/galleries/{name}/index")
def index_status(name: str, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return json_response(galleries.index_status(ws, actor, name))


@router.post("/galleries/{name}/index")
async def index_build(name: str, body: IndexBuild, request: Request, actor: Actor = Depends(api_user),
                      config: Settings = Depends(settings)):
    """Analyst: retrain the gallery's index (as `index`, which then sticks; null keeps its type) in a worker
    process, as training can take a while; the role is checked there, by the library."""
    return json_response(await request.app.state.pool.call(worker.build_index, str(config.home), actor, name,
                                                           body.index or None))


async def enroll_call(request: Request, config: Settings, actor: Actor, name: str,
                      plan: galleries.EnrollmentPlan) -> dict:
    """Run the enrollment in a worker process: the photo pool's, or on a Ray cluster a fresh process that drives
    it (one run at a time; other requests are answered meanwhile)."""
    pool = request.app.state.cluster_pool if plan.ray else request.app.state.pool
    return await pool.call(worker.enroll_folder, str(config.home), actor, name, plan)


# Oversight -------------------------------------------------------------------------------------------------

@router.get("/audit/verify")
def audit_verify(expect_head: str | None = None, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return json_response(oversight.verify(ws, actor, expect_head))


@router.post("/audit/verify")
def audit_verify_checkpoint(body: Verify, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    """Verify against a filed checkpoint, which the client sends (the file stays outside the system)."""
    return json_response(oversight.verify(ws, actor, body.expect_head, body.checkpoint))


@router.post("/audit/checkpoint")
def audit_checkpoint(actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    """Auditor: the signed head of the trail, for the client to file outside the system."""
    return json_response(oversight.checkpoint(ws, actor))


@router.get("/audit/log")
def audit_log(case: str | None = None, user: str | None = None, since: str | None = None, limit: int | None = None,
              actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return json_response(oversight.log(ws, actor, case, user, since, limit))


@router.get("/audit/report")
def audit_report(start: str, end: str, format: str = "json", stale_days: int = 30, actor: Actor = Depends(api_user),
                 ws: Workspace = Depends(workspace)):
    return pages.audit_report_response(ws, actor, start, end, format, stale_days)


@router.post("/evaluate")
async def evaluate(body: Evaluation, request: Request, actor: Actor = Depends(api_user),
                   ws: Workspace = Depends(workspace), config: Settings = Depends(settings)):
    """An accuracy evaluation of labeled photos on the server (under --enroll-root), analyst or admin."""
    source = galleries.evaluation_source(ws, actor, config.deployment, body.path)
    result = await request.app.state.pool.call(worker.evaluate, str(source), body.enroll_first,
                                               body.holdout_subjects, body.seed, body.face, str(config.enroll_root))
    return json_response(result)


@router.post("/purge")
def purge(actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return oversight.purge_expired(ws, actor)
