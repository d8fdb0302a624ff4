"""Work that decodes photos runs here, in a pool of worker processes, never on the service's event loop:
one huge photo then ties up one worker, while every other request is still answered.

Each function takes plain data (the workspace's home, the actor, the request) and returns
{"ok": result} or {"error": wire dict}, because exceptions do not cross processes intact.

Clips are searched in a pool of their own, at a lower CPU priority, so photo searches are answered while clips
are analysed; each clip search has a budget (frames, seconds; `video.Budget`) and stops when its client has gone
(`search_watched`). A worker that dies takes the requests queued or running on it down with it: each is tried
once more in a fresh process of its own, so only a request that kills its worker twice fails.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from leadmatch.errors import FaceChoiceNeeded, LeadmatchError, PhotoError, WorkspaceError
from leadmatch.governance.accounts import Actor
from leadmatch.operations import cases, galleries, searches
from leadmatch.record.workspace import open_workspace
from leadmatch.search import crops
from leadmatch.search import run as searching
from leadmatch.search.video import is_video
from leadmatch.web import forms
from leadmatch.wire import error_from_dict, error_to_dict

THUMB = 140  # px: a face or track in the browser's picker
CANCELLED = ".cancelled"  # in a clip's upload folder: its client went away, the analysis stops
WATCH_S = 0.5  # how often a waiting clip search looks whether its client is still there


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker once the service that started it is gone. A spawned worker holds both
    ends of its own queue pipes, so it never sees the service die (stopped mid-decode, or killed) and would
    otherwise live on as an orphan."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def start_worker(parent: int, niceness: int = 0) -> None:
    """Worker initializer: end with the service (`exit_with_parent`); a clip worker also yields the CPU to photo
    searches (`niceness` added to its priority)."""
    exit_with_parent(parent)
    if niceness:
        os.nice(niceness)


class Pool:
    """A lazily started process pool (spawned, so no locks or threads of the server are inherited). With
    `fresh`, each call gets a new process that ends after it (for a Ray driver, whose state must not linger)."""

    def __init__(self, workers: int | None = None, fresh: bool = False, niceness: int = 0) -> None:
        self.workers = workers or max(2, min(4, (os.cpu_count() or 2)))
        self.fresh = fresh
        self.niceness = niceness
        self._executor: ProcessPoolExecutor | None = None
        self._retries: asyncio.Semaphore | None = None  # retries run at most `workers` at once

    def _new_executor(self, workers: int, fresh: bool) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
                                   initargs=(os.getpid(), self.niceness), max_tasks_per_child=1 if fresh else None)

    async def call(self, fn, *args):
        """Run `fn(*args)` in a worker; return its result or raise the leadmatch error it reported. When the
        worker dies, the call is tried once more in a fresh process of its own (not for a Ray run)."""
        if self._executor is None:
            self._executor = self._new_executor(self.workers, self.fresh)
        executor = self._executor
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(executor, fn, *args)
        except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh for the next request
            if self._executor is executor:  # not one another request has started since
                self.shutdown()
            ray_run = fn is enroll_folder and bool(args[3].ray)
            outcome = None if self.fresh or ray_run else await self._alone(fn, *args)
        if outcome is None:
            if fn is enroll_folder and args[3].ray:  # a Ray run: its driver died, not a photo
                raise WorkspaceError("the enrollment on the Ray cluster stopped: the process driving it died",
                                     "run it again: every photo written so far is kept and skipped") from None
            if fn is build_index:
                raise WorkspaceError("the index build stopped: its worker process died (out of memory?)",
                                     "try again; the record is unchanged and the old index still serves") from None
            raise PhotoError("the photo could not be processed: the worker decoding it stopped (out of memory?)",
                             "use a smaller photo", reason="too-large") from None
        if "error" in outcome:
            raise error_from_dict(outcome["error"])
        return outcome["ok"]

    async def _alone(self, fn, *args) -> dict | None:
        """`fn(*args)` once more, in a new process of its own (so a request that kills its worker again takes
        nothing else with it); None if that process dies too."""
        self._retries = self._retries or asyncio.Semaphore(self.workers)
        async with self._retries:  # every request queued on a broken pool retries: not all in new processes at once
            executor = self._new_executor(1, True)
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
            except BrokenProcessPool:
                return None
            finally:
                executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def search(home: str, actor: Actor, request: searching.SearchRequest, with_face_images: bool = False) -> dict:
    """Worker: run one search on uploaded probe files (a photo, several stills, or a clip — all in one upload
    folder). When a photo holds several faces or a clip several tracks, the faces or tracks come back in the
    error (with a small PNG of each when `with_face_images`, for the browser's picker)."""
    ws = open_workspace(Path(home))
    before = os.getcwd()
    # The record keeps the probes' names as given; from the upload's folder that is the uploader's file name,
    # not a server path (one task at a time per worker process, so the folder change is ours alone).
    uploads = [Path(request.probe).absolute(), *(Path(p).absolute() for p in request.more_probes)]
    if is_video(uploads[0]):  # a clip's analysis is kept for the search after a pick (beside the kept upload
        # unless the caller chose a place: the API drops its upload after each call), and followed
        request.keep_analysis = request.keep_analysis or uploads[0].parent
        request.progress = forms.ProgressFile(uploads[0].parent)
    os.chdir(uploads[0].parent)
    request.probe, request.more_probes = Path(uploads[0].name), tuple(Path(p.name) for p in uploads[1:])
    try:
        return {"ok": searches.search(ws, actor, request)}
    except FaceChoiceNeeded as several:
        if with_face_images:
            several.faces = _with_images(several, uploads)
        return {"error": error_to_dict(several)}
    except LeadmatchError as exc:
        return {"error": error_to_dict(exc)}
    finally:
        os.chdir(before)
        ws.close()


async def search_watched(http_request, home: Path, actor: Actor, request: searching.SearchRequest,
                         with_face_images: bool = False) -> dict:
    """Run `search` for an HTTP request: a photo in the photo pool; a clip in the clip pool, within the service's
    clip budget, and stopped (marked cancelled, audited by the search) when the client goes away meanwhile."""
    state = http_request.app.state
    if not is_video(request.probe):
        return await state.pool.call(search, str(home), actor, request, with_face_images)
    marker = Path(request.probe).parent.absolute() / CANCELLED
    marker.unlink(missing_ok=True)  # a face-pick round trip reuses the upload
    request.budget = dataclasses.replace(state.settings.clip_budget(), cancel_file=str(marker))
    job = asyncio.ensure_future(state.video_pool.call(search, str(home), actor, request, with_face_images))
    while not job.done():
        await asyncio.wait({job}, timeout=WATCH_S)
        if not job.done() and await http_request.is_disconnected():
            marker.touch()  # the worker stops at its next frame (or before its first, if still queued)
            break
    return await job


def _with_images(several: FaceChoiceNeeded, uploads: list[Path]) -> list[dict]:
    """The faces (or a clip's tracks) of a pick, each with a data-URL PNG: a face cut from the photo the message
    names, a track's best frame re-read from the clip at its time (one frame: the kept analysis holds the
    track's best frames whole, but this is as quick and needs no key)."""
    def data_url(png: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(png).decode()

    if is_video(uploads[0]):
        return [{**t, "image": data_url(crops.frame_crop_png(uploads[0], t["best_frame"]["time_s"],
                                                             t["best_frame"]["box"], size=THUMB))}
                for t in several.faces]
    named = [p for p in uploads if several.message.startswith(f"{p.name} holds")]
    pixels = (named or uploads)[0].read_bytes()
    return [{**f, "image": data_url(crops.face_crop_png(pixels, f["box"], size=THUMB))} for f in several.faces]


def enroll_folder(home: str, actor: Actor, gallery: str, plan: galleries.EnrollmentPlan,
                  progress_file: str | None = None) -> dict:
    """Worker: enroll what `plan` names as `actor` (one process: the pool itself is the parallelism), or on the
    plan's Ray cluster (the service's), `batch` photos a task; this process is then the Ray driver and leaves the
    cluster when the run ends. An upload (the plan's `uploaded_as` names it for the audit) is read from inside its
    folder, so the record and every refusal name the photos as uploaded (<subject>/<file>), never by the folder
    they waited in. With `progress_file` (an absolute path), how far it is ({"done", "total"}) is kept there for
    the service to answer a browser that asks (`progress_writer`)."""
    ws = open_workspace(Path(home).absolute())
    before = os.getcwd()
    progress = progress_writer(Path(progress_file)) if progress_file else None
    try:
        if plan.uploaded_as:  # one task at a time per worker process: the folder change is ours alone
            os.chdir(plan.source)
            plan = dataclasses.replace(plan, source=Path("."))
        return {"ok": galleries.enroll(ws, actor, gallery, plan, workers=None if plan.ray else 1, progress=progress)}
    except LeadmatchError as exc:
        if getattr(exc, "reason", None) == "ray-unavailable":  # the analyst cannot start or fix the cluster
            exc.hint = "ask the service's administrator to check its Ray cluster (serve --ray), or enroll without --ray"
        return {"error": error_to_dict(exc)}
    finally:
        os.chdir(before)
        ws.close()


PROGRESS_EVERY_S = 0.25  # how often an enrollment's progress file is rewritten (and always at the end)


def progress_writer(path: Path):
    """A progress(done, total) callback that keeps {"done", "total"} in `path`, written to a temp file and renamed
    so a reader never sees half of it, at most every PROGRESS_EVERY_S seconds."""
    last = [0.0]

    def write(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(json.dumps({"done": done, "total": total}), encoding="utf-8")
        os.replace(temp, path)

    return write


def build_index(home: str, actor: Actor, gallery: str, factory: str | None) -> dict:
    """Worker: retrain a gallery's index (as `factory`, else its type in force) and self-check it."""
    ws = open_workspace(Path(home))
    try:
        return {"ok": galleries.build_index(ws, actor, gallery, factory)}
    except LeadmatchError as exc:
        return {"error": error_to_dict(exc)}
    finally:
        ws.close()


def evaluate(source: str, enroll_first: int, holdout: float, seed: int, face: str | None = None,
             root: str | None = None) -> dict:
    """Worker: an accuracy evaluation in a throw-away workspace (touches no gallery); one process, as the pool
    itself is the parallelism."""
    from leadmatch.tools import evaluation

    try:
        result = evaluation.evaluate(Path(source), enroll_first, holdout, None, seed, face=face, workers=1,
                                     root=Path(root) if root else None)
        return {"ok": result}
    except LeadmatchError as exc:
        return {"error": error_to_dict(exc)}


def add_case_media(home: str, actor: Actor, request) -> dict:
    """Worker: add uploaded files (all in one upload folder) to a case; names recorded as uploaded."""
    ws = open_workspace(Path(home))
    before = os.getcwd()
    folder = Path(request.paths[0]).parent
    os.chdir(folder)  # the record keeps the uploader's file names, not the service's upload path
    request.paths = [Path(Path(p).name) for p in request.paths]
    try:
        return {"ok": cases.add_media(ws, actor, request)}
    except LeadmatchError as exc:
        return {"error": error_to_dict(exc)}
    finally:
        os.chdir(before)
        ws.close()
