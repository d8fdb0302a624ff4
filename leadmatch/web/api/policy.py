"""/api/v1/policy: the deployment policy (any signed-in user reads it; an admin changes it, audited)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from leadmatch.governance import policy
from leadmatch.web.deps import ApiUser, OpenWorkspace

router = APIRouter(prefix="/api/v1")


class PolicyChange(BaseModel):
    changes: dict


@router.get("/policy")
def policy_show(actor: ApiUser, ws: OpenWorkspace):
    return policy.show(ws, actor)


@router.post("/policy")
def policy_set(actor: ApiUser, ws: OpenWorkspace, body: PolicyChange):
    """Admin: change some fields (video_probes, case_media, enhanced_probes, min_candidates, max_candidates,
    required_course); audited with before and after."""
    return policy.update(ws, actor, body.changes)
