"""The search pages: the lists, one search with its candidates, and the disposition, corroboration and closure
forms (a new search is `new_search`).

No rule lives here: each route calls the library, whose gate refuses (and audits) what a role may not do.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.errors import InputError, LeadmatchError
from leadmatch.governance import casework
from leadmatch.governance.accounts import Actor
from leadmatch.operations import searches
from leadmatch.record.workspace import Workspace
from leadmatch.search import crops
from leadmatch.web import forms
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser
from leadmatch.web.downloads import png, report_response
from leadmatch.web.responses import page, status_of
from leadmatch.web.wording import in_page_words

router = APIRouter()


@router.get("/searches", response_class=HTMLResponse)
def search_list(actor: PageUser, ws: OpenWorkspace, request: Request, status: str = "", case: str = ""):
    return page(request, "searches", rows=searches.listing(ws, actor, case, status),
                status_filter=status, case=case, statuses=casework.STATUSES)


@router.get("/review", response_class=HTMLResponse)
def review_queue(actor: PageUser, ws: OpenWorkspace, request: Request):
    return page(request, "searches", rows=searches.review_queue(ws, actor), heading="Awaiting review, oldest first",
                empty="Nothing is waiting for review.", status_filter=casework.AWAITING_REVIEW, case="",
                statuses=casework.STATUSES)


@router.get("/searches/{search_id}", response_class=HTMLResponse)
def search_page(actor: PageUser, ws: OpenWorkspace, request: Request, search_id: str):
    return review_page(request, ws, actor, search_id)


def review_page(request: Request, ws: Workspace, actor: Actor, search_id: str, status: int = 200,
                problem: dict | None = None) -> HTMLResponse:
    """One search as its reader works on it; `problem` (a refused form: which, its fields, the message and the
    field concerned) puts the form back filled in, the message beside it."""
    record = searches.show(ws, actor, search_id)
    if problem:  # beside its form, or at the top when that form is not on the page (a rank that is no candidate)
        problem["top"] = not form_shown(record, problem["form"], (problem["fields"].get("rank") or "").strip())
    return page(request, "search", status, s=record, decisions=casework.DECISIONS, large=crops.LARGE,
                evidence_types=casework.EVIDENCE_TYPES, outcomes=casework.OUTCOMES,
                is_agent=record["may"]["disposition"], is_reviewer=record["may"]["review"], problem=problem or {})


def form_shown(record: dict, form: str, rank: str) -> bool:
    """Whether the search page shows `form` (for candidate `rank`): as search.html decides from `may` and state."""
    decided = {str(c["rank"]): (c.get("disposition") or {}).get("decision") for c in record["candidates"]}
    if form == "disposition":
        return record["may"]["disposition"] and record["status"] == casework.AWAITING_DISPOSITION and \
            rank in decided and decided[rank] is None
    reviewing = record["may"]["review"] and record["status"] == casework.AWAITING_REVIEW
    return reviewing and (form == "close" or decided.get(rank) == "possible-lead")


@router.get("/searches/{search_id}/compare/{rank}", response_class=HTMLResponse)
def compare_page(actor: PageUser, ws: OpenWorkspace, request: Request, search_id: str, rank: str):
    """Probe and candidate `rank` aligned on the eyes, side by side, overlaid and wiped; its other photos."""
    record = searches.show(ws, actor, search_id)
    number = forms.whole_number(rank, "rank", 1, len(record["candidates"]) or 1)
    ranks = [c["rank"] for c in record["candidates"]]
    if number not in ranks:
        raise InputError(f"search {search_id} has no candidate at rank {number}", "pick a listed candidate")
    return page(request, "compare", s=record, c=record["candidates"][ranks.index(number)], decisions=casework.DECISIONS,
                previous=number - 1 if number > 1 else None, next=number + 1 if number < len(ranks) else None,
                is_agent=record["may"]["disposition"], large=crops.LARGE, problem={})


@router.get("/searches/{search_id}/probe.png")
def probe_png(actor: PageUser, ws: OpenWorkspace, search_id: str, size: str = "", style: str = ""):
    """The probe's face (the best frame of a clip, the first of several stills); ?size= up to crops.LARGE,
    ?style= crop (default), chip (aligned on the eyes) or photo (the whole photo)."""
    return png(crops.probe_crop(ws, actor, search_id, crop_size(size), crop_style(style)))


@router.get("/searches/{search_id}/frames/{number}.png")
def frame_png(actor: PageUser, ws: OpenWorkspace, search_id: str, number: str, size: str = "", style: str = ""):
    """Probe face `number` of a search with several (a video frame or a still)."""
    return png(crops.probe_frame_crop(ws, actor, search_id, forms.whole_number(number, "frame", 1, 100),
                                      crop_size(size), crop_style(style)))


@router.get("/searches/{search_id}/candidates/{rank}.png")
def candidate_png(actor: PageUser, ws: OpenWorkspace, search_id: str, rank: str, size: str = "", face: str = "",
                  style: str = ""):
    """Candidate `rank`'s face; with ?face=<face id>, another matched photo of that subject."""
    return png(crops.candidate_crop(ws, actor, search_id, forms.whole_number(rank, "rank", 1, 50), crop_size(size),
                                    face_id=forms.optional_number(face, "face", 1, 2**62), style=crop_style(style)))


def crop_size(value: str) -> int:
    """A crop's requested size in px: crops.SIZE unless asked, at most crops.LARGE (the enlarged view)."""
    return forms.optional_number(value, "size", 64, crops.LARGE) or crops.SIZE


def crop_style(value: str) -> str:
    """crop (default), chip or photo, or an InputError naming them."""
    if (value or "crop") not in crops.STYLES:
        raise InputError(f"style {value!r} is not a face image style", f"use one of: {', '.join(crops.STYLES)}")
    return value or "crop"


@router.get("/searches/{search_id}/report")
def report_download(actor: PageUser, ws: OpenWorkspace, search_id: str):
    return report_response(ws, actor, search_id)


@router.post("/searches/{search_id}/disposition")
def disposition(actor: FormUser, ws: OpenWorkspace, request: Request, search_id: str,
                rank: str = Form(""), decision: str = Form(""), note: str = Form("")):
    fields = {"rank": rank, "decision": decision, "note": note}
    return decide(request, ws, actor, search_id, "disposition", fields, lambda: searches.disposition(
        ws, actor, search_id, forms.whole_number(rank, "rank", 1, 50), decision, note))


@router.post("/searches/{search_id}/corroborate")
def corroborate(actor: FormUser, ws: OpenWorkspace, request: Request, search_id: str,
                rank: str = Form(""), evidence_type: str = Form(""), evidence: str = Form(""),
                reference: str = Form(""), outcome: str = Form(""), confirmed: str = Form("")):
    fields = {"rank": rank, "evidence_type": evidence_type, "evidence": evidence, "reference": reference,
              "outcome": outcome}
    if confirmed == "no":
        return changing(request, ws, actor, search_id, "corroborate", fields)
    if confirmed != "yes" and evidence_type and outcome and evidence.strip() and reference.strip():
        return confirm_page(request, ws, actor, search_id, "corroborate", fields)
    return decide(request, ws, actor, search_id, "corroborate", fields, lambda: searches.corroborate(
        ws, actor, search_id, forms.whole_number(rank, "rank", 1, 50), evidence_type, evidence, reference, outcome))


@router.post("/searches/{search_id}/close")
def close(actor: FormUser, ws: OpenWorkspace, request: Request, search_id: str,
          outcome: str = Form(""), note: str = Form(""), rank: str = Form(""), confirmed: str = Form("")):
    fields = {"outcome": outcome, "note": note, "rank": rank}
    if confirmed == "no":
        return changing(request, ws, actor, search_id, "close", fields)
    if confirmed != "yes" and outcome == "identified" and note.strip() and rank.strip().isdigit():
        return confirm_page(request, ws, actor, search_id, "close", fields)
    return decide(request, ws, actor, search_id, "close", fields, lambda: searches.close(
        ws, actor, search_id, outcome, note, forms.optional_number(rank, "rank", 1, 50)))


def decide(request: Request, ws: Workspace, actor: Actor, search_id: str, form: str, fields: dict, act):
    """Run one decision (`act`); done → back to the search at the next candidate to decide; refused → the
    search page again with this form filled in and the message beside the field concerned (sign-in problems go
    to the sign-in page as everywhere)."""
    try:
        act()
    except LeadmatchError as exc:
        status = status_of(exc)
        if status == 401:
            raise
        message, field = in_page_words(exc)
        return review_page(request, ws, actor, search_id, status,
                           {"form": form, "fields": fields, "message": message, "field": field})
    return RedirectResponse(f"/searches/{search_id}{next_anchor(ws, actor, search_id, fields.get('rank'))}",
                            status_code=303)


def next_anchor(ws: Workspace, actor: Actor, search_id: str, rank: str | None) -> str:
    """'#c<rank>': the page opens again at the card just decided, not at the top."""
    if not rank or not rank.strip().isdigit():
        return ""
    return f"#c{rank.strip()}"


def changing(request: Request, ws: Workspace, actor: Actor, search_id: str, form: str, fields: dict):
    """Back from a confirmation to change it: the search page with that form still filled in, nothing recorded."""
    return review_page(request, ws, actor, search_id, 200, {"form": form, "fields": fields, "field": None,
                                                           "message": "Not recorded: change what you need, then send it again."})


def confirm_page(request: Request, ws: Workspace, actor: Actor, search_id: str, form: str, fields: dict):
    """The step before a final one: what is about to be recorded, naming the candidate, with the same fields sent
    again (confirmed) or a way back to change them."""
    record = searches.show(ws, actor, search_id)
    rank = (fields.get("rank") or "").strip()
    candidate = next((c for c in record["candidates"] if str(c["rank"]) == rank), None)
    return page(request, "confirm", s=record, form=form, fields=fields, candidate=candidate)
