"""Search speed on synthetic galleries shaped like dlib embeddings, measured side by side in one run:
leadmatch's index, exact FAISS, and numpy brute force (what `face_recognition.face_distance` does).

Synthetic faces: a common mean vector (norm ≈ 1.25) plus an identity offset (σ 0.055 per dimension) plus
per-photo noise (σ 0.0237), so norms are ≈ 1.4, the same person's faces lie ≈ 0.38 apart and different
people ≈ 0.9 apart, as dlib's do.
"""

from __future__ import annotations

import time

import faiss
import numpy as np

from leadmatch.gallery import index

DIM = 128
IDENTITY_SIGMA = 0.055
PHOTO_SIGMA = 0.0237
FACES_PER_IDENTITY = 4
TOP_K = 20


def synthetic(n_faces: int, seed: int = 0, chunk: int = 1_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(faces n×128 float32, identity of each face, identity centres), generated in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(DIM).astype(np.float32)
    mean *= 1.247 / np.linalg.norm(mean)
    n_ids = max(1, n_faces // FACES_PER_IDENTITY)
    centres = mean + rng.standard_normal((n_ids, DIM), dtype=np.float32) * IDENTITY_SIGMA
    labels = np.arange(n_faces, dtype=np.int64) % n_ids
    faces = np.empty((n_faces, DIM), dtype=np.float32)
    for start in range(0, n_faces, chunk):
        stop = min(n_faces, start + chunk)
        faces[start:stop] = centres[labels[start:stop]]
        faces[start:stop] += rng.standard_normal((stop - start, DIM), dtype=np.float32) * PHOTO_SIGMA
    return faces, labels, centres


def probes(centres: np.ndarray, count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """New photos of `count` enrolled identities: (queries, their identity)."""
    rng = np.random.default_rng(seed)
    who = rng.choice(len(centres), count, replace=False)
    queries = centres[who] + rng.standard_normal((count, DIM), dtype=np.float32) * PHOTO_SIGMA
    return queries.astype(np.float32), who


def _percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(samples, q)) * 1000, 3)


def search_run(n_faces: int, factory: str | None = None, n_queries: int = 500, seed: int = 0,
               slow_queries: int = 10) -> dict:
    """One benchmark row: build, size, single-probe latency, batch throughput, mate recall vs exact."""
    faces, labels, centres = synthetic(n_faces, seed)
    queries, who = probes(centres, min(n_queries, len(centres)))
    ids = np.arange(n_faces, dtype=np.int64)
    factory = factory or index.choose_factory(n_faces)

    started = time.perf_counter()
    built = index.build(ids, faces, factory)
    build_s = time.perf_counter() - started
    check = index.self_check(built, ids, faces)
    index.set_nprobe(built, check["nprobe"])
    check_s = time.perf_counter() - started - build_s
    size = int(faiss.serialize_index(built).size)

    exact_mode = index.is_exact(built)
    proposals = TOP_K if exact_mode else TOP_K * index.RERANK_FACTOR

    def leadmatch_search(q: np.ndarray) -> np.ndarray:
        found, _ = index.search(built, q, proposals)
        if exact_mode:
            return found
        distances = np.linalg.norm(faces[found] - q, axis=1)  # the exact re-rank the search does
        return found[np.argsort(distances)[:TOP_K]]

    latencies, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(leadmatch_search(q))
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    built.search(queries, proposals)
    batch_qps = len(queries) / (time.perf_counter() - t)

    _, exact_top = faiss.knn(queries, faces, TOP_K)  # exact FAISS, no copy of the gallery
    exact_lat = []
    for q in queries[:max(slow_queries * 5, 20)]:
        t = time.perf_counter()
        faiss.knn(q.reshape(1, DIM), faces, TOP_K)
        exact_lat.append(time.perf_counter() - t)
    numpy_lat = []
    for q in queries[:slow_queries]:
        t = time.perf_counter()
        distances = np.linalg.norm(faces - q, axis=1)  # face_recognition.face_distance
        np.argpartition(distances, TOP_K)[:TOP_K]
        numpy_lat.append(time.perf_counter() - t)

    # Mate recall: where exact search has a true mate in the top 20, does leadmatch keep that face?
    counted = kept = 0
    for person, exact_row, ours in zip(who, exact_top, results):
        mates = [f for f in exact_row if f >= 0 and labels[f] == person]
        if mates:
            counted += 1
            kept += mates[0] in ours
    p50 = _percentile_ms(latencies, 50)
    numpy_p50 = _percentile_ms(numpy_lat, 50)
    return {
        "faces": n_faces, "index": factory, "nprobe": check["nprobe"],
        "build_s": round(build_s, 2), "self_check_s": round(check_s, 2), "self_check_recall": check["recall"],
        "bytes_per_face": round(size / n_faces, 1),
        "p50_ms": p50, "p99_ms": _percentile_ms(latencies, 99), "batch_qps": round(batch_qps, 1),
        "mate_recall_vs_exact": round(kept / counted, 4) if counted else None, "probes": counted,
        "exact_p50_ms": _percentile_ms(exact_lat, 50), "numpy_p50_ms": numpy_p50,
        "speedup_vs_numpy": round(numpy_p50 / p50, 1) if p50 else None,
    }
