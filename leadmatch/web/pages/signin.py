"""Sign-in, sign-out and each role's home page (cookie sessions; login CSRF by a double-submit cookie)."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from leadmatch.errors import LeadmatchError
from leadmatch.operations import home, sessions
from leadmatch.web.deps import COOKIE, LOGIN_COOKIE, FormUser, OpenWorkspace, PageUser, ServiceSettings, client_address
from leadmatch.web.responses import page

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, why: str = ""):
    nonce = secrets.token_urlsafe(24)  # login CSRF: a double-submit cookie before any session exists
    response = page(request, "login", user=None, csrf=nonce, why=why)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", max_age=600,
                        secure=request.app.state.settings.tls)
    return response


@router.post("/login")
def login(ws: OpenWorkspace, config: ServiceSettings, request: Request, name: str = Form(""),
          password: str = Form(""), csrf: str = Form("")):
    if not csrf or not hmac.compare_digest(csrf, request.cookies.get(LOGIN_COOKIE, "")):
        return page(request, "error", 403, user=None, csrf="", title="Form refused",
                    message="The sign-in form expired. Reload the page and try again.")
    try:
        address, peer = client_address(request)
        token = sessions.login(ws, name, password, config.session_hours, throttle=config.throttle,
                               address=address, peer=peer)["token"]
    except LeadmatchError as exc:
        status = 429 if getattr(exc, "reason", "") == "throttled" else 401
        return page(request, "login", status, user=None, csrf=csrf, why="", error=str(exc))
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=config.session_hours * 3600,
                        secure=config.tls)
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(actor: FormUser, ws: OpenWorkspace, request: Request):
    sessions.logout(ws, request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def home_page(actor: PageUser, ws: OpenWorkspace, request: Request):
    return page(request, "home", roles=sorted(actor.roles), queues=home.queues(ws, actor),
                policy=sessions.whoami(ws, actor)["policy"])
