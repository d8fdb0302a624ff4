"""The audit trail (verify, checkpoint, log, report), evaluation, retention."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from leadmatch.operations import galleries, oversight
from leadmatch.record import audit
from leadmatch.web import downloads, worker
from leadmatch.web.api.galleries import ServerPath
from leadmatch.web.deps import ApiUser, OpenWorkspace, ServiceSettings
from leadmatch.web.responses import json_response

router = APIRouter(prefix="/api/v1")


class Verify(BaseModel):
    expect_head: str | None = Field(None, max_length=64)
    checkpoint: dict | None = None


class Evaluation(ServerPath):
    enroll_first: int = Field(1, ge=1, le=100)
    holdout_subjects: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = 0
    face: Literal["largest", "central"] | None = None


@router.get("/audit/verify")
def audit_verify(actor: ApiUser, ws: OpenWorkspace, expect_head: str | None = None):
    return json_response(oversight.verify(ws, actor, expect_head))


@router.post("/audit/verify")
def audit_verify_checkpoint(actor: ApiUser, ws: OpenWorkspace, body: Verify):
    """Verify against a filed checkpoint, which the client sends (the file stays outside the system)."""
    return json_response(oversight.verify(ws, actor, body.expect_head, body.checkpoint))


@router.post("/audit/checkpoint")
def audit_checkpoint(actor: ApiUser, ws: OpenWorkspace):
    """Auditor: the signed head of the trail, for the client to file outside the system."""
    return json_response(oversight.checkpoint(ws, actor))


@router.get("/audit/log")
def audit_log(actor: ApiUser, ws: OpenWorkspace, case: str | None = None, user: str | None = None,
              since: str | None = None, limit: int | None = None, action: str | None = None,
              outcome: str | None = None, until: str | None = None):
    """Entries matching the filters, oldest first (with `limit`, the newest `limit`)."""
    return json_response(oversight.log(ws, actor, case, user, since, limit, action, outcome, until))


@router.get("/audit/entries")
def audit_entries(actor: ApiUser, ws: OpenWorkspace, case: str | None = None, user: str | None = None,
                  since: str | None = None, until: str | None = None, action: str | None = None,
                  outcome: str | None = None, page: int = 1, per_page: int = audit.PER_PAGE, upto: int | None = None):
    """One page of the entries matching the filters, newest first, each naming its objects (`upto`: the pages
    of the trail as an earlier answer had it)."""
    return json_response(oversight.log_page(ws, actor, case, user, since, until, action, outcome, page, per_page,
                                            upto))


@router.get("/audit/report")
def audit_report(actor: ApiUser, ws: OpenWorkspace, start: str, end: str, format: str = "json", stale_days: int = 30):
    return downloads.audit_report_response(ws, actor, start, end, format, stale_days)


@router.post("/evaluate")
async def evaluate(actor: ApiUser, ws: OpenWorkspace, config: ServiceSettings, body: Evaluation, request: Request):
    """An accuracy evaluation of labeled photos on the server (under --enroll-root), analyst or admin."""
    source = galleries.evaluation_source(ws, actor, config.deployment, body.path)
    result = await request.app.state.pool.call(worker.evaluate, str(source), body.enroll_first,
                                               body.holdout_subjects, body.seed, body.face, str(config.enroll_root))
    return json_response(result)


@router.post("/purge")
def purge(actor: ApiUser, ws: OpenWorkspace):
    return oversight.purge_expired(ws, actor)


@router.post("/purge/preview")
def purge_preview(actor: ApiUser, ws: OpenWorkspace):
    """Admin: what a purge would remove now, counted; nothing deleted (the preview is audited)."""
    return oversight.purge_preview(ws, actor)
