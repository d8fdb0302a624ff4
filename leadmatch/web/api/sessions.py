"""Sign-in and out, who am I, the rules of behavior, the authorized purposes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from leadmatch.governance import accounts
from leadmatch.operations import people, sessions
from leadmatch.web.deps import ApiUser, OpenWorkspace, ServiceSettings, bearer_token, client_address

router = APIRouter(prefix="/api/v1")


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    hours: int = Field(accounts.SESSION_HOURS, ge=1, le=24)


class PurposeAdd(BaseModel):
    name: str = Field(max_length=200)


@router.post("/login")
def login(ws: OpenWorkspace, config: ServiceSettings, body: Login, request: Request):
    """Password → bearer token (only its sha256 is stored), throttled per account at an address and per address."""
    address, peer = client_address(request)
    return sessions.login(ws, body.name, body.password, body.hours, throttle=config.throttle, address=address,
                          peer=peer)


@router.post("/logout")
def logout(actor: ApiUser, ws: OpenWorkspace, request: Request):
    return sessions.logout(ws, bearer_token(request))


@router.get("/whoami")
def whoami(actor: ApiUser, ws: OpenWorkspace):
    return {**sessions.whoami(ws, actor), "mode": "service"}


@router.post("/accept-rules")
def accept_rules(actor: ApiUser, ws: OpenWorkspace):
    """Record that the caller accepted the rules of behavior (the text is in GET /rules)."""
    return sessions.accept_rules(ws, actor)


@router.get("/rules")
def rules(actor: ApiUser):
    return sessions.rules()


@router.get("/purposes")
def purpose_list(actor: ApiUser, ws: OpenWorkspace):
    return people.list_purposes(ws)


@router.post("/purposes")
def purpose_add(actor: ApiUser, ws: OpenWorkspace, body: PurposeAdd):
    """Admin: authorize a new search purpose; answers its name as stored."""
    return people.add_purpose(ws, actor, body.name)


@router.get("/purposes/retired")
def purpose_retired(actor: ApiUser, ws: OpenWorkspace):
    """The retired purposes, with when and by whom."""
    return people.retired_purposes(ws)


@router.post("/purposes/{name}/retire")
def purpose_retire(actor: ApiUser, ws: OpenWorkspace, name: str):
    """Admin: retire a search purpose (no new search may name it; the searches that did keep it)."""
    return people.retire_purpose(ws, actor, name)
