"""/api/v1/policy: the deployment policy (any signed-in user reads it; an admin changes it, audited)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from leadmatch.governance import policy
from leadmatch.governance.accounts import Actor
from leadmatch.record.workspace import Workspace
from leadmatch.web.deps import api_user, workspace

router = APIRouter(prefix="/api/v1")


class PolicyChange(BaseModel):
    changes: dict


@router.get("/policy")
def policy_show(actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    return policy.show(ws, actor)


@router.post("/policy")
def policy_set(body: PolicyChange, actor: Actor = Depends(api_user), ws: Workspace = Depends(workspace)):
    """Admin: change some fields (video_probes, case_media, enhanced_probes, min_candidates, max_candidates,
    required_course); audited with before and after."""
    return policy.update(ws, actor, body.changes)
