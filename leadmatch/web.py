"""The local web app: server-rendered pages and plain forms over the same library as the CLI.

No rule lives here: every page calls the library, whose gate refuses (and audits) what a role may not do;
the web layer turns a refusal into 403 and a missing sign-in into the sign-in page. Sessions are the
library's sessions in an HttpOnly, SameSite=Strict cookie; every form carries a CSRF token bound to the
session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import shutil
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from . import accounts, audit, casework, crops, gallery, leads, oversight, purposes, report
from . import search as searching
from .errors import FaceChoiceNeeded, InputError, LeadmatchError, NotFound, Refused
from .photos import sha256_bytes
from .store import transaction
from .workspace import Workspace, open_workspace

COOKIE = "leadmatch_session"
LOGIN_COOKIE = "leadmatch_login"
templates = report.templates


def create_app(home: Path, session_hours: int = accounts.SESSION_HOURS) -> FastAPI:
    """The app for the workspace at `home`."""
    app = FastAPI(title="leadmatch", docs_url=None, redoc_url=None, openapi_url=None)
    home = Path(home)
    open_workspace(home).close()  # fail at start, not at the first request, if there is no workspace

    def workspace() -> Workspace:
        return open_workspace(home)

    def csrf_secret(ws: Workspace) -> bytes:
        row = ws.conn.execute("SELECT value FROM settings WHERE key = 'csrf_secret'").fetchone()
        if row:
            return bytes.fromhex(row[0])
        with transaction(ws.conn):
            ws.conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES ('csrf_secret', ?)",
                            (secrets.token_hex(32),))
        return csrf_secret(ws)

    def csrf_for(ws: Workspace, token: str) -> str:
        return hmac.new(csrf_secret(ws), token.encode(), hashlib.sha256).hexdigest()

    def page(name: str, request: Request, http_status: int = 200, **context) -> HTMLResponse:
        html = templates.get_template(f"web/{name}.html").render(request=request, notice=leads.NOTICE, **context)
        return HTMLResponse(html, status_code=http_status, headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
                                       "form-action 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    class Context:
        """Per request: the workspace, the signed-in user and their CSRF token."""

        def __init__(self, request: Request):
            self.request = request
            self.ws = workspace()
            token = request.cookies.get(COOKIE)
            self.actor = accounts.authenticate(self.ws, token)
            self.csrf = csrf_for(self.ws, token)

        def render(self, name: str, http_status: int = 200, **context) -> HTMLResponse:
            return page(name, self.request, http_status, user=self.actor, csrf=self.csrf, **context)

    def handle(request: Request, work, form: dict | None = None):
        """Run `work(ctx)` for a signed-in user, checking CSRF on forms; map errors to pages."""
        ctx = None
        try:
            ctx = Context(request)
            if form is not None and not hmac.compare_digest(str(form.get("csrf", "")), ctx.csrf):
                audit.record(ctx.ws.conn, ctx.actor.name, "web.form", "refused",
                             objects={"path": request.url.path}, reason="csrf: form without a valid CSRF token")
                return ctx.render("error", 403, title="Form refused",
                                  message="This form has no valid CSRF token. Reload the page and try again.")
            return work(ctx)
        except Refused as exc:
            if exc.reason in ("not-signed-in", "session-expired", "disabled"):
                response = RedirectResponse("/login?why=" + exc.reason, status_code=303)
                response.delete_cookie(COOKIE)
                return response
            return error_page(request, ctx, 403, "Refused", str(exc))
        except NotFound as exc:
            return error_page(request, ctx, 404, "Not found", str(exc))
        except LeadmatchError as exc:
            return error_page(request, ctx, 400, "Cannot do that", str(exc))
        except Exception as exc:  # no traceback reaches a user; the server log keeps it
            import logging

            logging.getLogger("leadmatch.web").exception("internal error on %s", request.url.path)
            return error_page(request, ctx, 500, "Internal error", f"{type(exc).__name__} — please report it")
        finally:
            if ctx is not None:
                ctx.ws.close()

    def error_page(request, ctx, status, title, message):
        if ctx is None:
            return page("error", request, status, user=None, csrf="", title=title, message=message)
        return ctx.render("error", status, title=title, message=message)

    # Sign-in -------------------------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, why: str = ""):
        nonce = secrets.token_urlsafe(24)  # login CSRF: a double-submit cookie before any session exists
        response = page("login", request, user=None, csrf=nonce, why=why)
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", max_age=600)
        return response

    @app.post("/login")
    def login(request: Request, name: str = Form(...), password: str = Form(...), csrf: str = Form("")):
        if not csrf or not hmac.compare_digest(csrf, request.cookies.get(LOGIN_COOKIE, "")):
            return page("error", request, 403, user=None, csrf="", title="Form refused",
                        message="The sign-in form expired. Reload the page and try again.")
        ws = workspace()
        try:
            token, _, _ = accounts.login(ws, name, password, session_hours)
        except LeadmatchError as exc:
            return page("login", request, 401, user=None, csrf=csrf, why="", error=str(exc))
        finally:
            ws.close()
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=session_hours * 3600)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request):
        form = dict(await request.form())

        def work(ctx):
            accounts.logout(ctx.ws, request.cookies.get(COOKIE))
            response = RedirectResponse("/login", status_code=303)
            response.delete_cookie(COOKIE)
            return response
        return handle(request, work, form)

    # Pages ---------------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def home_page(request: Request):
        return handle(request, lambda ctx: ctx.render("home", roles=sorted(ctx.actor.roles)))

    @app.get("/search/new", response_class=HTMLResponse)
    def search_form(request: Request):
        def work(ctx):
            accounts.require(ctx.ws, ctx.actor, "agent", "web.search-form")
            return ctx.render("search_new", galleries=gallery.list_all(ctx.ws, ctx.actor),
                              purposes=purposes.list_all(ctx.ws), form={}, faces=None)
        return handle(request, work)

    @app.post("/search", response_class=HTMLResponse)
    async def search_submit(request: Request):
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("probe")
        data = await upload.read() if hasattr(upload, "read") else b""
        filename = getattr(upload, "filename", "") or ""

        def work(ctx):
            probe = _probe_file(ctx.ws, fields.get("upload", ""), data, filename)
            face = fields.get("face") or None
            request_ = searching.SearchRequest(
                probe=probe, gallery=fields.get("gallery", ""), case=fields.get("case", ""),
                purpose=fields.get("purpose", ""), justification=fields.get("justification", ""),
                traditional_means=fields.get("traditional_means", ""),
                probe_source=fields.get("probe_source", "original"),
                top_k=int(fields.get("top_k") or leads.DEFAULT_CANDIDATES),
                face=(face if face == "largest" else int(face)) if face else None)
            try:
                result = searching.run(ctx.ws, ctx.actor, request_)
            except FaceChoiceNeeded as several:  # keep the upload for the second round
                pixels = probe.read_bytes()
                faces = [{**f, "image": "data:image/png;base64," + base64.b64encode(
                    crops.face_crop_png(pixels, f["box"], size=140)).decode()} for f in several.faces]
                return ctx.render("search_new", galleries=gallery.list_all(ctx.ws, ctx.actor),
                                  purposes=purposes.list_all(ctx.ws), form={**fields, "upload": probe.parent.name},
                                  faces=faces)
            except LeadmatchError:
                shutil.rmtree(probe.parent, ignore_errors=True)
                raise
            shutil.rmtree(probe.parent, ignore_errors=True)  # the search kept its own copy of the probe
            return RedirectResponse(f"/searches/{result['search_id']}", status_code=303)
        return handle(request, work, fields)

    @app.get("/searches", response_class=HTMLResponse)
    def search_list(request: Request, status: str = "", case: str = ""):
        return handle(request, lambda ctx: ctx.render(
            "searches", rows=casework.listing(ctx.ws, ctx.actor, case or None, status or None),
            status_filter=status, case=case, statuses=casework.STATUSES))

    @app.get("/review", response_class=HTMLResponse)
    def review_queue(request: Request):
        def work(ctx):
            accounts.require(ctx.ws, ctx.actor, "reviewer", "web.review-queue")
            return ctx.render("searches", rows=casework.listing(ctx.ws, ctx.actor, None, casework.AWAITING_REVIEW),
                              status_filter=casework.AWAITING_REVIEW, case="", statuses=casework.STATUSES)
        return handle(request, work)

    @app.get("/searches/{search_id}", response_class=HTMLResponse)
    def search_page(request: Request, search_id: str):
        def work(ctx):
            record = searching.show(ctx.ws, ctx.actor, search_id)
            return ctx.render("search", s=record, decisions=casework.DECISIONS,
                              evidence_types=casework.EVIDENCE_TYPES, outcomes=casework.OUTCOMES,
                              is_agent=record["agent"] == ctx.actor.name and ctx.actor.has("agent"),
                              is_reviewer=ctx.actor.has("reviewer") and record["agent"] != ctx.actor.name)
        return handle(request, work)

    @app.get("/searches/{search_id}/probe.png")
    def probe_png(request: Request, search_id: str):
        return handle(request, lambda ctx: _png(crops.probe_crop(ctx.ws, ctx.actor, search_id)))

    @app.get("/searches/{search_id}/candidates/{rank}.png")
    def candidate_png(request: Request, search_id: str, rank: int):
        return handle(request, lambda ctx: _png(crops.candidate_crop(ctx.ws, ctx.actor, search_id, rank)))

    @app.get("/searches/{search_id}/report")
    def report_download(request: Request, search_id: str):
        return handle(request, lambda ctx: HTMLResponse(
            report.render(ctx.ws, ctx.actor, search_id),
            headers={"Content-Disposition": f'attachment; filename="lead-report-{search_id}.html"',
                     "Cache-Control": "no-store"}))

    @app.post("/searches/{search_id}/disposition")
    async def disposition(request: Request, search_id: str):
        form = dict(await request.form())
        return handle(request, lambda ctx: _back(search_id, casework.disposition(
            ctx.ws, ctx.actor, search_id, int(form.get("rank", 0)), form.get("decision", ""), form.get("note", ""))),
            form)

    @app.post("/searches/{search_id}/corroborate")
    async def corroborate(request: Request, search_id: str):
        form = dict(await request.form())
        return handle(request, lambda ctx: _back(search_id, casework.corroborate(
            ctx.ws, ctx.actor, search_id, int(form.get("rank", 0)), form.get("evidence_type", ""),
            form.get("evidence", ""), form.get("reference", ""), form.get("outcome", ""))), form)

    @app.post("/searches/{search_id}/close")
    async def close(request: Request, search_id: str):
        form = dict(await request.form())
        rank = int(form["rank"]) if form.get("rank") else None
        return handle(request, lambda ctx: _back(search_id, casework.close(
            ctx.ws, ctx.actor, search_id, form.get("outcome", ""), form.get("note", ""), rank)), form)

    @app.get("/galleries", response_class=HTMLResponse)
    def gallery_list(request: Request):
        def work(ctx):
            accounts.require(ctx.ws, ctx.actor, ("analyst", "admin", "auditor"), "web.galleries")
            return ctx.render("galleries", galleries=gallery.list_all(ctx.ws, ctx.actor))
        return handle(request, work)

    @app.get("/galleries/{name}", response_class=HTMLResponse)
    def gallery_page(request: Request, name: str):
        def work(ctx):
            accounts.require(ctx.ws, ctx.actor, ("analyst", "admin", "auditor"), "web.gallery")
            return ctx.render("gallery", g=gallery.show(ctx.ws, ctx.actor, name, with_refusals=True))
        return handle(request, work)

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, case: str = "", user: str = "", since: str = ""):
        def work(ctx):
            rows = oversight.log(ctx.ws, ctx.actor, case or None, user or None, since or None, limit=500)
            check = oversight.verify(ctx.ws, ctx.actor)
            return ctx.render("audit", rows=rows, check=check, case=case, user_filter=user, since=since)
        return handle(request, work)

    @app.get("/audit/report")
    def audit_report(request: Request, start: str = "", end: str = "", format: str = "csv"):
        def work(ctx):
            if format not in ("csv", "json"):
                raise InputError(f"format {format!r} is not supported", "use csv or json")
            data = oversight.report(ctx.ws, ctx.actor, start, end)
            body = audit.report_csv(data) if format == "csv" else __import__("json").dumps(data, indent=2)
            return Response(body, media_type="text/csv" if format == "csv" else "application/json", headers={
                "Content-Disposition": f'attachment; filename="audit-report-{start}-{end}.{format}"'})
        return handle(request, work)

    return app


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, no-store"})


def _back(search_id: str, _result) -> RedirectResponse:
    return RedirectResponse(f"/searches/{search_id}", status_code=303)


def _probe_file(ws: Workspace, upload_id: str, data: bytes, filename: str) -> Path:
    """Keep an uploaded probe under <home>/uploads/<sha256>/ until the search has its own copy; a face-pick
    round trip refers back to it by its hash."""
    root = ws.home / "uploads"
    if upload_id:
        if not re.fullmatch(r"[0-9a-f]{64}", upload_id):
            raise InputError("the uploaded photo reference is not valid", "upload the photo again")
        found = sorted((root / upload_id).glob("*"))
        if not found:
            raise InputError("the uploaded photo is no longer here", "upload the photo again")
        return found[0]
    if not data and not filename:
        raise InputError("no probe photo was uploaded", "choose a photo file")
    # Not decoded here: the search decodes it, and refuses (and audits) a bad file with its reason.
    digest = sha256_bytes(data)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name)[:100] or "probe"
    folder = root / digest
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def serve(home: Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the app with uvicorn (blocking)."""
    import uvicorn

    uvicorn.run(create_app(home), host=host, port=port, log_level="warning")
