"""The browser's pages: server-rendered HTML and plain forms over the library (cookie sessions, CSRF on every
form), one router per resource like the API: signin (and each role's home), searches, cases, galleries, models
(a gallery's face model), oversight (the audit trail). No rule lives here: each route calls the library."""

from __future__ import annotations

from fastapi import APIRouter

from leadmatch.web.pages import cases, galleries, models, new_search, oversight, searches, signin
from leadmatch.web.pages import people, purposes, retention  # the admin's pages (issue 21)

router = APIRouter()
for resource in (signin, new_search, searches, galleries, models, oversight, cases):
    router.include_router(resource.router)
router.include_router(people.router)
router.include_router(purposes.router)
router.include_router(retention.router)
