"""Analysing photos for enrollment: bytes in, for each photo the face to enroll or the reason it is refused.

`analyze_photos` is the unit of work, the same wherever it runs. An `Analyzer` runs it over a stream of batches:
`LocalAnalyzer` here, in this process or a pool of worker processes; `ray_cluster.RayAnalyzer` on a Ray cluster.
Enrollment depends on the protocol only, so this module and the Ray one never import enrollment.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
from typing import Any, Iterator, Protocol

from leadmatch.biometrics import faceres, quality
from leadmatch.biometrics.faces import Analysis, analyze_many, prepare as prepare_descriptor
from leadmatch.biometrics.models import registry as models
from leadmatch.biometrics.photos import decode
from leadmatch.gallery import space as spaces
from leadmatch.errors import PhotoError


class Analyzer(Protocol):
    """Runs `analyze_photos` over (key, jobs) batches, jobs being (bytes, name) pairs."""

    def chunk_size(self, total: int) -> int:
        """How many photos to read and record at a time, for a run of `total` photos."""

    def stream(self, batches: Iterator[tuple[Any, list]]) -> Iterator[tuple[Any, list[dict]]]:
        """(key, results) for each batch, in the order given; one result per job, as `analyze_photos` gives."""

    def close(self) -> None:
        """Free the workers."""


PHOTOS_PER_BATCH = 8  # photos a worker analyzes at once: their faces go through the descriptor in one batch


def analyze_photos(jobs: list[tuple[bytes, str]], model: str = spaces.DLIB) -> list[dict]:
    """Worker: a few photos' bytes → for each, the face to enroll with its quality flags, or a refusal (plain
    data, so it crosses processes). Faces are found coarse-to-fine at the gallery scale and embedded in one batch;
    a photo with no face there is looked at again at the probe scales, then by the CNN (flagged), since a
    smaller face, or one only the CNN finds, is still better than losing the subject from every search. For a
    dlib+faceres gallery the enrolled face also gets its unit FaceRes descriptor (`faceres`), from the same box."""
    out, fused = [], model == spaces.FUSED
    for (data, name), found in zip(jobs, analyze_many(jobs, min_face_px=quality.GALLERY_DETECT_STEPS[0], coarse=True,
                                                      keep_pixels=fused)):
        pixels = found.pixels if isinstance(found, Analysis) else None
        if isinstance(found, Analysis) and not found.faces:  # smaller faces, then the CNN's second look
            found = quality.detect_in_steps(data, name, quality.GALLERY_DETECT_STEPS[1:], cnn_look=True)
        verdict = _verdict(found)
        if fused and "face" in verdict:
            pixels = pixels if pixels is not None else decode(data, name=name).pixels
            verdict["faceres"] = faceres.describe(pixels, [verdict["face"].box])[0]
        out.append(verdict)
    return out


def _verdict(found) -> dict:
    """One photo's Analysis (or the PhotoError that refused it) → its face and flags, or a refusal with its reason."""
    if isinstance(found, PhotoError):
        return {"refused": (found.reason, found.message)}
    face, flags, refusal = quality.gallery_decision(found.faces, found.width, found.height)
    if refusal:
        reason, detail = refusal
        if reason == "no-face":
            detail = f"no face of at least {quality.GALLERY_DETECT_STEPS[-1]} px found (HOG, then the CNN)"
        return {"refused": (reason, detail), "faces": len(found.faces)}
    if found.detector == "cnn":  # said on every candidate this face yields
        flags = [*flags, "found by the CNN detector's second look (HOG found none)"]
    return {"face": face, "flags": flags, "faces": len(found.faces)}


def _analyze_chunk(pool, jobs: list[tuple[bytes, str]], workers: int = 1, model: str = spaces.DLIB) -> list[dict]:
    """A chunk's photos → one result each, in order, analyzed in batches across the pool's workers: the largest
    photos first, and batches small enough that every worker gets several, so no worker idles while another
    finishes a batch of large photos (a chunk of a few dozen photos otherwise runs mostly on one core)."""
    size = max(1, min(PHOTOS_PER_BATCH, math.ceil(len(jobs) / (4 * workers))))
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i][0]))  # bytes stand in for pixels to decode
    batches = [[jobs[i] for i in order[start:start + size]] for start in range(0, len(order), size)]
    work = functools.partial(analyze_photos, model=model)
    done = pool.map(work, batches, chunksize=1) if pool else [work(batch) for batch in batches]
    results: list[dict] = [{}] * len(jobs)
    for i, result in zip(order, (result for batch in done for result in batch)):
        results[i] = result
    return results


def _pool(workers: int, model: str = spaces.DLIB):
    prepare_descriptor()  # convert/verify the model once, here, so a bad file stops the run before any fork
    if model == spaces.FUSED:
        models.faceres_onnx_path()  # FaceRes too: absent or altered weights stop the run here (exit 5)
    if workers <= 1:
        return None
    return multiprocessing.get_context("fork").Pool(workers)


class LocalAnalyzer:
    """An `Analyzer` on this machine: `analyze_photos` in this process or a pool of `workers` processes, `chunk`
    photos per recorded chunk and worker, embedding with the gallery's face `model`."""

    def __init__(self, workers: int, chunk: int, model: str = spaces.DLIB) -> None:
        self.workers, self.chunk, self.model, self.pool = workers, chunk, model, _pool(workers, model)

    def chunk_size(self, total: int) -> int:
        return self.chunk * self.workers if self.pool else self.chunk

    def stream(self, batches: Iterator[tuple]) -> Iterator[tuple]:
        for key, jobs in batches:
            yield key, _analyze_chunk(self.pool, jobs, self.workers, self.model)

    def close(self) -> None:
        if self.pool:
            self.pool.close()
            self.pool.join()
