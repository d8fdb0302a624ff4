"""Mirror-averaged descriptors on lfw-dev: a study, not used by leadmatch (README "The CNN's second look").

Each face's descriptor is replaced by the mean of the face's and its mirror image's (dlib's from the aligned
chip flipped left-right, FaceRes's from the flipped 224 crop, each unit FaceRes vector averaged and scaled to
unit length again), on the probe side only (no enrollment cost) or on both sides. The rest is `accuracy.py`'s
replay: same split, gates, calibration and rates. Mirrored descriptors are computed once per condition into
the cache folder (mirror-<condition>.npz).

    python mirror.py          # table → results/mirror.{json,md}
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402
from common import save  # noqa: E402
from lfw_cache import CACHE, CONDITIONS, degrade, leadmatch_rows, load  # noqa: E402

from leadmatch.biometrics import faceres, faces  # noqa: E402
from leadmatch.biometrics.photos import decode  # noqa: E402


def mirrored(condition: str, cache: dict) -> dict:
    """{emb, fr}: every cached leadmatch face's descriptors from its mirror image (rows as in `cache`)."""
    path = CACHE / f"mirror-{condition}.npz"
    if path.exists():
        with np.load(path) as data:
            if len(data["emb"]) == len(cache["mode"]):
                return {k: data[k] for k in data.files}
    emb = np.zeros((len(cache["mode"]), 128), np.float32)
    fr = np.zeros((len(cache["mode"]), 1024), np.float32)
    rows_by_photo = leadmatch_rows(cache)
    started = time.perf_counter()
    for photo, rows in rows_by_photo.items():
        pixels = decode(degrade(Path(cache["paths"][photo]).read_bytes(), *CONDITIONS[condition]), name="p").pixels
        for row in rows:
            box = tuple(int(v) for v in cache["box"][row])
            _, chip = faces.measure(pixels, box, 0, None)
            emb[row] = faces.embed_chips([np.ascontiguousarray(np.asarray(chip)[:, ::-1])])[0]
            fr[row] = faceres.embed_crops([np.ascontiguousarray(faceres.crop(pixels, box)[:, ::-1])])[0]
    np.savez(path, emb=emb, fr=fr)
    print(f"{condition}: mirrored {sum(map(len, rows_by_photo.values()))} faces in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return {"emb": emb, "fr": fr}


def averaged(cache: dict, mirror: dict, modes: tuple[str, ...]) -> dict:
    """`cache` with the rows of `modes` holding the mean of their own and their mirror's descriptors."""
    out = dict(cache, emb=cache["emb"].copy(), fr=cache["fr"].copy())
    rows = np.isin(cache["mode"], modes)
    out["emb"][rows] = (cache["emb"][rows] + mirror["emb"][rows]) / 2
    out["fr"][rows] = faceres.unit(cache["fr"][rows] + mirror["fr"][rows])
    return out


def main() -> None:
    full = load("full")
    protocol = accuracy.Protocol(full)
    full_mirror = mirrored("full", full)
    probe_modes = ("probe", "probe-cnn")
    rows = []
    for condition in CONDITIONS:
        cache = full if condition == "full" else load(condition)
        mirror = full_mirror if condition == "full" else mirrored(condition, cache)
        variants = {
            "none": (full, cache),
            "probe side": (full, averaged(cache, mirror, probe_modes)),
            "both sides": (averaged(full, full_mirror, ("gallery",) + probe_modes),
                           averaged(cache, mirror, probe_modes)),
        }
        if condition == "full":  # one cache holds the gallery and the probes
            variants["probe side"] = (full, averaged(full, full_mirror, probe_modes))
            variants["both sides"] = (averaged(full, full_mirror, ("gallery",) + probe_modes),) * 2
        for model in ("dlib", "dlib+faceres"):
            for name, (gallery, probes) in variants.items():
                r = accuracy.run(protocol, gallery, probes, model=model)
                fnir = r["fnir_at_fpir"]
                rows.append({"probes": condition, "model": model, "mirror-averaged": name,
                             "rank-1 hits": r["rank1_hits"], "rank-1 %": round(100 * r["rank1"], 1),
                             "FNIR@FPIR 1 %": round(100 * fnir["0.01"]["fnir"], 1),
                             "FNIR@FPIR 10 %": round(100 * fnir["0.1"]["fnir"], 1)})
    save("mirror", "Mirror-averaged descriptors on lfw-dev (a study; leadmatch does not use them)", rows, notes=[
        "accuracy.py's split and replay (455 mated, 289 non-mated probes, 720 gallery people), refusals as misses",
        "probe side: only the probes' descriptors are averaged with their mirror's (no enrollment cost); both "
        "sides: the gallery's too (doubles both descriptors' cost at enrollment)"])


if __name__ == "__main__":
    main()
