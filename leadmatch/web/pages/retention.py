"""Retention (admin): the purge preview — what a purge would remove now, counted, nothing deleted (audited as
a preview) — and the purge itself, which the page asks to confirm with those counts. The library decides what
is due and audits both."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from leadmatch.operations import oversight
from leadmatch.web.deps import FormUser, OpenWorkspace, PageUser
from leadmatch.web.responses import page

router = APIRouter()


@router.get("/purge", response_class=HTMLResponse)
def purge_preview(actor: PageUser, ws: OpenWorkspace, request: Request):
    return page(request, "purge", p=oversight.purge_preview(ws, actor))


@router.post("/purge", response_class=HTMLResponse)
def purge(actor: FormUser, ws: OpenWorkspace, request: Request):
    """Admin: purge what is due now (the page showed the preview and asked); the answer lists what went."""
    return page(request, "purged", r=oversight.purge_expired(ws, actor))
