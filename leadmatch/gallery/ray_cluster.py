"""Enrolling on a Ray cluster: the head lists, hashes and records; Ray workers analyze the photos.

The head (the process running `gallery enroll --ray`) reads every photo, hashes it, skips the known ones and
sends batches of photo *bytes* to a pool of Ray actors, one per CPU in the cluster. Each actor runs
`analysis.analyze_photos`, the same unit of work as a local worker process, so the faces and embeddings are the
same bits. Results come back in the order the batches were sent and are written by the head alone, one
transaction per batch, while a bounded number of batches is in flight.

Why bytes rather than paths: the head must read every photo anyway (to hash it, skip known ones and keep its
copy in the workspace), so the analyzed bytes are exactly the hashed and stored bytes — a file changed on a
share between hashing and analysis cannot put one photo's embedding beside another photo's hash — and workers
need no shared file system or mount of the analyst's source folder.

Ray is imported only here, and this module only when `--ray` is given.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from collections import deque
from typing import Any, Callable, Iterator

from leadmatch.biometrics.models import registry as models
from leadmatch.errors import InputError, ModelError

DEFAULT_BATCH = 64       # photos per Ray task and per transaction on a large run
IN_FLIGHT_PER_WORKER = 2  # batches sent ahead per actor: one running, one queued, so no actor waits on the head
READY_TIMEOUT_S = 120     # how long actors may take to start and check their models
FAILED = "analysis-failed"


def check_address(address: str) -> tuple[str, int] | None:
    """`auto` → None; `HOST:PORT` → (host, port). InputError for anything else."""
    if address == "auto":
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--ray {address!r} is not auto or HOST:PORT", "give --ray auto or the head's address, "
                                                                        "e.g. --ray 10.0.0.5:6379")
    return host.strip("[]"), int(port)


def _reachable(host: str, port: int, timeout: float = 3.0) -> None:
    """Fail fast, in one line, when nothing listens at host:port (Ray itself would retry for a minute)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise InputError(f"no Ray cluster answers at {host}:{port} ({exc.strerror or exc})",
                         f"start one with `ray start --head --port {port}` or give the head's address") from None


def connect(address: str):
    """Join the Ray cluster at `address` as a driver, with token authentication on. Returns the `ray` module."""
    target = check_address(address if address != "auto" else os.environ.get("RAY_ADDRESS") or "auto")
    if target:
        _reachable(*target)
    # Keep token auth on: the driver presents the cluster token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    # ~/.ray/auth_token) and a cluster that requires it accepts nobody without it.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    try:
        import ray
    except ImportError:
        raise InputError("Ray is not installed", "install leadmatch's cluster extra (it brings Ray) on the head "
                                                 "and on every worker node") from None
    with _native_stderr() as native:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, namespace="leadmatch",
                     configure_logging=True)
            failure = None
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError or AuthenticationError here
            failure = exc
    if failure is not None:
        if "InvalidAuthToken" in native.text or "InvalidAuthToken" in str(failure):
            raise InputError(f"the Ray cluster at {address} refused this head's token (InvalidAuthToken)",
                             "set RAY_AUTH_MODE=token and the cluster's token here (RAY_AUTH_TOKEN, "
                             "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, copied from the head node)")
        raise InputError(f"cannot join the Ray cluster at {address}: {_first_line(failure)}",
                         "check the address, that the cluster is up, and that RAY_AUTH_MODE=token and the "
                         "cluster token are set here")
    _quiet_raylet_notices(ray)
    return ray


class _native_stderr:
    """Catch what Ray's C++ core writes to file descriptor 2 while joining (a line a second while it retries),
    so the user sees one line; `text` keeps it to explain a failure."""

    def __enter__(self):
        import tempfile

        self.text, self.file = "", tempfile.TemporaryFile()
        sys.stderr.flush()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", "replace")
        self.file.close()


def _quiet_raylet_notices(ray) -> None:
    """Ray's driver prints cluster notices ("a worker died…") on stdout, which would corrupt `--json` output and
    the summary; the head handles those failures itself (retry, then refusal), so they go to the debug log."""
    worker_module = ray._private.worker
    printer = worker_module.print_to_stdstream

    def print_to_stdstream(data, ignore_prefix):
        if data.get("pid") == "raylet":
            logging.getLogger(__name__).debug("ray: %s", " ".join(data.get("lines", [])))
            return
        printer(data, ignore_prefix)

    if getattr(printer, "__module__", None) != __name__:
        worker_module.print_to_stdstream = print_to_stdstream


def model_hashes(model: str = "dlib") -> dict[str, str]:
    """sha256 of every model file this process uses for a gallery of face model `model` (each checked against
    this node's model card first)."""
    from leadmatch.biometrics import faces

    hashes = models.verify_all()
    if faces.engine() == "onnx":  # the descriptor, and the CNN detector of the second look (`quality`)
        hashes[models.RESNET_ONNX] = models.sha256_file(models.onnx_path())
        hashes[models.MMOD_ONNX] = models.sha256_file(models.mmod_onnx_path())
    if model == "dlib+faceres":
        hashes[models.FACERES_ONNX] = models.sha256_file(models.faceres_onnx_path())
    return hashes


def expected_model_hashes(model: str = "dlib") -> dict[str, str]:
    """What `model_hashes(model)` must give, by this (the head's) model card, for the head's descriptor engine."""
    from leadmatch.biometrics import faces

    expected = dict(models.expected_hashes())
    if faces.engine() == "onnx":
        expected[models.RESNET_ONNX] = models.expected_converted()[models.RESNET_ONNX]["sha256"]
        expected[models.MMOD_ONNX] = models.expected_converted()[models.MMOD_ONNX]["sha256"]
    if model == "dlib+faceres":
        expected[models.FACERES_ONNX] = models.expected_converted()[models.FACERES_ONNX]["sha256"]
    return expected


class PhotoWorker:
    """A Ray actor: takes the head's descriptor engine, checks and loads its models once when it starts, then
    analyzes batches of photos."""

    def __init__(self, engine: str, model: str = "dlib") -> None:
        import ray

        from leadmatch.biometrics import faces

        context = ray.get_runtime_context()
        self.where = {"node": ray.util.get_node_ip_address(), "node_id": context.get_node_id(),
                      "pid": os.getpid()}
        self.model = model
        try:
            faces.use_engine(engine)
            self.hashes, self.problem = model_hashes(model), None
            faces.prepare()
        except ModelError as exc:
            self.hashes, self.problem = {}, str(exc)

    def identity(self) -> dict:
        """Where this actor runs, the sha256 of its model weights, and what is wrong with them if anything."""
        return {**self.where, "hashes": self.hashes, "problem": self.problem}

    def analyze(self, jobs: list[tuple[bytes, str]], work: str | None = None) -> list[dict]:
        """`analysis.analyze_photos` with the gallery's model (or `work`, "module:function", e.g. case media's,
        on the jobs alone) on the photos, `PHOTOS_PER_BATCH` at a time as locally; an unexpected failure is
        narrowed to its photo and returned, not raised, so the rest of the batch is kept and that photo tried
        again."""
        import functools
        import importlib

        from leadmatch.gallery.analysis import PHOTOS_PER_BATCH, analyze_photos  # heavy: loaded on the worker

        analyze = functools.partial(analyze_photos, model=self.model)
        if work:
            module, _, function = work.partition(":")
            analyze = getattr(importlib.import_module(module), function)

        results = []
        for start in range(0, len(jobs), PHOTOS_PER_BATCH):
            part = jobs[start:start + PHOTOS_PER_BATCH]
            try:
                results.extend(analyze(part))
            except Exception:  # a crash in the face library must not sink the batch: find the photo
                for job in part:
                    try:
                        results.extend(analyze([job]))
                    except Exception as exc:
                        results.append({"error": f"{type(exc).__name__}: {exc}"})
        return results


def node_name(identity: dict) -> str:
    return f"{identity['node']} (node {identity['node_id'][:8]}, pid {identity['pid']})"


class RayAnalyzer:
    """Runs `analyze_photos` on a Ray actor pool. `stream()` takes (key, jobs) batches and yields (key, results) in
    the order given, with at most `IN_FLIGHT_PER_WORKER` batches per actor sent ahead."""

    def __init__(self, address: str, batch: int | None = None, workers: int | None = None,
                 refuse_worker: Callable[[str, str], None] | None = None, model: str = "dlib",
                 work: str | None = None) -> None:
        self.ray = connect(address)
        self.batch, self.model = batch, model
        self.work = work  # the workers' function, "module:function" (default: enrollment's)
        self.refused_workers: list[str] = []
        try:
            self.actors = self._start(workers, refuse_worker)
        except BaseException:
            self.close()
            raise
        self.max_in_flight = IN_FLIGHT_PER_WORKER * len(self.actors)

    def _start(self, workers: int | None, refuse_worker) -> list:
        """One actor per cluster CPU (at most `workers`), each checked against this head's model card."""
        ray = self.ray
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise InputError("the Ray cluster has no CPUs to run on", "add worker nodes with `ray start --address`")
        count = min(cpus, workers) if workers else cpus
        from leadmatch.biometrics import faces

        remote = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=1)(PhotoWorker)
        actors = [remote.remote(faces.engine(), self.model) for _ in range(count)]
        calls = {actor.identity.remote(): actor for actor in actors}
        ready, late = ray.wait(list(calls), num_returns=len(calls), timeout=READY_TIMEOUT_S)
        expected, kept = expected_model_hashes(self.model), []
        for ref in ready:
            actor = calls[ref]
            try:
                identity = ray.get(ref)
            except ray.exceptions.RayError as exc:
                self._refuse(actor, "a worker", f"did not start: {type(exc).__name__}", refuse_worker)
                continue
            problem = identity["problem"] or _differences(identity["hashes"], expected)
            if problem:
                self._refuse(actor, node_name(identity), problem, refuse_worker)
            else:
                kept.append(actor)
        for ref in late:
            ray.kill(calls[ref])
        if not kept and self.refused_workers:
            raise ModelError("no Ray worker can analyze photos: " + "; ".join(self.refused_workers),
                             "install leadmatch and its model weights on the worker nodes, as on the head")
        if not kept:
            raise InputError(f"no Ray worker started within {READY_TIMEOUT_S} s",
                             "check that the cluster's CPUs are free (`ray status`) and try again")
        return kept

    def _refuse(self, actor, where: str, problem: str, refuse_worker) -> None:
        self.ray.kill(actor)
        self.refused_workers.append(f"{where}: {problem}")
        if refuse_worker:
            refuse_worker(where, problem)

    def chunk_size(self, total: int) -> int:
        """Photos per batch: `--batch`, else 64, smaller on a small run so every actor gets work."""
        if self.batch:
            return self.batch
        return max(1, min(DEFAULT_BATCH, math.ceil(total / (2 * len(self.actors)))))

    def stream(self, batches: Iterator[tuple[Any, list]]) -> Iterator[tuple[Any, list[dict]]]:
        """Send each batch's jobs to the actors; yield (key, results) in the order the batches came."""
        ray = self.ray
        order: deque[dict] = deque()      # batches sent, oldest first, until yielded
        in_flight: dict = {}              # ref → (batch entry, job indices, attempt, actor number)
        load = [0] * len(self.actors)     # calls outstanding per actor
        source, exhausted = iter(batches), False

        def send(entry: dict, indices: list[int], attempt: int) -> None:
            number = min(range(len(self.actors)), key=load.__getitem__)
            ref = self.actors[number].analyze.remote([entry["jobs"][i] for i in indices], self.work)
            in_flight[ref] = (entry, indices, attempt, number)
            load[number] += 1

        try:
            while True:
                while not exhausted and len(order) < self.max_in_flight:
                    try:
                        key, jobs = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    entry = {"key": key, "jobs": jobs, "results": [None] * len(jobs), "missing": len(jobs)}
                    order.append(entry)
                    if jobs:
                        send(entry, list(range(len(jobs))), 0)
                while order and order[0]["missing"] == 0:
                    entry = order.popleft()
                    yield entry["key"], entry["results"]
                if not in_flight:
                    if exhausted and not order:
                        return
                    continue
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    entry, indices, attempt, number = in_flight.pop(ref)
                    load[number] -= 1
                    self._settle(ref, entry, indices, attempt, send)
        except BaseException:  # Ctrl-C or a failed write: drop what is queued; close() stops the actors
            for ref in in_flight:
                try:
                    ray.cancel(ref)
                except Exception:  # already finished or its actor gone
                    pass
            raise

    def _settle(self, ref, entry: dict, indices: list[int], attempt: int, send) -> None:
        """Put one finished call's results in place; try failed photos once more, alone; refuse a photo that
        failed twice, with the reason."""
        ray = self.ray
        try:
            results = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the call failed even after Ray's own retry
            detail = _first_line(exc)
            if len(indices) > 1:
                for index in indices:  # find which photo it was: each one alone
                    send(entry, [index], attempt + 1)
                return
            results = [{"error": detail}]
            attempt = max(attempt, 1)
        for index, result in zip(indices, results):
            if "error" in result:
                if attempt == 0:
                    send(entry, [index], 1)
                    continue
                result = {"refused": (FAILED, f"analysis failed twice on the Ray workers: {result['error']}"),
                          "faces": 0}
            entry["results"][index] = result
            entry["missing"] -= 1

    def close(self) -> None:
        """Stop the actors and leave the cluster (the cluster itself keeps running)."""
        ray = self.ray
        for actor in getattr(self, "actors", []):
            try:
                ray.kill(actor)
            except Exception:  # already gone
                pass
        ray.shutdown()


def _differences(hashes: dict, expected: dict) -> str | None:
    """Which weights a worker holds that differ from the head's model card, as one phrase (None: all match)."""
    wrong = [f"{name} sha256 {(hashes.get(name) or 'missing')[:12]}… (head expects {digest[:12]}…)"
             for name, digest in sorted(expected.items()) if hashes.get(name) != digest]
    return ("model weights differ from the head's model card: " + ", ".join(wrong)) if wrong else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no detail'}"[:300]
