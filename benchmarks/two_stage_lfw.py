"""Would the two-stage search keep real mates at a million faces? An extrapolation from lfw-dev (issue 23).

The synthetic galleries of `search.py` put every mate near its probe in dlib's space, so the dlib first stage
cannot miss there. Real photos are harder: fusion exists because dlib ranks some mates low. This replays the
lfw-dev split of `accuracy.py` (full resolution, the fused model as a gallery fits it) and, for each accepted
mated probe, compares the mate's distance with the pooled impostor distances (every probe against every
gallery face of another person: about 330,000 pairs). At a gallery of G faces,

- exact fused search has the mate in its top 20 when G · F_fused(mate's fused distance) < 20, and
- the two-stage search keeps it when, besides, G · F_dlib(mate's dlib distance) < N (the first stage's
  proposals): fewer than N impostors are expected closer in dlib's space,

with F the pooled impostor CDF of each space. It is an estimate (impostor distances differ from probe to probe;
~330k pairs resolve a CDF down to about 3e-6, three faces in a million), and it is what the synthetic benchmark
cannot say.

    python two_stage_lfw.py           # → results/two-stage-lfw.{json,md}
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import Protocol, enroll_gallery, faces_by_photo, weights  # noqa: E402
from common import save  # noqa: E402
from lfw_cache import load  # noqa: E402

from leadmatch.biometrics import quality  # noqa: E402
from leadmatch.search import probes as probe_choice  # noqa: E402

SIZES = (100_000, 1_000_000, 10_000_000)
PROPOSALS = (100, 200, 400, 800, 1600, 3200)
TOP = 20


def distances(condition: str = "full") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mate fused, mate dlib, impostor fused, impostor dlib) distances of the accepted mated probes."""
    full = load("full")
    cache = full if condition == "full" else load(condition)
    protocol = Protocol(full)
    vectors, subjects, _, _ = enroll_gallery(protocol, full, model="dlib+faceres")
    scale = weights("dlib+faceres", vectors, subjects)
    fused = vectors * scale
    subjects = np.array(subjects)
    found = faces_by_photo(cache, "probe", "dlib+faceres")
    mate_f, mate_d, imp_f, imp_d = [], [], [], []
    for photo, subject, mated in protocol.probes:
        if not mated or subject not in set(subjects) or not found.get(photo):
            continue
        face = probe_choice.choose(found[photo], "central", *protocol.sizes[photo])
        if face is None or quality.PROBE.shortfalls(face):
            continue
        query = face.embedding * scale
        d_fused = np.linalg.norm(fused - query, axis=1)
        d_dlib = np.linalg.norm(fused[:, :128] - query[:128], axis=1) / scale[0]
        mate = subjects == subject
        best = np.argmin(np.where(mate, d_fused, np.inf))
        mate_f.append(d_fused[best])
        mate_d.append(d_dlib[best])
        imp_f.append(d_fused[~mate])
        imp_d.append(d_dlib[~mate])
    return np.array(mate_f), np.array(mate_d), np.sort(np.concatenate(imp_f)), np.sort(np.concatenate(imp_d))


def cdf(sorted_values: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_values, at, side="left") / len(sorted_values)


def main() -> None:
    mate_f, mate_d, imp_f, imp_d = distances()
    f_fused, f_dlib = cdf(imp_f, mate_f), cdf(imp_d, mate_d)
    rows = []
    for size in SIZES:
        in_top = size * f_fused < TOP
        row = {"gallery faces": size, "mates in exact fused top 20": int(in_top.sum()), "of probes": len(mate_f)}
        for n in PROPOSALS:
            kept = in_top & (size * f_dlib < n)
            row[f"kept, N={n}"] = round(kept.sum() / max(1, in_top.sum()), 4)
        rows.append(row)
    save("two-stage-lfw", "Two-stage search on lfw-dev mates, extrapolated to large galleries", rows, notes=[
        f"{len(mate_f)} accepted mated probes at full resolution; {len(imp_f):,} impostor pairs pooled",
        "kept, N=n: share of the mates exact fused search puts in its top 20 that the dlib first stage also "
        "proposes among its n nearest (expected impostors closer in dlib's space < n); see the module docstring",
    ])


if __name__ == "__main__":
    main()
