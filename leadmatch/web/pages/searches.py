"""The search pages: a new search (photo, stills or clip; the face and track pickers), the lists, one search
with its candidates, and the disposition, corroboration and closure forms.

No rule lives here: each route calls the library, whose gate refuses (and audits) what a role may not do.
"""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.errors import FaceChoiceNeeded
from leadmatch.governance import casework, retention
from leadmatch.operations import searches
from leadmatch.search import crops
from leadmatch.search.video import is_video
from leadmatch.web import forms, worker
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser, ServiceSettings
from leadmatch.web.downloads import png, report_response
from leadmatch.web.responses import page

router = APIRouter()


@router.get("/search/new", response_class=HTMLResponse)
def search_form(actor: PageUser, ws: OpenWorkspace, request: Request):
    return page(request, "search_new", **searches.search_form(ws, actor), form={}, faces=None)


@router.post("/search", response_class=HTMLResponse)
async def search_submit(actor: FormUser, ws: OpenWorkspace, config: ServiceSettings, request: Request,
                        probe: list[UploadFile] = File([]),
                        upload: str = Form(""), gallery_name: str = Form("", alias="gallery"),
                        case: str = Form(""), purpose: str = Form(""), justification: str = Form(""),
                        traditional_means: str = Form(""), probe_source: str = Form("original"),
                        top_k: str = Form(""), face: str = Form(""), track: str = Form(""), every: str = Form(""),
                        best_frames: str = Form(""), fusion: str = Form(""), per_photo: str = Form(""),
                        original: UploadFile | None = File(None), enhancement: str = Form("")):
    """Search uploaded probe files (a photo, several stills, or a clip) in a worker process; several faces or
    tracks → the picker (the upload is kept, by a random id, until picked or swept); anything else → the
    upload goes at once."""
    fields = {"gallery": gallery_name, "case": case, "purpose": purpose, "justification": justification,
              "traditional_means": traditional_means, "probe_source": probe_source, "top_k": top_k,
              "every": every, "best_frames": best_frames, "fusion": fusion, "per_photo": per_photo}
    request_ = forms.search_request(
        gallery=gallery_name, case=case, purpose=purpose, justification=justification,
        traditional_means=traditional_means, probe_source=probe_source, top_k=top_k, face=face, track=track,
        every=every, best_frames=best_frames, fusion=fusion, per_photo=per_photo, top_k_field="candidates")
    await run_in_threadpool(retention.sweep_uploads, config.home, config.upload_max_age_s)
    if upload:
        paths = forms.find_uploads(config.home, upload)
    else:
        paths = await run_in_threadpool(forms.store_uploads, config.home,
                                        [(f.file, f.filename or "") for f in probe])
    request_.probe, request_.more_probes = paths[0], tuple(paths[1:])
    request_.enhancement = enhancement
    if original is not None and original.filename:  # an enhanced probe's original (sent again after a face pick)
        request_.original = (await run_in_threadpool(forms.store_uploads, config.home,
                                                     [(original.file, original.filename)]))[0]
    keep = False
    try:
        result = await worker.search_watched(request, config.home, actor, request_, True)
    except FaceChoiceNeeded as several:
        keep = True
        return page(request, "search_new", **searches.search_form(ws, actor),
                    form={**fields, "upload": paths[0].parent.name}, faces=several.faces,
                    picking="track" if is_video(paths[0]) else "face",
                    message=several.message)
    finally:
        if not keep:
            forms.drop_upload(paths[0])  # the search kept its own copy, or failed
        if request_.original is not None:
            forms.drop_upload(request_.original)
    return RedirectResponse(f"/searches/{result['search_id']}", status_code=303)


@router.get("/searches", response_class=HTMLResponse)
def search_list(actor: PageUser, ws: OpenWorkspace, request: Request, status: str = "", case: str = ""):
    return page(request, "searches", rows=searches.listing(ws, actor, case, status),
                status_filter=status, case=case, statuses=casework.STATUSES)


@router.get("/review", response_class=HTMLResponse)
def review_queue(actor: PageUser, ws: OpenWorkspace, request: Request):
    return page(request, "searches", rows=searches.review_queue(ws, actor),
                status_filter=casework.AWAITING_REVIEW, case="", statuses=casework.STATUSES)


@router.get("/searches/{search_id}", response_class=HTMLResponse)
def search_page(actor: PageUser, ws: OpenWorkspace, request: Request, search_id: str):
    record = searches.show(ws, actor, search_id)
    return page(request, "search", s=record, decisions=casework.DECISIONS, crop_size=crops.SIZE, large=crops.LARGE,
                evidence_types=casework.EVIDENCE_TYPES, outcomes=casework.OUTCOMES,
                is_agent=record["may"]["disposition"], is_reviewer=record["may"]["review"])


@router.get("/searches/{search_id}/probe.png")
def probe_png(actor: PageUser, ws: OpenWorkspace, search_id: str, size: str = ""):
    """The probe's face (the best frame of a clip, the first of several stills); ?size= up to crops.LARGE."""
    return png(crops.probe_crop(ws, actor, search_id, crop_size(size)))


@router.get("/searches/{search_id}/frames/{number}.png")
def frame_png(actor: PageUser, ws: OpenWorkspace, search_id: str, number: str, size: str = ""):
    """Probe face `number` of a search with several (a video frame or a still)."""
    return png(crops.probe_frame_crop(ws, actor, search_id, forms.whole_number(number, "frame", 1, 100),
                                      crop_size(size)))


@router.get("/searches/{search_id}/candidates/{rank}.png")
def candidate_png(actor: PageUser, ws: OpenWorkspace, search_id: str, rank: str, size: str = "", face: str = ""):
    """Candidate `rank`'s face; with ?face=<face id>, another matched photo of that subject."""
    return png(crops.candidate_crop(ws, actor, search_id, forms.whole_number(rank, "rank", 1, 50), crop_size(size),
                                    face_id=forms.optional_number(face, "face", 1, 2**62)))


def crop_size(value: str) -> int:
    """A crop's requested size in px: crops.SIZE unless asked, at most crops.LARGE (the enlarged view)."""
    return forms.optional_number(value, "size", 64, crops.LARGE) or crops.SIZE


@router.get("/searches/{search_id}/report")
def report_download(actor: PageUser, ws: OpenWorkspace, search_id: str):
    return report_response(ws, actor, search_id)


@router.post("/searches/{search_id}/disposition")
def disposition(actor: FormUser, ws: OpenWorkspace, search_id: str,
                rank: str = Form(""), decision: str = Form(""), note: str = Form("")):
    searches.disposition(ws, actor, search_id, forms.whole_number(rank, "rank", 1, 50), decision, note)
    return back_to(search_id)


@router.post("/searches/{search_id}/corroborate")
def corroborate(actor: FormUser, ws: OpenWorkspace, search_id: str,
                rank: str = Form(""), evidence_type: str = Form(""), evidence: str = Form(""),
                reference: str = Form(""), outcome: str = Form("")):
    searches.corroborate(ws, actor, search_id, forms.whole_number(rank, "rank", 1, 50), evidence_type, evidence,
                         reference, outcome)
    return back_to(search_id)


@router.post("/searches/{search_id}/close")
def close(actor: FormUser, ws: OpenWorkspace, search_id: str,
          outcome: str = Form(""), note: str = Form(""), rank: str = Form("")):
    searches.close(ws, actor, search_id, outcome, note, forms.optional_number(rank, "rank", 1, 50))
    return back_to(search_id)


def back_to(search_id: str) -> RedirectResponse:
    return RedirectResponse(f"/searches/{search_id}", status_code=303)
