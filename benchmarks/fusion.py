"""How a track's (or a burst's) several faces should be combined: min distance, mean embedding, or best frame.

Two measurements, printed and saved as results/fusion.md:
1. Bursts from LFW (../shared/data/lfw-dev): for people with 2+ photos the first photo is enrolled and the second
   becomes a burst of 5 frames with the variation a phone burst or a clip has (scale, blur, JPEG, light, tilt);
   people with one photo are gallery distractors or, held out, non-mated bursts. Rank-1 over mated bursts,
   FNIR at FPIR 10 % (threshold from the non-mated bursts), and FPIR at the 0.6 distance.
2. The sample clip (../shared/data/faces/video): lin_manuel_miranda's distance and the margin to the runner-up.

Usage: python fusion.py [--mated 150] [--distractors 400] [--nonmated 150]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import FACES, ROOT, save  # noqa: E402

from leadmatch.biometrics import faces
from leadmatch.biometrics.photos import decode  # noqa: E402
from leadmatch.search import probes, video  # noqa: E402

LFW = Path(FACES).parent / "lfw-dev"
BURST = 5


def central_face(pixels: np.ndarray):
    """The face nearest the image centre (LFW labels the central person), with its frontalness."""
    found = faces.analyze(decode_pixels(pixels), min_face_px=40)
    if not found.faces:
        return None
    h, w = pixels.shape[:2]
    face = min(found.faces, key=lambda f: ((f.box[1] + f.box[3]) / 2 - w / 2) ** 2 + ((f.box[0] + f.box[2]) / 2 - h / 2) ** 2)
    return face, video.frontalness(pixels, face.box)


def decode_pixels(pixels: np.ndarray):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return decode(buffer.getvalue(), name="frame")


def burst_frames(path: Path, seed: int) -> list[np.ndarray]:
    """Five variants of one photo, as consecutive frames of the same person would differ."""
    rng = random.Random(seed)
    image = Image.open(path).convert("RGB")
    frames = []
    for _ in range(BURST):
        scale = rng.uniform(0.65, 1.0)
        frame = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        frame = frame.rotate(rng.uniform(-8, 8), resample=Image.BILINEAR)
        frame = frame.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.6)))
        frame = ImageEnhance.Brightness(frame).enhance(rng.uniform(0.7, 1.25))
        buffer = io.BytesIO()
        frame.save(buffer, "JPEG", quality=rng.randint(30, 75))
        frames.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    return frames


def embed_photo(path: Path):
    found = central_face(np.asarray(Image.open(path).convert("RGB")))
    return None if found is None else found[0].embedding


def embed_burst(job):
    path, seed = job
    out = []
    for pixels in burst_frames(path, seed):
        found = central_face(pixels)
        if found is not None:
            face, front = found
            observation = video.Observation(0.0, face, front)
            out.append((face.embedding, observation.quality_score))
    return out


def subject_distances(frames: list[tuple[np.ndarray, float]], gallery: np.ndarray, fusion: str) -> np.ndarray:
    """Distance from a burst to every gallery face under one fusion rule."""
    vectors = np.stack([e for e, _ in frames])
    if fusion == "mean":
        vectors = vectors.mean(axis=0, keepdims=True)
    elif fusion == "best":
        vectors = vectors[[int(np.argmax([q for _, q in frames]))]]
    return np.linalg.norm(gallery[None, :, :] - vectors[:, None, :], axis=2).min(axis=0)


def fnir_at_fpir(mated_hits: list[tuple[bool, float]], nonmated: list[float], fpir: float) -> tuple[float, float]:
    threshold = float(np.quantile(nonmated, fpir)) if nonmated else 0.0
    misses = sum(1 for hit, d in mated_hits if not (hit and d < threshold))
    return misses / len(mated_hits), threshold


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mated", type=int, default=150)
    parser.add_argument("--distractors", type=int, default=400)
    parser.add_argument("--nonmated", type=int, default=150)
    args = parser.parse_args()
    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    multi = [p for p in people if len(list(p.glob("*.jpg"))) >= 2][: args.mated]
    single = [p for p in people if len(list(p.glob("*.jpg"))) == 1]
    random.Random(0).shuffle(single)
    distractors, held_out = single[: args.distractors], single[args.distractors: args.distractors + args.nonmated]

    gallery_photos = [(p.name, sorted(p.glob("*.jpg"))[0]) for p in multi + distractors]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        embedded = pool.map(embed_photo, [path for _, path in gallery_photos], chunksize=8)
        mated_bursts = pool.map(embed_burst, [(sorted(p.glob("*.jpg"))[1], i) for i, p in enumerate(multi)], chunksize=4)
        nonmated_bursts = pool.map(embed_burst, [(sorted(p.glob("*.jpg"))[0], 10_000 + i)
                                                 for i, p in enumerate(held_out)], chunksize=4)
    names = [name for (name, _), e in zip(gallery_photos, embedded) if e is not None]
    gallery = np.stack([e for e in embedded if e is not None])
    rows = []
    for fusion in probes.FUSIONS:
        hits, mated_scored, usable = 0, [], 0
        for person, frames in zip(multi, mated_bursts):
            if not frames:
                mated_scored.append((False, 9.0))
                continue
            usable += 1
            d = subject_distances(frames, gallery, fusion)
            top = int(np.argmin(d))
            hit = names[top] == person.name
            hits += hit
            mated_scored.append((hit, float(d[top])))
        nonmated = [float(subject_distances(f, gallery, fusion).min()) for f in nonmated_bursts if f]
        fnir10, t10 = fnir_at_fpir(mated_scored, nonmated, 0.10)
        rows.append({"fusion": fusion, "mated bursts": len(multi), "rank-1 (misses counted)": f"{hits / len(multi):.3f}",
                     "FNIR @ FPIR 10 %": f"{fnir10:.3f}", "threshold @ FPIR 10 %": f"{t10:.3f}",
                     "FPIR @ 0.6": f"{sum(d < 0.6 for d in nonmated) / max(1, len(nonmated)):.3f}",
                     "non-mated bursts": len(nonmated)})

    clip = video.analyze_video(FACES / "video" / "short_hamilton_clip.mp4")
    track = max(clip.tracks, key=lambda t: len(probes.usable_frames(t)))
    frames = [(o.face.embedding, o.quality_score) for o in probes.usable_frames(track)]
    sample = [(p.parent.name, embed_photo(p)) for p in sorted((FACES / "gallery").glob("*/*"))]
    sample_names = [n for n, _ in sample]
    sample_gallery = np.stack([e for _, e in sample])
    for row in rows:
        d = subject_distances(frames, sample_gallery, row["fusion"])
        per_subject = {}
        for name, dist in zip(sample_names, d):
            per_subject[name] = min(per_subject.get(name, 9.0), float(dist))
        ranked = sorted(per_subject.items(), key=lambda kv: kv[1])
        row["clip: rank-1"] = ranked[0][0]
        row["clip: distance"] = f"{ranked[0][1]:.3f}"
        row["clip: margin to runner-up"] = f"{ranked[1][1] - ranked[0][1]:.3f}"
    notes = [f"gallery: {len(names)} LFW photos ({len(multi)} mated people, {len(distractors)} distractors); "
             f"bursts of {BURST} frames: scale 0.65–1.0, tilt ±8°, blur σ 0–1.6, brightness 0.7–1.25, JPEG q 30–75",
             "clip: the sample clip's searchable track, its best frames by quality (at most 5), against the 6-person "
             "sample gallery", f"run from {ROOT.name}"]
    save("fusion", "Fusing several frames of one person: min distance vs mean embedding vs best frame", rows, notes)


if __name__ == "__main__":
    main()
