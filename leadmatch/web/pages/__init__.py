"""The browser's pages: server-rendered HTML and plain forms over the library (cookie sessions, CSRF on every
form), one router per resource like the API: signin (and each role's home), new_search, searches, cases,
galleries, models (a gallery's face model), oversight (the audit trail), and the admin's people, purposes and
retention. No rule lives here: each route calls the library."""

from __future__ import annotations

from fastapi import APIRouter

from leadmatch.web.pages import cases, galleries, models, new_search, oversight, people, purposes, retention, searches
from leadmatch.web.pages import signin

router = APIRouter()
for resource in (signin, new_search, searches, galleries, models, oversight, cases, people, purposes, retention):
    router.include_router(resource.router)
