"""Authorized galleries: list, create, show, enroll, list and remove subjects, flagged faces, the target FPIR,
the index."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.datastructures import UploadFile as StarletteUpload

from leadmatch.errors import InputError
from leadmatch.gallery import enrollment
from leadmatch.gallery import galleries as gallery
from leadmatch.governance import retention
from leadmatch.governance.accounts import Actor
from leadmatch.operations import galleries
from leadmatch.web import forms, worker
from leadmatch.web.deps import ApiUser, OpenWorkspace, ServiceSettings, Settings
from leadmatch.web.responses import json_response

router = APIRouter(prefix="/api/v1")


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


class TargetFpir(BaseModel):
    target: float


class IndexBuild(BaseModel):
    index: str | None = Field(None, max_length=200)


@router.get("/galleries")
def gallery_list(actor: ApiUser, ws: OpenWorkspace):
    return galleries.list_galleries(ws, actor)


@router.post("/galleries")
def gallery_create(actor: ApiUser, ws: OpenWorkspace, body: GalleryCreate):
    return galleries.create(ws, actor, body.name, body.authority, body.approved_by, body.approved_on, body.source,
                            body.retention_days, body.model)


@router.get("/galleries/{name}")
def gallery_show(actor: ApiUser, ws: OpenWorkspace, name: str, refusals: bool = False):
    return galleries.show(ws, actor, name, refusals)


@router.post("/galleries/{name}/enroll")
async def gallery_enroll(actor: ApiUser, ws: OpenWorkspace, config: ServiceSettings, name: str, request: Request):
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


@router.get("/galleries/{name}/subjects")
def gallery_subjects(actor: ApiUser, ws: OpenWorkspace, name: str, contains: str = "", offset: int = 0,
                     limit: int = gallery.SUBJECTS_PAGE, flagged: bool = False):
    """A page of the gallery's subjects (names containing `contains`) with their face counts and flags."""
    return galleries.subjects(ws, actor, name, contains, offset, limit, flagged)


@router.get("/galleries/{name}/flagged")
def gallery_flagged(actor: ApiUser, ws: OpenWorkspace, name: str):
    """Every face of the gallery enrolled with a quality flag."""
    return galleries.flagged_faces(ws, actor, name)


@router.delete("/galleries/{name}/subjects/{subject}")
def gallery_remove(actor: ApiUser, ws: OpenWorkspace, name: str, subject: str):
    """Analyst: remove a subject's photos and faces from the record and the index."""
    return galleries.remove_subject(ws, actor, name, subject)


@router.post("/galleries/{name}/target-fpir")
def gallery_target_fpir(actor: ApiUser, ws: OpenWorkspace, name: str, body: TargetFpir):
    """Admin: the false-alarm rate the gallery's threshold is calibrated for (recalibrates; audited)."""
    return json_response(galleries.set_target_fpir(ws, actor, name, body.target))


@router.get("/galleries/{name}/index")
def index_status(actor: ApiUser, ws: OpenWorkspace, name: str):
    return json_response(galleries.index_status(ws, actor, name))


@router.post("/galleries/{name}/index")
async def index_build(actor: ApiUser, config: ServiceSettings, name: str, body: IndexBuild, request: Request):
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
