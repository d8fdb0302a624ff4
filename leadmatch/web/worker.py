"""Work that decodes photos runs here, in a pool of worker processes, never on the service's event loop:
one huge photo then ties up one worker, while every other request is still answered.

Each function takes plain data (the workspace's home, the actor, the request) and returns
{"ok": result} or {"error": wire dict}, because exceptions do not cross processes intact.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from leadmatch.search import crops
from leadmatch.operations import galleries, searches
from leadmatch.search import run as searching
from leadmatch.governance.accounts import Actor
from leadmatch.errors import FaceChoiceNeeded, LeadmatchError, PhotoError, WorkspaceError
from leadmatch.search.video import is_video
from leadmatch.wire import error_from_dict, error_to_dict
from leadmatch.record.workspace import open_workspace

THUMB = 140  # px: a face or track in the browser's picker


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker once the service that started it is gone. A spawned worker holds both
    ends of its own queue pipes, so it never sees the service die (stopped mid-decode, or killed) and would
    otherwise live on as an orphan."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class Pool:
    """A lazily started process pool (spawned, so no locks or threads of the server are inherited). With
    `fresh`, each call gets a new process that ends after it (for a Ray driver, whose state must not linger)."""

    def __init__(self, workers: int | None = None, fresh: bool = False) -> None:
        self.workers = workers or max(2, min(4, (os.cpu_count() or 2)))
        self.fresh = fresh
        self._executor: ProcessPoolExecutor | None = None

    async def call(self, fn, *args):
        """Run `fn(*args)` in a worker; return its result or raise the leadmatch error it reported."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=exit_with_parent, initargs=(os.getpid(),),
                                                 max_tasks_per_child=1 if self.fresh else None)
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh for the next request
            self.shutdown()
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
    uploads = [Path(request.probe), *(Path(p) for p in request.more_probes)]
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


def _with_images(several: FaceChoiceNeeded, uploads: list[Path]) -> list[dict]:
    """The faces (or a clip's tracks) of a pick, each with a data-URL PNG: a face cut from the photo the message
    names, a track's best frame re-read from the clip at its time (the analysis itself is not kept)."""
    def data_url(png: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(png).decode()

    if is_video(uploads[0]):
        return [{**t, "image": data_url(crops.frame_crop_png(uploads[0], t["best_frame"]["time_s"],
                                                             t["best_frame"]["box"], size=THUMB))}
                for t in several.faces]
    named = [p for p in uploads if several.message.startswith(f"{p.name} holds")]
    pixels = (named or uploads)[0].read_bytes()
    return [{**f, "image": data_url(crops.face_crop_png(pixels, f["box"], size=THUMB))} for f in several.faces]


def enroll_folder(home: str, actor: Actor, gallery: str, plan: galleries.EnrollmentPlan) -> dict:
    """Worker: enroll what `plan` names as `actor` (one process: the pool itself is the parallelism), or on the
    plan's Ray cluster (the service's), `batch` photos a task; this process is then the Ray driver and leaves the
    cluster when the run ends."""
    ws = open_workspace(Path(home))
    try:
        return {"ok": galleries.enroll(ws, actor, gallery, plan, workers=None if plan.ray else 1)}
    except LeadmatchError as exc:
        if getattr(exc, "reason", None) == "ray-unavailable":  # the analyst cannot start or fix the cluster
            exc.hint = "ask the service's administrator to check its Ray cluster (serve --ray), or enroll without --ray"
        return {"error": error_to_dict(exc)}
    finally:
        ws.close()


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
