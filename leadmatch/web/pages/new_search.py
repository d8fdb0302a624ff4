"""A new search from the browser: the form, the upload (a photo, several stills or a clip) and the face or track
picker when the probe holds several. No rule lives here: the library checks the request and audits refusals.

A refused or invalid submission comes back as the form itself, every typed field filled and the upload kept
(by its random id) for the retry, the field concerned marked. A clip's analysis reports its progress to a file
beside the upload, which the page polls (`/search/progress/<upload id>`, from `static/search_new.js`); without
scripts the plain form works the same, just without the progress bar.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.errors import FaceChoiceNeeded, LeadmatchError
from leadmatch.governance import retention
from leadmatch.operations import searches
from leadmatch.search.video import is_video
from leadmatch.web import forms, wording, worker
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser, ServiceSettings
from leadmatch.web.responses import json_response, page, status_of

router = APIRouter()

#: Refusals that are about the person, not the form: they get the plain error page, not the form again.
NOT_ABOUT_THE_FORM = ("wrong-role", "disabled", "not-signed-in", "session-expired")


@router.get("/search/new", response_class=HTMLResponse)
def search_form(actor: PageUser, ws: OpenWorkspace, request: Request):
    return page(request, "search_new", **_form_context(ws, actor), form={}, faces=None)


def _form_context(ws, actor) -> dict:
    """What the form offers (galleries, purposes, fusions); a refusal reworded for the page."""
    try:
        return searches.search_form(ws, actor)
    except LeadmatchError as exc:
        exc.message, exc.hint = wording.words(exc.message), wording.words(exc.hint)
        raise


@router.get("/search/progress/{upload}")
def search_progress(actor: PageUser, config: ServiceSettings, upload: str):
    """How far the analysis of an uploaded clip has come (JSON), for the page's progress bar."""
    return json_response(forms.read_progress(config.home, upload))


@router.post("/search/upload")
async def search_upload(actor: FormUser, ws: OpenWorkspace, config: ServiceSettings,
                        probe: list[UploadFile] = File([])):
    """Keep the probe files first (the page's script sends a clip this way, then the form with its upload id, so
    it can follow the analysis): {"upload": id, "files": [names], "clip": bool}. Only for those who may search
    (the library's check, audited when refused)."""
    _form_context(ws, actor)
    await run_in_threadpool(retention.sweep_uploads, config.home, config.upload_max_age_s)
    paths = await run_in_threadpool(forms.store_uploads, config.home, [(f.file, f.filename or "") for f in probe])
    return json_response({"upload": forms.upload_id(paths[0]), "files": [p.name for p in paths],
                          "clip": is_video(paths[0])})


@router.post("/search", response_class=HTMLResponse)
async def search_submit(actor: FormUser, ws: OpenWorkspace, config: ServiceSettings, request: Request,
                        probe: list[UploadFile] = File([]),
                        upload: str = Form(""), gallery_name: str = Form("", alias="gallery"),
                        case: str = Form(""), purpose: str = Form(""), justification: str = Form(""),
                        traditional_means: str = Form(""), probe_source: str = Form("original"),
                        top_k: str = Form(""), face: str = Form(""), track: str = Form(""), every: str = Form(""),
                        best_frames: str = Form(""), fusion: str = Form(""), per_photo: str = Form(""),
                        original: UploadFile | None = File(None), original_upload: str = Form(""),
                        enhancement: str = Form("")):
    """Search uploaded probe files (a photo, several stills, or a clip) in a worker process; several faces or
    tracks → the picker; a refusal or bad field → the form again with the upload kept; both by a random id,
    until the retry or the sweep. A search done, or a probe that cannot be used, lets the upload go."""
    fields = {"gallery": gallery_name, "case": case, "purpose": purpose, "justification": justification,
              "traditional_means": traditional_means, "probe_source": probe_source, "top_k": top_k,
              "face": face, "track": track, "every": every, "best_frames": best_frames, "fusion": fusion,
              "per_photo": per_photo, "enhancement": enhancement}
    await run_in_threadpool(retention.sweep_uploads, config.home, config.upload_max_age_s)
    paths: list[Path] = []
    kept_original: Path | None = None
    keep = keep_original = False
    try:
        paths = await _probe_files(config.home, probe, upload)
        kept_original = await _original_file(config.home, original, original_upload)
        request_ = forms.search_request(
            gallery=gallery_name, case=case, purpose=purpose, justification=justification,
            traditional_means=traditional_means, probe_source=probe_source, top_k=top_k, face=face, track=track,
            every=every, best_frames=best_frames, fusion=fusion, per_photo=per_photo, top_k_field="candidates")
        request_.probe, request_.more_probes = paths[0], tuple(paths[1:])
        request_.enhancement = enhancement
        request_.original = kept_original
        result = await worker.search_watched(request, config.home, actor, request_, True)
    except FaceChoiceNeeded as several:
        keep = keep_original = True
        return page(request, "search_new", **_form_context(ws, actor),
                    form={**fields, "upload": forms.upload_id(paths[0])}, faces=several.faces,
                    picking="track" if is_video(paths[0]) else "face", message=several.message,
                    kept=[p.name for p in paths], clip=is_video(paths[0]), original=_kept(kept_original))
    except LeadmatchError as exc:
        if getattr(exc, "reason", None) in NOT_ABOUT_THE_FORM:
            raise
        keep = bool(paths) and exc.field != "probe"          # the probe itself is unusable: choose another
        keep_original = kept_original is not None and exc.field != "original"
        error = wording.page_error(exc, forms.SEARCH_LABELS)
        return page(request, "search_new", status_of(exc), **_form_context(ws, actor),
                    form={**fields, "upload": forms.upload_id(paths[0]) if keep else ""}, faces=None, error=error,
                    kept=[p.name for p in paths] if keep else [], clip=keep and is_video(paths[0]),
                    original=_kept(kept_original) if keep_original else None)
    finally:
        if paths and not keep:
            forms.drop_upload(paths[0])  # the search kept its own copy, or the probe cannot be used
        if kept_original is not None and not keep_original:
            forms.drop_upload(kept_original)
    return RedirectResponse(f"/searches/{result['search_id']}", status_code=303)


async def _probe_files(home: Path, probe: list[UploadFile], upload: str) -> list[Path]:
    """The probe files: those chosen now (replacing a kept upload), else the upload kept under `upload`."""
    chosen = [(f.file, f.filename) for f in probe if f.filename]
    if chosen:
        paths = await run_in_threadpool(forms.store_uploads, home, chosen)
        if forms.UPLOAD_ID.fullmatch(upload or ""):
            forms.drop_upload(Path(home) / "uploads" / upload / forms.ORDER)  # replaced by the new choice
        return paths
    if upload:
        return forms.find_uploads(home, upload)
    return await run_in_threadpool(forms.store_uploads, home, [])  # nothing chosen: its one-line error


async def _original_file(home: Path, original: UploadFile | None, kept: str) -> Path | None:
    """An enhanced probe's original: the file chosen now, else the one kept from the last try, else None."""
    if original is not None and original.filename:
        return (await run_in_threadpool(forms.store_uploads, home, [(original.file, original.filename)]))[0]
    if kept:
        try:
            return forms.find_uploads(home, kept)[0]
        except LeadmatchError as exc:
            exc.field = "original"
            raise
    return None


def _kept(original: Path | None) -> dict | None:
    """A kept original as the form refers to it: its upload id and file name."""
    return None if original is None else {"upload": forms.upload_id(original), "name": original.name}
