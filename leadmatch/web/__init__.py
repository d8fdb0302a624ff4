"""The leadmatch service's HTTP side: the browser's pages and the JSON API (/api/v1) over one library.

    deps.py       FastAPI dependencies: settings, workspace, signed-in user (cookie or bearer), CSRF
    pages.py      server-rendered pages and forms (cookie sessions, CSRF on every form)
    api.py        /api/v1 JSON routes (bearer tokens; the CLI's client mode)
    responses.py  security headers, body limits, error pages and JSON errors
    forms.py      field parsing with clear messages; probe uploads
    worker.py     photo decoding (search, enroll, evaluate) in a process pool, off the event loop
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from leadmatch.governance import accounts, retention
from leadmatch.record.workspace import open_workspace
from leadmatch.web import api, case_pages, media, pages, policy
from leadmatch.web.deps import Settings
from leadmatch.web.responses import BodyLimit, SecurityHeaders, install_error_handlers
from leadmatch.web.worker import Pool


def create_app(home: Path, session_hours: int = accounts.SESSION_HOURS, *, tls: bool = False,
               enroll_root: Path | None = None, workers: int | None = None, ray: str | None = None,
               **limits) -> FastAPI:
    """The app for the workspace at `home` (fails at once if there is none); `ray` names the Ray cluster
    enrollments may run on. `limits` may set max_body_bytes, max_search_bytes (a search upload, e.g. a clip),
    max_enroll_bytes and upload_max_age_s."""
    home = Path(home)
    open_workspace(home).close()
    settings = Settings(home=home, session_hours=session_hours, tls=tls, enroll_root=enroll_root, ray=ray,
                        **limits)
    pool = Pool(workers)
    # Ray enrollments run one at a time (each takes every CPU of the cluster), each in a fresh process: the
    # Ray driver's threads and modules end with it, and the search workers never carry them.
    cluster_pool = Pool(1, fresh=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        retention.sweep_uploads(home, settings.upload_max_age_s)
        yield
        pool.shutdown()
        cluster_pool.shutdown()

    app = FastAPI(title="leadmatch", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.pool = pool
    app.state.cluster_pool = cluster_pool
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(media.router)
    app.include_router(policy.router)
    app.include_router(case_pages.router)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)  # outermost: also on 413s and redirects
    return app


def serve(home: Path, options) -> None:
    """Run the service with uvicorn (blocking): TLS when `options` names a certificate."""
    import uvicorn

    app = create_app(home, tls=options.tls, enroll_root=options.enroll_root, ray=options.ray)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning",
                ssl_certfile=str(options.certfile) if options.certfile else None,
                ssl_keyfile=str(options.keyfile) if options.keyfile else None)
