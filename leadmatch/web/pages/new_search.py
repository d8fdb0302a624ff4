"""A new search from the browser: the form, the upload (a photo, several stills or a clip) and the face or track
picker when the probe holds several. No rule lives here: the library checks the request and audits refusals."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.errors import FaceChoiceNeeded
from leadmatch.governance import retention
from leadmatch.operations import searches
from leadmatch.search.video import is_video
from leadmatch.web import forms, worker
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser, ServiceSettings
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
