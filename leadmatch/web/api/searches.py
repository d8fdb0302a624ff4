"""Searches and what follows them: search, list, show, dispositions, corroboration, closure, report."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from leadmatch.errors import InputError
from leadmatch.governance import retention
from leadmatch.operations import searches
from leadmatch.search import leads, probes
from leadmatch.search.video import is_video
from leadmatch.web import downloads, forms, worker
from leadmatch.web.deps import ApiUser, OpenWorkspace, ServiceSettings
from leadmatch.web.responses import json_response

router = APIRouter(prefix="/api/v1")


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


class Closure(BaseModel):
    outcome: str = Field(max_length=40)
    note: str = Field(max_length=10_000)
    rank: int | None = Field(None, ge=1, le=50)


@router.post("/searches")
async def search(actor: ApiUser, config: ServiceSettings, request: Request,
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
    if is_video(paths[0]):  # its upload goes after this call; the analysis waits for the search after a pick
        request_.keep_analysis = retention.clip_analyses(config.home, config.upload_max_age_s)
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
def search_list(actor: ApiUser, ws: OpenWorkspace, case: str | None = None, status: str | None = None):
    return searches.listing(ws, actor, case, status)


@router.get("/searches/{search_id}")
def search_show(actor: ApiUser, ws: OpenWorkspace, search_id: str):
    return json_response(searches.show(ws, actor, search_id))


@router.post("/searches/{search_id}/dispositions")
def disposition(actor: ApiUser, ws: OpenWorkspace, search_id: str, body: Disposition):
    return searches.disposition(ws, actor, search_id, body.rank, body.decision, body.note)


@router.post("/searches/{search_id}/corroborations")
def corroborate(actor: ApiUser, ws: OpenWorkspace, search_id: str, body: Corroboration):
    return searches.corroborate(ws, actor, search_id, body.rank, body.evidence_type, body.evidence, body.reference,
                                body.outcome)


@router.post("/searches/{search_id}/close")
def close(actor: ApiUser, ws: OpenWorkspace, search_id: str, body: Closure):
    return searches.close(ws, actor, search_id, body.outcome, body.note, body.rank)


@router.get("/searches/{search_id}/report")
def report(actor: ApiUser, ws: OpenWorkspace, search_id: str):
    return downloads.report_response(ws, actor, search_id)
