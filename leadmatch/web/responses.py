"""What every response carries and how errors become answers: security headers on every response (pages,
PNGs, reports, redirects, 404s), request size limits, error pages without server paths, JSON errors for
the API."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadmatch.errors import DiskFull, FaceChoiceNeeded, LeadmatchError, ModelError, NotFound, Refused
from leadmatch.record.store import is_disk_full
from leadmatch.safetext import shown
from leadmatch.search import leads, report
from leadmatch.web import wording
from leadmatch.web.deps import COOKIE
from leadmatch.wire import error_to_dict

templates = report.templates


def plain(value) -> str:
    """A stored value as words for a page: lists joined by commas, mappings as 'key value', never a Python repr."""
    if isinstance(value, dict):
        return ", ".join(f"{str(k).replace('_', ' ')} {plain(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


templates.filters["plain"] = plain
templates.filters["words"] = wording.words
log = logging.getLogger("leadmatch.web")

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
SEARCH_UPLOADS = ("/search", "/search/upload", "/api/v1/searches")
SIGN_IN_AGAIN = ("not-signed-in", "session-expired", "disabled")


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP response, and no-store unless a route chose."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(SECURITY_HEADERS)]
                headers += SECURITY_HEADERS
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse (413) a request body over the limit, by its Content-Length or as it streams.
    Gallery enrollment and case media uploads get the larger enrollment limit."""

    def __init__(self, app, settings) -> None:
        self.app = app
        self.settings = settings

    def limit_for(self, path: str) -> int:
        if path.endswith("/enroll") or (path.startswith("/api/v1/cases/") and path.endswith("/media")):
            return self.settings.max_enroll_bytes  # a gallery's photos, or a case's photos and clips
        if path in SEARCH_UPLOADS:  # a probe may be a clip
            return self.settings.max_search_bytes
        return self.settings.max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(scope, send, limit)
        seen, started, over = 0, False, False

        async def counted_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise BodyTooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            if over and not started:  # the app's answer to a body cut short (FastAPI's "error parsing the
                return                # body", a 400): the 413 below goes instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            pass
        if over and not started:
            await _too_large(scope, send, limit)


async def _too_large(scope, send, limit: int) -> None:
    message = f"the request is larger than {limit // (1024 * 1024)} MiB"
    hint = ("cut the clip to the seconds that matter, or send a smaller photo" if scope["path"] in SEARCH_UPLOADS
            else "send a smaller photo, or enroll from a folder on the server")
    if scope["path"].startswith("/api/"):
        body = json.dumps({"error": {"kind": "InputError", "message": message, "hint": hint, "exit_code": 1}}).encode()
        kind = b"application/json"
    else:
        body = f"<!doctype html><title>Too large</title><p>{message} — {hint}</p>".encode()
        kind = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    """A server-rendered page with the lead-only banner, for the signed-in user if there is one."""
    context.setdefault("user", getattr(request.state, "actor", None))
    context.setdefault("csrf", getattr(request.state, "csrf", ""))
    html = templates.get_template(f"web/{name}.html").render(request=request, notice=leads.NOTICE, **context)
    return HTMLResponse(html, status_code=status)


def json_response(data, status: int = 200) -> Response:
    """JSON that also carries numpy numbers and dataclasses (evaluation results, verifications)."""
    return Response(json.dumps(data, ensure_ascii=False, default=_plain), status_code=status,
                    media_type="application/json")


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__dict__"):
        return value.__dict__
    return str(value)


def scrub(text: str, home: Path) -> str:
    """A message without server paths: uploads lose their folder, the workspace is called 'the workspace'."""
    for root in {str(home), str(Path(home).resolve())}:
        text = re.sub(re.escape(root) + r"/uploads/[^/\s]+/", "", text)
        text = text.replace(root, "<workspace>")
    return text


def status_of(exc: LeadmatchError) -> int:
    if isinstance(exc, Refused):
        return {"throttled": 429}.get(exc.reason, 401 if exc.reason in SIGN_IN_AGAIN + ("bad-credentials",) else 403)
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, FaceChoiceNeeded):
        return 409
    if isinstance(exc, ModelError):
        return 503
    if isinstance(exc, DiskFull):
        return 507
    return 400


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def install_error_handlers(app) -> None:
    """Leadmatch errors, validation errors, unknown paths and bugs: one clear answer each, no traceback and
    no server path; the API answers JSON {"error": {...}}, the pages an error page or the sign-in page."""

    @app.exception_handler(LeadmatchError)
    async def leadmatch_error(request: Request, exc: LeadmatchError):
        home = request.app.state.settings.home
        exc.message, exc.hint = scrub(exc.message, home), scrub(exc.hint, home)
        status = status_of(exc)
        if is_api(request):
            return json_response({"error": error_to_dict(exc)}, status)
        if status == 401:
            response = RedirectResponse("/login?why=" + exc.reason, status_code=303)
            response.delete_cookie(COOKIE)
            return response
        title = {403: "Refused", 404: "Not found", 429: "Refused"}.get(status, "Cannot do that")
        if getattr(exc, "reason", "") == "csrf":
            title = "Form refused"
        return page(request, "error", status, title=title, message=str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p not in ('body', 'query', 'path'))}: "
                             f"{e['msg']}" for e in exc.errors())
        error = LeadmatchError(f"invalid request — {problems}", "correct the field and try again")
        if is_api(request):
            return json_response({"error": error_to_dict(error)}, 400)
        return page(request, "error", 400, title="Cannot do that", message=str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = "no such page" if exc.status_code == 404 else (exc.detail if isinstance(exc.detail, str) else "")
        if is_api(request):
            return json_response({"error": {"kind": "NotFound" if exc.status_code == 404 else "LeadmatchError",
                                            "message": message, "hint": "check the address", "exit_code": 1}},
                                 exc.status_code)
        return page(request, "error", exc.status_code, title="Not found" if exc.status_code == 404 else "Error",
                    message=message)

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.OperationalError)
    async def storage_error(request: Request, exc: Exception):
        """A full disk is a clear 507 (transactions rolled back, temp files gone); any other is a bug."""
        if is_disk_full(exc):
            log.warning("disk full on %s: %s", shown(request.url.path), shown(exc))
            return await leadmatch_error(request, DiskFull())
        return await internal_error(request, exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("internal error on %s", shown(request.url.path))  # the server log keeps the traceback
        message = f"internal error ({type(exc).__name__}) — please report it"
        if is_api(request):
            response = json_response({"error": {"kind": "LeadmatchError", "message": message, "hint": "",
                                                "exit_code": 70}}, 500)
        else:
            response = page(request, "error", 500, title="Internal error", message=message)
        for key, value in SECURITY_HEADERS:  # this answer leaves outside the middleware stack
            response.headers[key.decode()] = value.decode()
        return response


#: Refusals about the user rather than the form: answered by the error page, not the form again.
WHOLE_PAGE = ("wrong-role", "disabled")


def refilled(request: Request, template: str, exc: LeadmatchError, fields: dict[str, wording.Field], form: dict,
             context: Callable[[], dict] = dict) -> HTMLResponse:
    """The form's page again, with what was typed (`form`), the message in its words, the fields marked, and
    `context()` for the rest of the page (read after the refusal, so it shows the record as it is now); a lost
    session still goes to sign in (the error handlers' answer), and a user without the role gets the
    refusal page, in words too (the page around the form is not theirs to see either)."""
    if status_of(exc) == 401:
        raise exc
    message, marked = wording.in_words(exc, fields)
    if getattr(exc, "reason", None) in WHOLE_PAGE:
        return page(request, "error", status_of(exc), title="Refused", message=message)
    return page(request, template, status_of(exc), form=form, problem=message, marked=marked, **context())


def attempt(request: Request, template: str, fields: dict[str, wording.Field], form: dict, act: Callable[[], object],
            context: Callable[[], dict] = dict):
    """`act()`'s answer, or on a leadmatch error the form's page refilled (`refilled`)."""
    try:
        return act()
    except LeadmatchError as exc:
        return refilled(request, template, exc, fields, form, context)
