"""FastAPI dependencies: the service's settings, the workspace, the signed-in user (cookie or bearer token)
and the CSRF check of cookie-session forms. Each is a small function FastAPI calls per request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Form, Request

from leadmatch.governance import accounts, signin
from leadmatch.governance import csrf as csrf_tokens
from leadmatch.governance.accounts import Actor
from leadmatch.operations import Deployment
from leadmatch.record.workspace import Workspace, open_workspace
from leadmatch.search import video

COOKIE = "leadmatch_session"
LOGIN_COOKIE = "leadmatch_login"


@dataclass
class Settings:
    """What one running app serves: its workspace, session length, TLS, limits, the enroll root and the Ray
    cluster enrollments may run on."""

    home: Path
    session_hours: int = accounts.SESSION_HOURS
    tls: bool = False
    enroll_root: Path | None = None
    ray: str | None = None                       # the service's Ray cluster (serve --ray), if it has one
    max_body_bytes: int = 64 * 1024 * 1024       # any request: a probe photo and its form
    max_enroll_bytes: int = 1024 * 1024 * 1024   # a gallery enrollment upload
    max_search_bytes: int = 512 * 1024 * 1024    # a search upload: a video clip (the library allows 2 GiB)
    upload_max_age_s: int = 15 * 60              # abandoned face-picker uploads are swept after this
    max_clip_frames: int = video.MAX_SAMPLED_FRAMES  # frames one clip search may sample
    max_clip_seconds: float = video.MAX_ANALYSIS_S   # wall seconds one clip analysis may take
    throttle: accounts.SignInThrottle = field(default_factory=accounts.SignInThrottle)
    trusted_proxies: tuple = ()                  # serve --trusted-proxy: whose X-Forwarded-For is believed

    @property
    def deployment(self) -> Deployment:
        """What this service allows beyond the library's rules (its enroll root, its Ray cluster)."""
        return Deployment(service=True, enroll_root=self.enroll_root, ray=self.ray)


    def clip_budget(self) -> video.Budget:
        """What one clip search may cost on this service."""
        return video.Budget(self.max_clip_frames, self.max_clip_seconds)


def settings(request: Request) -> Settings:
    return request.app.state.settings


def client_address(request: Request) -> tuple[str | None, str | None]:
    """(address, peer) of a request: the TCP peer, and the client's address as `signin.client_address` reads
    it (the forwarded one only from a configured proxy)."""
    peer = request.client.host if request.client else None
    networks = signin.trusted_networks(request.app.state.settings.trusted_proxies)
    return signin.client_address(peer, request.headers.get("x-forwarded-for"), networks), peer


def workspace(request: Request) -> Iterator[Workspace]:
    """The workspace, opened for this request and closed after it."""
    ws = open_workspace(request.app.state.settings.home)
    request.state.ws = ws
    try:
        yield ws
    finally:
        ws.close()


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header (the API's only credential: no cookies, so no CSRF)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def api_user(request: Request, ws: Workspace = Depends(workspace)) -> Actor:
    """The API caller, from the bearer token; refused (401) without a live session."""
    actor = accounts.authenticate(ws, bearer_token(request))
    request.state.actor = actor
    return actor


def page_user(request: Request, ws: Workspace = Depends(workspace)) -> Actor:
    """The browser user, from the session cookie; a missing session sends the browser to sign in."""
    token = request.cookies.get(COOKIE)
    actor = accounts.authenticate(ws, token)
    request.state.actor = actor
    request.state.csrf = csrf_for(ws, token)
    return actor


def checked_form(request: Request, csrf: str = Form(""), actor: Actor = Depends(page_user),
                 ws: Workspace = Depends(workspace)) -> Actor:
    """A cookie-session form: refused (403, audited) before any of its fields is read unless it carries the
    session's CSRF token."""
    csrf_tokens.check(ws, actor, csrf, request.state.csrf, request.url.path)
    return actor


def csrf_for(ws: Workspace, token: str | None) -> str:
    """The CSRF token of a session (for the page to put in its forms)."""
    return csrf_tokens.token_for(ws, token)


#: The dependencies routes declare, as `Annotated` types: the API caller (bearer token), the workspace opened for
#: the request, the service's settings, and the browser user (cookie session; a form also checks its CSRF token).
ApiUser = Annotated[Actor, Depends(api_user)]
OpenWorkspace = Annotated[Workspace, Depends(workspace)]
ServiceSettings = Annotated[Settings, Depends(settings)]
PageUser = Annotated[Actor, Depends(page_user)]
FormUser = Annotated[Actor, Depends(checked_form)]
