"""Searches and what follows them: search, list, show, the lead report; dispositions, corroboration, closure.

Reading a search also says what the reader may do next (`may`), so no front end re-derives the workflow's
rules (who dispositions, who reviews) from the record.
"""

from __future__ import annotations

from pathlib import Path

from leadmatch.governance import accounts, casework, purposes, retention
from leadmatch.governance.accounts import Actor
from leadmatch.gallery import galleries
from leadmatch.record.workspace import Workspace
from leadmatch.search import probes, report
from leadmatch.search import run as searching
from leadmatch.search.run import SearchRequest
from leadmatch.search.video import is_video


def search(ws: Workspace, actor: Actor, request: SearchRequest) -> dict:
    """Agent: search a probe against an authorized gallery → ranked, lead-only candidates (audited). A clip's
    analysis is kept a while (`retention.clip_analyses`, unless the caller keeps it elsewhere), so the search
    after a track pick does not decode the clip again."""
    if request.keep_analysis is None and is_video(Path(request.probe)):
        request.keep_analysis = retention.clip_analyses(ws.home)
    return searching.run(ws, actor, request)


def search_form(ws: Workspace, actor: Actor) -> dict:
    """Agent: what a new search may name — the galleries, the authorized purposes, the fusion rules."""
    accounts.require(ws, actor, "agent", "search.form")
    return {"galleries": galleries.list_all(ws, actor), "purposes": purposes.list_all(ws),
            "fusions": list(probes.FUSIONS)}


def listing(ws: Workspace, actor: Actor, case: str | None = None, status: str | None = None) -> list[dict]:
    """Searches the actor may see (agents their own), newest first."""
    return casework.listing(ws, actor, case or None, status or None)


def review_queue(ws: Workspace, actor: Actor) -> list[dict]:
    """Reviewer: searches awaiting review, oldest first (the longest waiting on top)."""
    accounts.require(ws, actor, "reviewer", "search.review-queue")
    return casework.listing(ws, actor, None, casework.AWAITING_REVIEW, oldest_first=True)


def show(ws: Workspace, actor: Actor, search_id: str) -> dict:
    """One search: probe, candidates, dispositions, corroboration, closure, history, its progress and who acts
    next (`progress`), and what `actor` may do (`may`)."""
    record = searching.show(ws, actor, search_id)
    return {**record, "progress": casework.progress(record), "may": casework.may(actor, record)}


def report_html(ws: Workspace, actor: Actor, search_id: str) -> str:
    """The lead report of a search: one self-contained, printable HTML document (audited)."""
    return report.render(ws, actor, search_id)


def disposition(ws: Workspace, actor: Actor, search_id: str, rank: int, decision: str, note: str) -> dict:
    return casework.disposition(ws, actor, search_id, rank, decision, note)


def corroborate(ws: Workspace, actor: Actor, search_id: str, rank: int, evidence_type: str, evidence: str,
                reference: str, outcome: str) -> dict:
    return casework.corroborate(ws, actor, search_id, rank, evidence_type, evidence, reference, outcome)


def close(ws: Workspace, actor: Actor, search_id: str, outcome: str, note: str, rank: int | None = None) -> dict:
    return casework.close(ws, actor, search_id, outcome, note, rank)
