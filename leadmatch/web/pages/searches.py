"""The search pages: the lists, one search with its candidates, and the disposition, corroboration and closure
forms (a new search is `new_search`).

No rule lives here: each route calls the library, whose gate refuses (and audits) what a role may not do.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.governance import casework
from leadmatch.operations import searches
from leadmatch.search import crops
from leadmatch.web import forms
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser
from leadmatch.web.downloads import png, report_response
from leadmatch.web.responses import page

router = APIRouter()


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
