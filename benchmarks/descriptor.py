"""Benchmark: the face descriptor alone — dlib's ResNet run by dlib, by ONNX Runtime (threads × batch) and by
OpenCV's dnn module, on the aligned chips of every face in the sample photos; milliseconds a face and the largest
difference from dlib's embeddings.

    python benchmarks/descriptor.py        (make bench)
"""

from __future__ import annotations

import multiprocessing
import statistics
import time

import numpy as np
from common import FACES, load_note, save

from leadmatch.biometrics import faces
from leadmatch.biometrics.models import agreement
from leadmatch.biometrics.models import registry as models

ROUNDS = 3


def per_face_ms(embed, chips: list, batch: int) -> tuple[float, np.ndarray]:
    """Median over ROUNDS of the ms a face costs when `embed` gets `batch` chips a call; and its embeddings."""
    embed(chips[:batch])  # warm up
    times, out = [], None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        parts = [embed(chips[i:i + batch]) for i in range(0, len(chips), batch)]
        times.append((time.perf_counter() - started) * 1000 / len(chips))
        out = np.vstack(parts)
    return statistics.median(times), out


def ort_embedder(threads: int):
    """A fresh ONNX Runtime session with `threads` intra-op threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(models.onnx_path()), options, providers=["CPUExecutionProvider"])
    return lambda chips: session.run(None, {"chips": np.stack(chips)})[0]


def opencv_embedder():
    """The same ONNX file run by OpenCV's dnn module (no new dependency), one thread."""
    import cv2

    cv2.setNumThreads(1)
    net = cv2.dnn.readNetFromONNX(str(models.onnx_path()))

    def embed(chips):
        net.setInput(np.stack(chips).astype(np.uint8))
        return net.forward()
    return embed


_CHIPS: list = []


def _worker_rate(_: int) -> float:
    """In a forked worker: faces a second with one single-threaded session over all chips (ROUNDS passes)."""
    embed = ort_embedder(1)
    embed(_CHIPS[:8])
    started = time.perf_counter()
    for _ in range(ROUNDS):
        for i in range(0, len(_CHIPS), 8):
            embed(_CHIPS[i:i + 8])
    return ROUNDS * len(_CHIPS) / (time.perf_counter() - started)


def processes_rate(chips: list, processes: int) -> float:
    """Faces a second summed over `processes` worker processes running at the same time."""
    _CHIPS[:] = chips
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return sum(pool.map(_worker_rate, range(processes)))


def main() -> None:
    chips = agreement.reference_chips(FACES, limit=200)
    reference_ms, reference = per_face_ms(lambda c: faces.embed_chips(c, "dlib"), chips, 1)
    rows = [{"engine": "dlib (dlib-bin, its own CPU code)", "threads": 1, "batch": 1, "ms_per_face": round(reference_ms, 2),
             "faces_per_s": round(1000 / reference_ms, 1), "speedup": 1.0, "max_abs_diff_vs_dlib": 0.0}]

    def add(label: str, threads, batch: int, embed) -> None:
        ms, out = per_face_ms(embed, chips, batch)
        rows.append({"engine": label, "threads": threads, "batch": batch, "ms_per_face": round(ms, 2),
                     "faces_per_s": round(1000 / ms, 1), "speedup": round(reference_ms / ms, 1),
                     "max_abs_diff_vs_dlib": float(f"{np.abs(out - reference).max():.2e}")})

    for threads in (1, 2):
        embed = ort_embedder(threads)
        for batch in (1, 8, 32):
            add("onnxruntime", threads, batch, embed)
    try:
        add("opencv dnn (same .onnx)", 1, 1, opencv_embedder())
    except Exception as exc:  # noqa: BLE001 - a table row, not a failure: say why it could not run
        rows.append({"engine": f"opencv dnn: could not run ({type(exc).__name__})", "threads": 1, "batch": 1})
    for processes in (1, 2):
        rate = processes_rate(chips, processes)
        rows.append({"engine": f"onnxruntime, {processes} process(es) × 1 thread, all at once", "threads": processes,
                     "batch": 8, "ms_per_face": round(1000 / rate, 2), "faces_per_s": round(rate, 1),
                     "speedup": round(rate * reference_ms / 1000, 1)})
    save("descriptor", f"Face descriptor: dlib's ResNet on the {len(chips)} sample-photo faces, dlib vs ONNX Runtime "
                       f"vs OpenCV dnn", rows, notes=[
        "ms_per_face: median of 3 passes over all chips, one process unless the row says otherwise",
        "max_abs_diff_vs_dlib: largest difference of any embedding component from dlib's (target ≤ 1e-5)",
        load_note(),
        "leadmatch runs one single-threaded ONNX Runtime session per worker process, batching the faces of "
        f"{8} photos per call",
    ])


if __name__ == "__main__":
    main()
