"""Benchmark 4: what checking an index file against its recorded content hash costs, on a synthetic gallery
(benchmarks/search.py's dlib-shaped faces) indexed as by default for its size.

    python benchmarks/index_integrity.py [FACES]        (make bench; default 1,000,000)

Measured: writing the file with and without hashing the bytes as they stream out; the cold check (sha256 of
the whole file: a file whose identity is not the one recorded — a copied or restored workspace, or a changed
file); a cold open whose identity matches the record (no hashing); and the warm `index.load` a long-running
process does before every search, beside the search itself.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from common import save

from leadmatch.gallery import index
from leadmatch.record import store
from leadmatch.tools import bench


def timed(call, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def row(step: str, samples: list[float], note: str = "") -> dict:
    return {"step": step, "runs": len(samples), "median_ms": round(statistics.median(samples) * 1000, 3),
            "min_ms": round(min(samples) * 1000, 3), "note": note}


def main(n: int) -> None:
    faces, _, centres = bench.synthetic(n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    factory = index.choose_factory(n)
    print(f"… building {factory} on {n:,} synthetic faces", file=sys.stderr, flush=True)
    built = index.build(ids, faces, factory)
    index.set_nprobe(built, 191)
    queries, _ = bench.probes(centres, 200)
    del faces

    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        conn = store.connect(folder / "record.db")  # only the tables `load` reads: the face stats and the file
        conn.execute("INSERT INTO gallery_stats (gallery_id, faces, id_sum) VALUES (1, ?, ?)", (n, int(ids.sum())))
        path = index.index_path(folder, 1)
        rows = []
        plain = folder / "plain.faiss"
        def write_unhashed() -> None:  # the write path before content hashes: FAISS, fsync, rename
            faiss.write_index(built, str(plain))
            with open(plain, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(plain, folder / "unhashed.faiss")

        rows.append(row("write without hashing (FAISS, fsync, rename)", timed(write_unhashed, 3)))
        rows.append(row("write as leadmatch does (sha256 while streaming, fsync, rename, record)",
                        timed(lambda: index.write_recorded(conn, 1, built, path), 3)))
        size = path.stat().st_size
        rows.append(row("cold check: sha256 of the whole file", timed(lambda: index.file_sha256(path), 5),
                        f"{size / 1e6:.0f} MB, in the page cache"))
        recorded = index.recorded_file(conn, 1)
        rows.append(row("identity check: stat + compare with the record",
                        timed(lambda: index.content_problem(conn, 1, path, index.file_identity(path), recorded), 1000)))

        def cold_open(forget_identity: bool) -> None:
            index._opened.clear()  # a new process
            if forget_identity:  # as after copying the workspace: the bytes must be hashed once
                conn.execute("UPDATE index_files SET identity = '[0, 0, 0, 0, 0]' WHERE gallery_id = 1")
            loaded = index.load(conn, folder, 1, factory)
            assert loaded.repaired is None, loaded.repaired

        rows.append(row("cold load, identity as recorded (mmap, read ids)", timed(lambda: cold_open(False), 5)))
        rows.append(row("cold load, identity changed (sha256 + mmap, read ids)", timed(lambda: cold_open(True), 5)))
        index.load(conn, folder, 1, factory)
        rows.append(row("warm load (kept index: stat, 3 record reads)",
                        timed(lambda: index.load(conn, folder, 1, factory), 2000)))
        kept = index.load(conn, folder, 1, factory).index
        latencies = []
        for q in queries:
            started = time.perf_counter()
            index.search(kept, q, 40)
            latencies.append(time.perf_counter() - started)
        rows.append(row("for scale: one index search, top 40 proposals", latencies))
        conn.close()

    save("index-integrity", f"Index integrity: cost of the content check at {n:,} faces ({factory})", rows, notes=[
        "cold check: paid once per new file identity (device, inode, size, mtime_ns, ctime_ns) that the record does "
        "not hold yet, e.g. a copied or restored workspace, or a file changed outside leadmatch; files leadmatch "
        "writes record their identity, so their first open does not hash them",
        "warm load: what a long-running process (the service) does before every search; the index stays open",
        "shared machine (2 cores used by several developers at once): timings are under contention",
    ])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
