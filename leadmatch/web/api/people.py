"""Accounts (admin): list, add, grant and revoke roles, certify, disable."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from leadmatch.governance import accounts
from leadmatch.operations import people
from leadmatch.web.deps import ApiUser, OpenWorkspace

router = APIRouter(prefix="/api/v1")


class UserAdd(BaseModel):
    name: str = Field(max_length=64)
    roles: list[str] = Field(min_length=1, max_length=5)
    password: str = Field(max_length=1024)


class Certification(BaseModel):
    course: str = Field(accounts.DEFAULT_COURSE, max_length=200)
    completed: str = Field(max_length=20)
    expires: str | None = Field(None, max_length=20)


@router.get("/users")
def user_list(actor: ApiUser, ws: OpenWorkspace):
    return people.list_users(ws, actor)


@router.post("/users")
def user_add(actor: ApiUser, ws: OpenWorkspace, body: UserAdd):
    return people.add_user(ws, actor, body.name, body.roles, body.password)


@router.post("/users/{name}/certifications")
def user_certify(actor: ApiUser, ws: OpenWorkspace, name: str, body: Certification):
    return people.certify(ws, actor, name, body.course, body.completed, body.expires)


class RoleGrant(BaseModel):
    role: str = Field(max_length=40)


@router.post("/users/{name}/roles")
def user_grant(actor: ApiUser, ws: OpenWorkspace, name: str, body: RoleGrant):
    return people.grant_role(ws, actor, name, body.role)


@router.delete("/users/{name}/roles/{role}")
def user_revoke(actor: ApiUser, ws: OpenWorkspace, name: str, role: str):
    return people.revoke_role(ws, actor, name, role)


@router.post("/users/{name}/disable")
def user_disable(actor: ApiUser, ws: OpenWorkspace, name: str):
    return people.disable(ws, actor, name)
