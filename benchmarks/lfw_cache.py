"""Embeddings of the lfw-dev photos, computed once and kept, so thresholds and gates can be iterated from them.

For every photo and every condition (the original and generated degradations: downscaled, JPEG, blurred), the
faces leadmatch finds (gallery detection at full resolution, probe detection everywhere) with their quality and
embedding, and the faces raw face_recognition finds (HOG, one upsampling, its defaults) with theirs. Each face
leadmatch finds also gets its unit FaceRes descriptor (issue 23) for two crops of its box: `fr`, the one
leadmatch uses (box + 10 % each side), and `fr_wide` (×1.405, shifted right 0.028 and down 0.051 box sizes, as
the JavaScript library's own detector crops); raw face_recognition's faces get zeros there.
One .npz per condition under the cache folder (default /tmp/leadmatch-accuracy-cache; not committed: ~2 MB each).

    python lfw_cache.py [--workers 2] [--conditions full,low,...]
    python lfw_cache.py --faceres-only      # after a change to the FaceRes crop: boxes kept, descriptors redone
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from leadmatch.biometrics import quality  # noqa: E402
from leadmatch.biometrics.photos import decode  # noqa: E402
from leadmatch.errors import PhotoError  # noqa: E402

LFW_DEV = Path(os.environ.get("LEADMATCH_LFW_DEV", Path(__file__).resolve().parent.parent.parent / "shared" / "data" /
                              "lfw-dev"))
CACHE = Path(os.environ.get("LEADMATCH_ACCURACY_CACHE", "/tmp/leadmatch-accuracy-cache"))

#: name → (scale, JPEG quality or None, Gaussian blur sigma in pixels of the original or 0). "low" is the
#: CCTV-like variant of issue 15: face about 55 px, JPEG quality 35.
CONDITIONS = {
    "full": (1.0, None, 0.0),
    "low": (0.55, 35, 0.0),
    "scale0.5": (0.5, 95, 0.0),
    "jpeg15": (1.0, 15, 0.0),
    "blur3": (1.0, 95, 3.0),
}


def degrade(data: bytes, scale: float, jpeg: int | None, sigma: float) -> bytes:
    """The photo's bytes after blur, downscale and JPEG re-encoding (the original bytes if none applies)."""
    if scale == 1.0 and jpeg is None and not sigma:
        return data
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if sigma:
        pixels = cv2.GaussianBlur(pixels, (0, 0), sigma)
    if scale != 1.0:
        height, width = pixels.shape[:2]
        pixels = cv2.resize(pixels, (max(1, round(width * scale)), max(1, round(height * scale))),
                            interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, jpeg or 95])
    return encoded.tobytes()


def photos(root: Path = LFW_DEV) -> list[tuple[str, str]]:
    """(subject, path) for every photo, by path."""
    return [(p.parent.name, str(p)) for p in sorted(root.glob("*/*.jpg"))]


def probe_numbers(items: list[tuple[str, str]]) -> list[int]:
    """The photos `evaluate`'s default protocol searches as probes (degraded conditions need only those:
    gallery photos stay at full resolution)."""
    from leadmatch.gallery.enrollment import Item
    from leadmatch.tools.evaluation import split

    _, mated, nonmated, _ = split([Item(Path(p), s) for s, p in items], 1, 0.2, 0)
    number = {p: n for n, (_, p) in enumerate(items)}
    return sorted(number[str(i.path)] for i in mated + nonmated)


WIDE_CROP = (1.405, (0.028, 0.051))
#: How the cached FaceRes descriptors were cropped; a cache made otherwise has them redone on load
#: (`refresh_faceres`). Change it with `faceres.crop`.
FACERES_CROP = "box + 10 %, bicubic when enlarging"
NO_FACERES = np.zeros(1024, np.float32)


def _faceres(pixels: np.ndarray, box: tuple) -> dict:
    """The face's FaceRes descriptors for both crops studied."""
    from leadmatch.biometrics import faceres

    return {"fr": faceres.embed_crops([faceres.crop(pixels, box)])[0],
            "fr_wide": faceres.embed_crops([faceres.crop(pixels, box, *WIDE_CROP)])[0]}


def _faces(found, mode: str, pixels: np.ndarray) -> list[dict]:
    return [{"mode": mode, "face": f.index, "box": f.box, "size": f.size_px, "eyes": f.eye_distance_px,
             "sharp": f.sharpness, "score": f.detector_score if f.detector_score is not None else np.nan,
             "emb": f.embedding, **_faceres(pixels, f.box)} for f in found.faces]


def _work(job: tuple[int, str, str]) -> tuple[int, list[dict], int, int]:
    """One photo under one condition → (photo number, faces of every mode, width, height)."""
    import face_recognition

    number, path, condition = job
    data = degrade(Path(path).read_bytes(), *CONDITIONS[condition])
    out = []
    try:
        photo = decode(data, name=path)
    except PhotoError:
        return number, out, 0, 0
    if condition == "full":
        out += _faces(quality.detect_in_steps(data, path, (quality.GALLERY_DETECT_MIN_PX,)), "gallery", photo.pixels)
    out += _faces(quality.detect_in_steps(data, path, quality.PROBE_DETECT_STEPS), "probe", photo.pixels)
    boxes = face_recognition.face_locations(photo.pixels, 1, "hog")
    for i, (box, emb) in enumerate(zip(boxes, face_recognition.face_encodings(photo.pixels, boxes)), start=1):
        out.append({"mode": "raw", "face": i, "box": box, "size": box[1] - box[3], "eyes": np.nan, "sharp": np.nan,
                    "score": np.nan, "emb": np.asarray(emb, np.float32), "fr": NO_FACERES, "fr_wide": NO_FACERES})
    return number, out, photo.width, photo.height


def build(condition: str, workers: int) -> Path:
    """Compute and save one condition's cache; return its path."""
    items = photos()
    wanted = range(len(items)) if condition == "full" else probe_numbers(items)
    jobs = [(n, items[n][1], condition) for n in wanted]
    rows, sizes = [], np.zeros((len(items), 2), np.int32)
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for done, (number, faces, width, height) in enumerate(pool.imap_unordered(_work, jobs, chunksize=8), 1):
            sizes[number] = (width, height)
            rows += [dict(f, photo=number) for f in faces]
            if done % 200 == 0:
                print(f"  {condition}: {done}/{len(jobs)} photos, {time.perf_counter() - started:.0f} s", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{condition}.npz"
    temp = CACHE / f".{condition}.tmp.npz"
    np.savez_compressed(
        temp, subjects=np.array([s for s, _ in items]), paths=np.array([p for _, p in items]), sizes=sizes,
        photo=np.array([r["photo"] for r in rows], np.int32), mode=np.array([r["mode"] for r in rows]),
        face=np.array([r["face"] for r in rows], np.int32), box=np.array([r["box"] for r in rows], np.int32).reshape(-1, 4),
        size=np.array([r["size"] for r in rows], np.float32), eyes=np.array([r["eyes"] for r in rows], np.float32),
        sharp=np.array([r["sharp"] for r in rows], np.float32), score=np.array([r["score"] for r in rows], np.float32),
        emb=np.array([r["emb"] for r in rows], np.float32).reshape(-1, 128),
        fr=np.array([r["fr"] for r in rows], np.float32).reshape(-1, 1024),
        fr_wide=np.array([r["fr_wide"] for r in rows], np.float32).reshape(-1, 1024),
        seconds=time.perf_counter() - started, steps=np.array(len(quality.PROBE_DETECT_STEPS)),
        faceres_crop=np.array(FACERES_CROP))
    temp.replace(path)
    print(f"{condition}: {len(rows)} faces from {len(items)} photos in {time.perf_counter() - started:.0f} s -> {path}",
          flush=True)
    return path


def second_look(condition: str) -> None:
    """Bring an older cache in step with PROBE_DETECT_STEPS: photos whose probe detection found no face get the
    faces of the later, smaller-scale looks (the same as recomputing, at a fraction of the cost)."""
    _look_again(condition, "steps", len(quality.PROBE_DETECT_STEPS), "probe", "second look",
                lambda photo: quality._in_steps(photo, quality.PROBE_DETECT_STEPS[1:], "hog", probe=False))


def cnn_look(condition: str) -> None:
    """Bring a cache in step with the CNN's second look (`quality.find_probe_faces`): photos where HOG found no
    probe face at any step get the faces the CNN finds, as mode "probe-cnn" (what a search, and enrollment's
    own second look, then find)."""
    from leadmatch.biometrics.faces import analyze

    _look_again(condition, "cnn_look", 1, "probe-cnn", "the CNN's second look",
                lambda photo: analyze(photo, min_face_px=quality.cnn_look_min_face(photo.width, photo.height),
                                      detector="cnn", probe=True))


def _look_again(condition: str, marker: str, value: int, mode: str, what: str, look) -> None:
    """Unless the cache's `marker` is already `value`: `look(photo)` at every searched photo where HOG found no
    probe face, its faces added as `mode` rows, and the marker set."""
    path = CACHE / f"{condition}.npz"
    with np.load(path) as data:
        cache = {k: data[k] for k in data.files}
    if int(cache.get(marker, np.array(0 if marker != "steps" else 1))) == value:
        return
    items = photos()
    rows = []
    for number in faceless(condition, cache, items):
        try:
            photo = decode(degrade(Path(items[number][1]).read_bytes(), *CONDITIONS[condition]), name=items[number][1])
        except PhotoError:
            continue
        rows += [dict(f, photo=number) for f in _faces(look(photo), mode, photo.pixels)]
    cache[marker] = np.array(value)
    _save_with(condition, cache, rows)
    print(f"{condition}: {what} added {len(rows)} faces", flush=True)


def faceless(condition: str, cache: dict, items: list[tuple[str, str]]) -> list[int]:
    """The photos a condition searches (every photo at full resolution, else the probes) where the cache holds no
    probe face found by HOG."""
    wanted = range(len(items)) if condition == "full" else probe_numbers(items)
    found = set(cache["photo"][cache["mode"] == "probe"].tolist())
    return [n for n in wanted if n not in found]


def leadmatch_rows(cache: dict) -> dict[int, list[int]]:
    """photo number → the cache rows of the faces leadmatch found in it (every mode but raw face_recognition's)."""
    rows: dict[int, list[int]] = {}
    for row, (photo, mode) in enumerate(zip(cache["photo"], cache["mode"])):
        if mode != "raw":
            rows.setdefault(int(photo), []).append(row)
    return rows


def _save_with(condition: str, cache: dict, rows: list[dict]) -> None:
    """Save `cache` with the face `rows` appended (temp file, renamed)."""
    if rows:
        cache["photo"] = np.concatenate([cache["photo"], np.array([r["photo"] for r in rows], np.int32)])
        cache["mode"] = np.concatenate([cache["mode"], np.array([r["mode"] for r in rows])])
        cache["face"] = np.concatenate([cache["face"], np.array([r["face"] for r in rows], np.int32)])
        cache["box"] = np.concatenate([cache["box"], np.array([r["box"] for r in rows], np.int32)])
        for key, column in (("size", "size"), ("eyes", "eyes"), ("sharp", "sharp"), ("score", "score")):
            cache[key] = np.concatenate([cache[key], np.array([r[column] for r in rows], np.float32)])
        for key in ("emb", "fr", "fr_wide"):
            cache[key] = np.concatenate([cache[key], np.array([r[key] for r in rows], np.float32)])
    temp = CACHE / f".{condition}.tmp.npz"
    np.savez_compressed(temp, **cache)
    temp.replace(CACHE / f"{condition}.npz")


def refresh_faceres(condition: str) -> None:
    """Recompute the FaceRes columns (`fr`, `fr_wide`) of a cached condition from its cached boxes, with the
    crop code as it is now (a change to `faceres.crop` needs no new detection: the boxes are the same)."""
    path = CACHE / f"{condition}.npz"
    with np.load(path) as data:
        cache = {k: data[k] for k in data.files}
    rows_by_photo = leadmatch_rows(cache)
    started = time.perf_counter()
    for photo, rows in rows_by_photo.items():
        data = degrade(Path(cache["paths"][photo]).read_bytes(), *CONDITIONS[condition])
        pixels = decode(data, name=str(cache["paths"][photo])).pixels
        for row in rows:
            described = _faceres(pixels, tuple(int(v) for v in cache["box"][row]))
            cache["fr"][row], cache["fr_wide"][row] = described["fr"], described["fr_wide"]
    cache["faceres_crop"] = np.array(FACERES_CROP)
    temp = CACHE / f".{condition}.tmp.npz"
    np.savez_compressed(temp, **cache)
    temp.replace(path)
    print(f"{condition}: FaceRes of {sum(map(len, rows_by_photo.values()))} faces recomputed in "
          f"{time.perf_counter() - started:.0f} s", flush=True)


def load(condition: str) -> dict:
    """One condition's cache as a dict of arrays (built first if missing)."""
    path = CACHE / f"{condition}.npz"
    if not path.exists():
        build(condition, os.cpu_count() or 1)
    second_look(condition)
    cnn_look(condition)
    with np.load(path) as data:
        stale = "faceres_crop" not in data.files or str(data["faceres_crop"]) != FACERES_CROP
    if stale:  # made with another FaceRes crop: the boxes stand, the descriptors are redone
        refresh_faceres(condition)
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--force", action="store_true", help="recompute conditions already cached")
    parser.add_argument("--faceres-only", action="store_true",
                        help="recompute only the cached faces' FaceRes descriptors, from their cached boxes")
    args = parser.parse_args()
    for name in args.conditions.split(","):
        if args.faceres_only:
            refresh_faceres(name)
        elif args.force or not (CACHE / f"{name}.npz").exists():
            build(name, args.workers)
