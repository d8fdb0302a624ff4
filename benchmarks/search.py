"""Benchmark 1: search at several synthetic gallery sizes, per index type, against exact FAISS and numpy.

    python benchmarks/search.py 100000 1000000        (make bench)
    python benchmarks/search.py 10000000              (make bench-large)
    python benchmarks/search.py --models 1000000      (dlib and dlib+faceres side by side, same run: issue 23)
"""

from __future__ import annotations

import sys

from common import load_note, save

from leadmatch.gallery import index
from leadmatch.tools import bench

#: Extra index types measured beside the default at sizes where they build in reasonable time on 2 cores.
ALTERNATIVES = {100_000: ["Flat", "HNSW32"], 1_000_000: ["Flat"]}


def main(sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        for factory in [index.choose_factory(n)] + [f for f in ALTERNATIVES.get(n, []) if f != index.choose_factory(n)]:
            print(f"… {n:,} faces, {factory}", file=sys.stderr, flush=True)
            rows.append(bench.search_run(n, factory, slow_queries=5 if n >= 5_000_000 else 10))
    name = "search-large" if max(sizes) >= 5_000_000 else "search"
    save(name, "Search: single-probe top-20 on synthetic dlib-shaped galleries", rows, notes=[
        "p50/p99: one probe at a time through leadmatch's index, including the exact re-rank of approximate results",
        "exact_p50_ms: FAISS brute force (faiss.knn); numpy_p50_ms: numpy norm over all faces "
        "(what face_recognition.face_distance does); speedup_vs_numpy = numpy_p50 / p50",
        "mate_recall_vs_exact: share of probes where leadmatch's top 20 keeps the mate exact search finds",
        "bytes_per_face: serialized index size / faces (what it takes in RAM)",
        "targets: 1M p99 ≤ 2 ms, recall ≥ 0.995, ≥ 100× numpy; 10M p99 ≤ 10 ms, ≤ 200 B/face, build ≤ 15 min",
    ])


def models_main(sizes: list[int]) -> None:
    """Each size with a dlib gallery and a dlib+faceres gallery (fused vectors: the two-stage search above exact
    search's limit), in one run, their probes timed interleaved, so the p99 ratio compares like with like."""
    rows = []
    for n in sizes:
        print(f"… {n:,} faces, dlib and dlib+faceres", file=sys.stderr, flush=True)
        rows += bench.models_run(n)
    save("search-models", "Search: dlib vs dlib+faceres galleries, synthetic, same run", rows, notes=[
        "dlib+faceres: fused 1152-d vectors [a·dlib, b·FR]; at and above 50,000 faces the index is two-stage "
        "(TwoStage:IVF…,SQ8): an IVF/SQ8 index over the dlib part proposes index.proposals_for(n) faces (400 up to "
        "1M), re-ranked by the fused distance from the stored bfloat16 vectors (a file, memory-mapped)",
        "p50/p99: one probe at a time, dlib's and the fused gallery's probes interleaved; dlib's includes its exact "
        "re-rank of the 40 proposed; the fused search's distances are already those of the stored vectors",
        "bytes_per_face: the index's serialized bytes (for the two-stage: its first stage plus 8 B of id a face) — "
        "what stays in RAM; stored_vector_bytes_per_face: the vector file on disk, of which a search reads only "
        "the proposed rows",
        "the cold row: the vector file's pages dropped (posix_fadvise DONTNEED) before its probes",
        "synthetic FaceRes part: see leadmatch/tools/bench.py (decaying spectrum, same/different-person distances "
        "as measured on the sample photos); the mate recall is against exact search over the same fused vectors",
        "targets (issue 23): ≤ 400 B/face in memory, mate recall vs exact fused ≥ 0.995, p99 at 1M within 3× of "
        "dlib's in the same run",
        load_note(),
    ])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--models"]:
        models_main([int(a) for a in sys.argv[2:]] or [1_000_000])
    else:
        main([int(a) for a in sys.argv[1:]] or [100_000, 1_000_000])
