"""The leadmatch service's HTTP side: the browser's pages and the JSON API (/api/v1) over one library.

    deps.py       FastAPI dependencies: settings, workspace, signed-in user (cookie or bearer), CSRF
    pages/        server-rendered pages and forms, one router per resource (cookie sessions, CSRF on every form)
    downloads.py  what pages and API both send as files: face crops, the lead report, the audit report
    api/          /api/v1 JSON routes, one router per resource (bearer tokens; the CLI's client mode)
    responses.py  security headers, body limits, error pages and JSON errors
    forms.py      field parsing with clear messages; probe uploads
    static/       the pages' scripts and styles (served from this site only: the CSP allows no inline script)
    worker.py     photo decoding (search, enroll, evaluate) in a process pool, off the event loop
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from leadmatch.errors import LeadmatchError
from leadmatch.governance import accounts, oversight, retention
from leadmatch.record.workspace import open_workspace
from leadmatch.web import api, pages
from leadmatch.web.deps import Settings
from leadmatch.web.responses import BodyLimit, SecurityHeaders, install_error_handlers
from leadmatch.web.worker import Pool

STATIC = Path(__file__).parent / "static"
CLIP_NICENESS = 10  # clip workers yield the CPU to photo searches


def create_app(home: Path, session_hours: int = accounts.SESSION_HOURS, *, tls: bool = False,
               enroll_root: Path | None = None, workers: int | None = None, ray: str | None = None,
               checkpoint_every: float | None = None, checkpoint_dir: Path | None = None,
               clip_workers: int | None = None, **limits) -> FastAPI:
    """The app for the workspace at `home` (fails at once if there is none); `ray` names the Ray cluster
    enrollments may run on; `workers` photo workers, `clip_workers` clip workers (a pool of their own, so photo
    searches are answered while clips are analysed); with `checkpoint_every` (seconds) an audit checkpoint is
    filed in `checkpoint_dir` at start and then that often. `limits` may set max_body_bytes, max_search_bytes (a
    search upload, e.g. a clip), max_enroll_bytes, upload_max_age_s, max_clip_frames, max_clip_seconds and
    trusted_proxies."""
    home = Path(home)
    open_workspace(home).close()
    if checkpoint_every is not None:
        checkpoint_dir = oversight.check_checkpoint_folder(checkpoint_dir, home)
    settings = Settings(home=home, session_hours=session_hours, tls=tls, enroll_root=enroll_root, ray=ray,
                        **limits)
    pool = Pool(workers)
    video_pool = Pool(clip_workers or max(1, min(2, (os.cpu_count() or 2) // 2)), niceness=CLIP_NICENESS)
    # Ray enrollments run one at a time (each takes every CPU of the cluster), each in a fresh process: the
    # Ray driver's threads and modules end with it, and the search workers never carry them.
    cluster_pool = Pool(1, fresh=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        retention.sweep_uploads(home, settings.upload_max_age_s)
        retention.sweep_enroll_uploads(home)  # left by a service killed mid-enrollment
        # held open for the service's life: SQLite keeps its -wal and -shm files while a connection is open, so
        # each request can still open the record (and read, and write where the WAL has room) on a full disk
        keeper = open_workspace(home)
        schedule = None
        if checkpoint_every is not None:
            schedule = asyncio.create_task(file_checkpoints(home, checkpoint_dir, checkpoint_every))
        yield
        if schedule is not None:
            schedule.cancel()
        keeper.close()
        pool.shutdown()
        video_pool.shutdown()
        cluster_pool.shutdown()

    app = FastAPI(title="leadmatch", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.pool = pool
    app.state.video_pool = video_pool
    app.state.cluster_pool = cluster_pool
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")  # scripts and styles, no data
    app.include_router(api.router)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)  # outermost: also on 413s and redirects
    return app


async def file_checkpoints(home: Path, folder: Path, every: float) -> None:
    """File an audit checkpoint in `folder` now and then every `every` seconds, in a thread (the event loop
    keeps answering); a failure is one line on stderr, and the next one is tried on time."""
    def one() -> None:
        ws = open_workspace(home)
        try:
            oversight.file_scheduled_checkpoint(ws, folder)
        finally:
            ws.close()

    while True:
        try:
            await asyncio.to_thread(one)
        except LeadmatchError as exc:
            print(f"leadmatch: scheduled audit checkpoint not filed: {exc}", file=sys.stderr, flush=True)
        await asyncio.sleep(every)


def serve(home: Path, options) -> None:
    """Run the service with uvicorn (blocking): TLS when `options` names a certificate. Uvicorn's own reading of
    X-Forwarded-For (which believes loopback) is off: the app believes only `--trusted-proxy` peers."""
    import uvicorn

    every = oversight.parse_duration(options.checkpoint_every) if options.checkpoint_every else None
    app = create_app(home, tls=options.tls, enroll_root=options.enroll_root, ray=options.ray,
                     trusted_proxies=tuple(options.trusted_proxies), checkpoint_every=every,
                     checkpoint_dir=options.checkpoint_dir)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", proxy_headers=False,
                ssl_certfile=str(options.certfile) if options.certfile else None,
                ssl_keyfile=str(options.keyfile) if options.keyfile else None)
