"""Search speed on synthetic galleries shaped like dlib embeddings, measured side by side in one run:
leadmatch's index, exact FAISS, and numpy brute force (what `face_recognition.face_distance` does).

Synthetic faces: a common mean vector (norm ≈ 1.25) plus an identity offset (σ 0.055 per dimension) plus
per-photo noise (σ 0.0237), so norms are ≈ 1.4, the same person's faces lie ≈ 0.38 apart and different
people ≈ 0.9 apart, as dlib's do.

With `model="dlib+faceres"` each face also gets a synthetic FaceRes part, fused as a dlib+faceres gallery fuses
them: a unit 1024-d vector made of a common mean (norm ≈ 0.63; 0.61 measured on lfw-dev), an
identity offset and per-photo noise whose per-dimension spread decays as (i+1)^-0.6 (real FaceRes descriptors
keep 88 % of their variance in 256 principal components on lfw-dev; this keeps about as much), scaled so the
same person's unit vectors lie ≈ 0.7 apart and different people ≈ 1.1, as on the sample photos; then
[a·dlib, b·FR] with a, b making each part's different-person median 1.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from leadmatch.lazy import lazy

from leadmatch.gallery import index, space as spaces

faiss = lazy("faiss")
np = lazy("numpy")

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


FR_DIM = 1024
FR_MEAN_NORM = 0.63
FR_IDENTITY, FR_PHOTO = 0.0186, 0.0155  # per-dimension scale of the decaying profile (see the module docstring)


def _fr_profile(rng) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic FaceRes mean and per-dimension spread profile."""
    mean = rng.standard_normal(FR_DIM).astype(np.float32)
    mean *= FR_MEAN_NORM / np.linalg.norm(mean)
    profile = (np.arange(FR_DIM, dtype=np.float32) + 1) ** -0.6
    profile *= np.sqrt(FR_DIM / np.sum(profile ** 2))  # the same total spread as an isotropic σ
    return mean, profile


def fused_synthetic(n_faces: int, seed: int = 0, chunk: int = 250_000):
    """(fused faces n×1152 float32, identity of each, the synthetic FaceRes part's generator state for probes,
    the fitted scales): see the module docstring. Built in chunks; only the fused array is kept whole."""
    dlib, labels, centres = synthetic(n_faces, seed)
    rng = np.random.default_rng(seed + 100)
    mean, profile = _fr_profile(rng)
    fr_centres = mean + rng.standard_normal((len(centres), FR_DIM), dtype=np.float32) * (FR_IDENTITY * profile)
    sample = np.arange(min(n_faces, 20_000))
    fr_sample = _fr_faces(fr_centres, labels[sample], profile, rng)
    scales = spaces.fit_scales(dlib[sample], fr_sample, labels[sample])
    space = spaces.Space(spaces.FUSED, scales)
    out = np.empty((n_faces, DIM + FR_DIM), dtype=np.float32)
    for start in range(0, n_faces, chunk):
        stop = min(n_faces, start + chunk)
        out[start:stop] = space.vectors(dlib[start:stop], _fr_faces(fr_centres, labels[start:stop], profile, rng))
    return out, labels, (centres, fr_centres, profile), space


def _fr_faces(fr_centres: np.ndarray, who: np.ndarray, profile: np.ndarray, rng) -> np.ndarray:
    """Unit synthetic FaceRes descriptors of new photos of identities `who`."""
    raw = fr_centres[who] + rng.standard_normal((len(who), FR_DIM), dtype=np.float32) * (FR_PHOTO * profile)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def fused_probes(generator, space: spaces.Space, count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """New photos of `count` enrolled identities as fused vectors: (queries, their identity)."""
    centres, fr_centres, profile = generator
    dlib, who = probes(centres, count, seed)
    fr = _fr_faces(fr_centres, who, profile, np.random.default_rng(seed + 100))
    return space.vectors(dlib, fr), who


def probes(centres: np.ndarray, count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """New photos of `count` enrolled identities: (queries, their identity)."""
    rng = np.random.default_rng(seed)
    who = rng.choice(len(centres), count, replace=False)
    queries = centres[who] + rng.standard_normal((count, DIM), dtype=np.float32) * PHOTO_SIGMA
    return queries.astype(np.float32), who


def _memory_mapped(built: "index.TwoStage") -> tuple["index.TwoStage", int]:
    """The two-stage index with its stored vectors written to a temp file and memory-mapped back, as a search
    opens a gallery's (the file stays in the page cache after writing, as a gallery's does once searched)."""
    folder = Path(tempfile.mkdtemp(prefix="leadmatch-bench-"))
    path = folder / "bench.vectors"
    index.write_vectors(path, built.ids, built.d, (built.vectors[i:i + 65536] for i in range(0, len(built.ids), 65536)))
    ids, vectors = index.read_vectors(path)
    path.unlink()  # the mapping keeps the data until the index is dropped
    folder.rmdir()
    return index.TwoStage(built.first, ids, vectors, built.fixed_proposals), 32 + (8 + 2 * built.d) * len(ids)


def _percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(samples, q)) * 1000, 3)


def search_run(n_faces: int, factory: str | None = None, n_queries: int = 500, seed: int = 0,
               slow_queries: int = 10, model: str = spaces.DLIB,
               proposals: int | None = None) -> dict:
    """One benchmark row: build, size, single-probe latency, batch throughput, mate recall vs exact, for a
    gallery of face model `model` (dlib, or dlib+faceres: fused vectors, see the module docstring); a two-stage
    index's first stage proposes `proposals` faces (default: as a gallery's does, `index.proposals_for`)."""
    model = spaces.validate(model)
    if model == spaces.FUSED:
        faces, labels, generator, space = fused_synthetic(n_faces, seed)
        queries, who = fused_probes(generator, space, min(n_queries, n_faces // FACES_PER_IDENTITY or 1))
    else:
        faces, labels, centres = synthetic(n_faces, seed)
        queries, who = probes(centres, min(n_queries, len(centres)))
    dim = faces.shape[1]
    ids = np.arange(n_faces, dtype=np.int64)
    factory = factory or index.choose_factory(n_faces, dim)

    started = time.perf_counter()
    built = index.build(ids, faces, factory)
    if isinstance(built, index.TwoStage):
        built.fixed_proposals = proposals
    build_s = time.perf_counter() - started
    check = index.self_check(built, ids, faces)
    index.set_nprobe(built, check["nprobe"])
    check_s = time.perf_counter() - started - build_s
    size = index.memory_bytes(built)
    stored_bytes = None
    if isinstance(built, index.TwoStage):  # searched as a gallery is: its stored vectors memory-mapped from a file
        built, stored_bytes = _memory_mapped(built)

    exact_mode = index.is_exact(built)
    asked = TOP_K if exact_mode else TOP_K * index.RERANK_FACTOR

    def leadmatch_search(q: np.ndarray) -> np.ndarray:
        found, _ = index.search(built, q, asked)
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
    built.search(queries, asked)
    batch_qps = len(queries) / (time.perf_counter() - t)

    _, exact_top = faiss.knn(queries, faces, TOP_K)  # exact FAISS, no copy of the gallery
    exact_lat = []
    for q in queries[:max(slow_queries * 5, 20)]:
        t = time.perf_counter()
        faiss.knn(q.reshape(1, dim), faces, TOP_K)
        exact_lat.append(time.perf_counter() - t)
    numpy_lat = []
    for q in queries[:slow_queries]:
        t = time.perf_counter()
        distances = np.linalg.norm(faces - q, axis=1)  # face_recognition.face_distance
        np.argpartition(distances, TOP_K)[:TOP_K]
        numpy_lat.append(time.perf_counter() - t)

    recall, counted = _mates_kept(results, exact_top, labels, who)
    p50 = _percentile_ms(latencies, 50)
    numpy_p50 = _percentile_ms(numpy_lat, 50)
    return {
        "model": model, "faces": n_faces, "index": factory, "nprobe": check["nprobe"],
        "first_stage_proposals": built.proposals if isinstance(built, index.TwoStage) else None,
        "build_s": round(build_s, 2), "self_check_s": round(check_s, 2), "self_check_recall": check["recall"],
        "bytes_per_face": round(size / n_faces, 1),
        "stored_vector_bytes_per_face": round(stored_bytes / n_faces, 1) if stored_bytes else None,
        "p50_ms": p50, "p99_ms": _percentile_ms(latencies, 99), "batch_qps": round(batch_qps, 1),
        "mate_recall_vs_exact": recall, "probes": counted,
        "exact_p50_ms": _percentile_ms(exact_lat, 50), "numpy_p50_ms": numpy_p50,
        "speedup_vs_numpy": round(numpy_p50 / p50, 1) if p50 else None,
    }


def models_run(n_faces: int, n_queries: int = 500, seed: int = 0, cold_queries: int = 100) -> list[dict]:
    """dlib and dlib+faceres galleries of `n_faces` side by side, their single-probe latencies measured
    interleaved (probe i of one, then probe i of the other), so a shared machine's load falls on both alike.

    The fused gallery is searched as a large one is (`index.choose_factory`: the two-stage index), its stored
    vectors written to a file and memory-mapped back; its float32 copy is dropped before timing, as a search
    process never holds one. Rows: dlib; dlib+faceres with the vector file in the page cache; and the same with
    the file dropped from the cache first (`cold_queries` probes: every proposed row read from disk)."""
    import gc
    import os

    dlib_faces, dlib_labels, centres = synthetic(n_faces, seed)
    dlib_queries, dlib_who = probes(centres, min(n_queries, len(centres)))
    dlib_factory = index.choose_factory(n_faces)
    dlib_index, dlib_build = _built(np.arange(n_faces, dtype=np.int64), dlib_faces, dlib_factory)
    _, dlib_exact = faiss.knn(dlib_queries, dlib_faces, TOP_K)

    fused_faces, fused_labels, generator, space = fused_synthetic(n_faces, seed)
    fused_queries, fused_who = fused_probes(generator, space, min(n_queries, n_faces // FACES_PER_IDENTITY or 1))
    fused_factory = index.choose_factory(n_faces, fused_faces.shape[1])
    fused_index, fused_build = _built(np.arange(n_faces, dtype=np.int64), fused_faces, fused_factory)
    _, fused_exact = faiss.knn(fused_queries, fused_faces, TOP_K)
    memory = index.memory_bytes(fused_index)
    folder = Path(tempfile.mkdtemp(prefix="leadmatch-bench-"))
    stored = folder / "bench.vectors"
    if isinstance(fused_index, index.TwoStage):
        index.write_vectors(stored, fused_index.ids, fused_index.d,
                            (fused_index.vectors[i:i + 65536] for i in range(0, n_faces, 65536)))
        fused_index = index.TwoStage(fused_index.first, *index.read_vectors(stored))
    del fused_faces
    gc.collect()

    def dlib_search(q: np.ndarray) -> np.ndarray:
        found, _ = index.search(dlib_index, q, TOP_K * index.RERANK_FACTOR)
        return found[np.argsort(np.linalg.norm(dlib_faces[found] - q, axis=1))[:TOP_K]]

    def fused_search(q: np.ndarray) -> np.ndarray:
        return index.search(fused_index, q, TOP_K)[0]

    times: dict[str, list[float]] = {"dlib": [], "fused": []}
    results: dict[str, list[np.ndarray]] = {"dlib": [], "fused": []}
    for dq, fq in zip(dlib_queries, fused_queries):
        for name, search_one, q in (("dlib", dlib_search, dq), ("fused", fused_search, fq)):
            started = time.perf_counter()
            results[name].append(search_one(q))
            times[name].append(time.perf_counter() - started)
    cold = []
    if stored.exists():
        with open(stored, "rb") as handle:  # drop the file's pages: each proposed row is read from disk
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        for fq in fused_queries[:cold_queries]:
            started = time.perf_counter()
            fused_search(fq)
            cold.append(time.perf_counter() - started)
        stored.unlink()
    folder.rmdir()

    def row(model: str, factory: str, built: dict, lat: list[float], found, exact, labels, who, size: int,
            note: str) -> dict:
        return {"model": model, "faces": n_faces, "index": factory, "vectors": note, **built,
                "bytes_per_face": round(size / n_faces, 1),
                "p50_ms": _percentile_ms(lat, 50), "p99_ms": _percentile_ms(lat, 99),
                "mate_recall_vs_exact": _mate_recall(found, exact, labels, who) if found is not None else None}

    rows = [row("dlib", dlib_factory, dlib_build, times["dlib"], results["dlib"], dlib_exact, dlib_labels, dlib_who,
                index.memory_bytes(dlib_index), "in the index"),
            row("dlib+faceres", fused_factory, fused_build, times["fused"], results["fused"], fused_exact, fused_labels,
                fused_who, memory, "stored file, in the page cache")]
    rows[1]["stored_vector_bytes_per_face"] = round((32 + (8 + 2 * 1152) * n_faces) / n_faces, 1)
    if cold:
        rows.append(row("dlib+faceres", fused_factory, fused_build, cold, None, None, None, None, memory,
                        "stored file, dropped from the page cache first"))
    for r in rows[1:]:
        r["p99_vs_dlib"] = round(r["p99_ms"] / rows[0]["p99_ms"], 2)
    return rows


def _built(ids: np.ndarray, faces: np.ndarray, factory: str):
    """(index, what its build measured): built, self-checked, nprobe set, as `index.build_gallery` does."""
    started = time.perf_counter()
    built = index.build(ids, faces, factory)
    build_s = time.perf_counter() - started
    check = index.self_check(built, ids, faces)
    index.set_nprobe(built, check["nprobe"])
    return built, {"nprobe": check["nprobe"], "build_s": round(build_s, 1),
                   "self_check_s": round(time.perf_counter() - started - build_s, 1),
                   "self_check_recall": check["recall"],
                   "first_stage_proposals": built.proposals if isinstance(built, index.TwoStage) else None}


def _mate_recall(results, exact_top, labels, who) -> float | None:
    """Where exact search has a true mate in the top 20, the share of probes whose results keep that face."""
    return _mates_kept(results, exact_top, labels, who)[0]


def _mates_kept(results, exact_top, labels, who) -> tuple[float | None, int]:
    """(the share of probes whose results keep their first true mate of exact search's top 20, or None; how many
    probes had such a mate)."""
    counted = kept = 0
    for person, exact_row, ours in zip(who, exact_top, results):
        mates = [f for f in exact_row if f >= 0 and labels[f] == person]
        if mates:
            counted += 1
            kept += mates[0] in ours
    return (round(kept / counted, 4) if counted else None), counted
