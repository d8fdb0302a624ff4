"""API route for a gallery's face model (issue 23): switching it re-embeds and rebuilds (admin, audited)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from leadmatch.operations import galleries
from leadmatch.web.deps import ApiUser, OpenWorkspace
from leadmatch.web.responses import json_response

router = APIRouter(prefix="/api/v1")


class ModelChoice(BaseModel):
    model: str = Field(max_length=40)
    recompute: bool = False  # every face's FaceRes descriptor anew (a dlib+faceres gallery)


@router.post("/galleries/{name}/model")
def gallery_model(actor: ApiUser, ws: OpenWorkspace, name: str, body: ModelChoice):
    """Admin: make the gallery use face model `model` (dlib or dlib+faceres), re-embedding from the kept photos
    (`recompute`: every face's FaceRes descriptor, also for a gallery already on dlib+faceres)."""
    return json_response(galleries.switch_model(ws, actor, name, body.model, recompute=body.recompute))
