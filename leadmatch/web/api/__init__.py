"""The JSON API, /api/v1: the same library as the pages, for the CLI's client mode and other programs.

The only credential is `Authorization: Bearer <token>` (from POST /api/v1/login); cookies are ignored here,
so a browser cannot be tricked into calling it and no CSRF token is needed. Errors are
{"error": {kind, message, hint, reason, exit_code}} with an HTTP status (401 sign-in, 403 refused, 404, 409
pick a face, 429 throttled, 400 bad input). Every time is the service's own clock; no route takes one.

One router per resource: sessions, people, searches, galleries, oversight, and beside them media, policy and
models (case media and persons, the deployment policy, a gallery's face model)."""

from __future__ import annotations

from fastapi import APIRouter

from leadmatch.web.api import galleries, media, models, oversight, people, policy, searches, sessions

router = APIRouter()
for resource in (sessions, people, searches, galleries, oversight, media, policy, models):
    router.include_router(resource.router)
