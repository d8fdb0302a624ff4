"""Web form for a gallery's face model (issue 23): an admin switches it from the gallery page."""

from __future__ import annotations

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse

from leadmatch.operations import galleries
from leadmatch.web.deps import FormUser, OpenWorkspace

router = APIRouter()


@router.post("/galleries/{name}/model")
def switch_model(actor: FormUser, ws: OpenWorkspace, name: str,
                 model: str = Form("")):
    """Admin: re-embed and rebuild the gallery for `model`; back to the gallery page (errors as every page's)."""
    galleries.switch_model(ws, actor, name, model)
    return RedirectResponse(f"/galleries/{name}", status_code=303)
