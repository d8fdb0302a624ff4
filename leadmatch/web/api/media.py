"""/api/v1/cases/{case}/…: case media, persons, person search and the disclosure export, over the library's
casemedia package (the CLI's client mode calls these). Media analysis decodes photos and clips, so it runs in
the service's worker pool (`add_media`, a top-level function a spawned worker can import)."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from leadmatch.casemedia import export, media, persons
from leadmatch.errors import InputError
from leadmatch.search import leads, probes
from leadmatch.search import run as searching
from leadmatch.web import forms, worker
from leadmatch.web.deps import ApiUser, OpenWorkspace, ServiceSettings
from leadmatch.web.responses import json_response

router = APIRouter(prefix="/api/v1")


class Merge(BaseModel):
    labels: list[str] = Field(min_length=2, max_length=100)
    reason: str = Field(max_length=10_000)


class Split(BaseModel):
    faces: list[int] = Field(min_length=1, max_length=10_000)
    reason: str = Field(max_length=10_000)


class Reason(BaseModel):
    reason: str = Field(max_length=10_000)


class PersonSearch(BaseModel):
    gallery: str = Field(max_length=100)
    purpose: str = Field("", max_length=200)
    justification: str = Field("", max_length=10_000)
    traditional_means: str = Field("", max_length=10_000)
    top_k: int = Field(leads.DEFAULT_CANDIDATES, ge=1, le=1000)
    fusion: str = Field(probes.DEFAULT_FUSION, max_length=20)


@router.post("/cases/{case}/media")
async def media_add(actor: ApiUser, config: ServiceSettings, case: str, request: Request,
                    file: list[UploadFile] = File([]),
                    purpose: str = Form(""), justification: str = Form(""), every: str = Form("")):
    """Agent: add uploaded photos and clips (multipart field 'file', repeated) to a case; grouped into persons."""
    if not file:
        raise InputError("no photo or clip was uploaded", "send them as the multipart field 'file'")
    paths = forms.store_uploads(config.home, [(upload.file, upload.filename or "media") for upload in file])
    every_s = forms.decimal(every, "every", 0.04, 10.0) if every.strip() else media.MEDIA_EVERY_S
    wanted = media.MediaRequest(case=case, paths=paths, purpose=purpose, justification=justification,
                                every_s=every_s, workers=1)
    try:
        result = await request.app.state.pool.call(worker.add_case_media, str(config.home), actor, wanted)
    finally:
        forms.drop_upload(paths[0])  # the case keeps its own copies
    return json_response(result)


@router.get("/cases/{case}/media")
def media_list(actor: ApiUser, ws: OpenWorkspace, case: str):
    return json_response(media.listing(ws, actor, case))


@router.get("/cases/{case}/persons")
def person_list(actor: ApiUser, ws: OpenWorkspace, case: str, all: bool = False):
    return json_response(persons.listing(ws, actor, case, include_dropped=all))


@router.post("/cases/{case}/persons/merge")
def person_merge(actor: ApiUser, ws: OpenWorkspace, case: str, body: Merge):
    return persons.merge(ws, actor, case, body.labels, body.reason)


@router.post("/cases/{case}/persons/undo")
def person_undo(actor: ApiUser, ws: OpenWorkspace, case: str, body: Reason):
    return persons.undo(ws, actor, case, body.reason)


@router.get("/cases/{case}/persons/{label}")
def person_show(actor: ApiUser, ws: OpenWorkspace, case: str, label: str):
    return json_response(persons.show(ws, actor, case, label))


@router.post("/cases/{case}/persons/{label}/split")
def person_split(actor: ApiUser, ws: OpenWorkspace, case: str, label: str, body: Split):
    return persons.split(ws, actor, case, label, body.faces, body.reason)


@router.post("/cases/{case}/persons/{label}/drop")
def person_drop(actor: ApiUser, ws: OpenWorkspace, case: str, label: str, body: Reason):
    return persons.drop(ws, actor, case, label, body.reason)


@router.post("/cases/{case}/persons/{label}/search")
def person_search(actor: ApiUser, ws: OpenWorkspace, case: str, label: str, body: PersonSearch):
    """Agent: search a person's best faces (stored embeddings: nothing to decode) against a gallery."""
    request = searching.SearchRequest(probe=Path(), gallery=body.gallery, case=case, purpose=body.purpose,
                                      justification=body.justification, traditional_means=body.traditional_means,
                                      top_k=body.top_k, fusion=body.fusion)
    return json_response(persons.search(ws, actor, case, label, request))


@router.get("/cases/{case}/faces/{face_id}.png")
def face_png(actor: ApiUser, ws: OpenWorkspace, case: str, face_id: int):
    return Response(persons.face_image(ws, actor, case, face_id), media_type="image/png")


@router.post("/cases/{case}/export")
def case_export(actor: ApiUser, ws: OpenWorkspace, case: str):
    """Auditor, reviewer or admin: the disclosure export, its files base64-encoded for the client to write."""
    temp = Path(tempfile.mkdtemp(prefix="leadmatch-export-"))
    try:
        result = export.export(ws, actor, case, temp / "export")
        root = temp / "export"
        files = {str(p.relative_to(root)): base64.b64encode(p.read_bytes()).decode("ascii")
                 for p in sorted(root.rglob("*")) if p.is_file()}
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return json_response({"result": result, "files": files})
