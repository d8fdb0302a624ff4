"""Benchmark 1: search at several synthetic gallery sizes, per index type, against exact FAISS and numpy.

    python benchmarks/search.py 100000 1000000        (make bench)
    python benchmarks/search.py 10000000              (make bench-large)
"""

from __future__ import annotations

import sys

from common import save

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


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000, 1_000_000])
