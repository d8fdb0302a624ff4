"""The gallery pages: the list, and one gallery with its enrollment results and index health."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from leadmatch.operations import galleries
from leadmatch.web.deps import OpenWorkspace, PageUser
from leadmatch.web.responses import page

router = APIRouter()


@router.get("/galleries", response_class=HTMLResponse)
def gallery_list(actor: PageUser, ws: OpenWorkspace, request: Request):
    return page(request, "galleries", galleries=galleries.list_galleries(ws, actor))


@router.get("/galleries/{name}", response_class=HTMLResponse)
def gallery_page(actor: PageUser, ws: OpenWorkspace, request: Request, name: str):
    return page(request, "gallery", g=galleries.show(ws, actor, name, refusals=True))
