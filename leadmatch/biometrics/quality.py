"""Face quality gates: measured values against a floor (refuse) and a recommended level (flag), both chosen
from measured accuracy (see PROBE); and which face of a gallery photo with several to enroll.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

from leadmatch.lazy import lazy

from leadmatch.biometrics.faces import DETECTOR_WINDOW_PX, Face

np = lazy("numpy")


@dataclass(frozen=True)
class QualityRule:
    """Minimum and recommended face width, eye distance and chip sharpness."""

    min_face_px: int
    min_eye_distance_px: float
    min_sharpness: float
    recommended_face_px: int
    recommended_eye_distance_px: float
    recommended_sharpness: float

    def shortfalls(self, face: Face) -> list[str]:
        """What puts `face` below the minimum, each naming the measured value and the minimum."""
        return _compare(face, self.min_face_px, self.min_eye_distance_px, self.min_sharpness, "minimum")

    def warnings(self, face: Face) -> list[str]:
        """What puts `face` below the recommended level (but above the minimum)."""
        return _compare(face, self.recommended_face_px, self.recommended_eye_distance_px,
                        self.recommended_sharpness, "recommended")


def _compare(face: Face, size: float, eyes: float, sharp: float, level: str) -> list[str]:
    out = []
    if face.size_px < size:
        out.append(f"face {face.size_px} px wide (<{size} px {level})")
    if face.eye_distance_px < eyes:
        out.append(f"{face.eye_distance_px:.1f} px between the eyes (<{eyes:g} px {level})")
    if face.sharpness < sharp:
        out.append(f"sharpness {face.sharpness:.1f} (<{sharp:g} {level})")
    return out


#: Chosen from measured rank-1 by quality bin on lfw-dev (full resolution plus generated downscaled, JPEG and
#: blurred copies; `benchmarks/accuracy.py`, table in models/MODEL_CARD.md): a search is refused only below the
#: floor, where rank-1 falls under 50 % (more often wrong than right); between floor and recommended level it
#: runs and is flagged low-quality, rank-1 there being under 90 % (full resolution: about 95 %).
#: - eye distance: floor 16 px (under 16 px: 3 of 8 right; 16–17 px: 11 of 12), recommended 34 px
#:   (28–34 px: 88 %);
#: - sharpness: floor 3 (2–3: 4 of 10 right; 3–4: 67 % of 115), recommended 20 (12–20: 88 %);
#: - face width: no floor earned (46–50 px: 93 % of 232; the 7 faces measured under 46 px were all wrong, too
#:   few to count), so 40 px, under what the probe detector looks for anyway; recommended 80 px (60–80 px: 76 %).
PROBE = QualityRule(40, 16.0, 3.0, 80, 34.0, 20.0)
#: Gallery photos: an authorized gallery is what it is, and a subject refused is lost to every search. The
#: same floor as probes (below it no face is usable); below the recommended level the face is enrolled and
#: flagged on every candidate it yields.
GALLERY = PROBE

#: The smallest face the probe detector looks for: a little under the minimum, so that faces just below
#: it are found and refused with their measured size rather than missed. Detection time grows with the
#: square of 80 / this, so it is what sets the latency of a large probe photo.
PROBE_DETECT_MIN_PX = 52
#: Gallery photos are detected at full scale (HOG's 80 px window), four times fewer pixels than
#: face_recognition's default one-step upsampling.
GALLERY_DETECT_MIN_PX = 80
#: Where no face is found, look again for smaller faces: only photos that would otherwise be refused pay for
#: it. On lfw-dev most blurred faces the 52 px look misses are found at 40 px (face_recognition's own scale).
PROBE_DETECT_STEPS = (PROBE_DETECT_MIN_PX, 40)
GALLERY_DETECT_STEPS = (GALLERY_DETECT_MIN_PX,) + PROBE_DETECT_STEPS
#: A large probe photo is first searched for faces down to this share of its longer side (1/30: 64 px in a
#: 1080p frame, 128 px in 4K), which bounds the first look at about 3.2 million scaled pixels whatever the
#: photo's size; only if that finds nothing are the PROBE_DETECT_STEPS tried. So in a large photo showing a
#: face, a second face under 1/30 of its side is not listed (as one under 52 px is not in any photo).
PROBE_FIRST_LOOK_SHARE = 30


def probe_steps(width: int, height: int) -> tuple[int, ...]:
    """Minimum face sizes a probe photo of `width`×`height` is searched at, in turn until one finds a face:
    1/PROBE_FIRST_LOOK_SHARE of its longer side when that is above 52 px, then PROBE_DETECT_STEPS."""
    first = max(PROBE_DETECT_MIN_PX, round(max(width, height) / PROBE_FIRST_LOOK_SHARE))
    return tuple(dict.fromkeys((first,) + PROBE_DETECT_STEPS))


def detect_in_steps(data: bytes, name: str, steps: tuple[int, ...], detector: str = "hog", cnn_look: bool = False):
    """Faces in the photo's bytes, looked for at each minimum face size of `steps` in turn until one finds
    any: the `faces.Analysis` of the first that does (or of the last); with `cnn_look`, where HOG finds none,
    the CNN's second look (`cnn_second_look`). Raises PhotoError if unreadable."""
    from leadmatch.biometrics.photos import decode

    photo = decode(data, name=name)
    found = _in_steps(photo, steps, detector, probe=False)
    return cnn_second_look(photo) if cnn_look and not found.faces and detector == "hog" else found


def _in_steps(photo, steps: tuple[int, ...], detector: str, probe: bool):
    from leadmatch.biometrics.faces import analyze

    for min_face_px in steps:
        found = analyze(photo, min_face_px=min_face_px, detector=detector, probe=probe)
        if found.faces:
            break
    return found


#: Where HOG finds no face at any step (a probe, or a gallery photo), the CNN detector looks once more: HOG misses
#: turned, blurred and badly lit faces the CNN finds (in 85 of the 86 lfw-dev photos, all conditions, where HOG
#: found none; rank-1 rose in every condition for both models, README "The CNN's second look"). It looks for
#: faces down to PROBE_DETECT_STEPS[-1] px, or larger where that would scale the photo past this many pixels
#: (the CNN costs about 0.5 s of CPU a million scaled pixels: a 1080p photo's look takes 4 s).
CNN_LOOK_MAX_PIXELS = 8_300_000


def cnn_look_min_face(width: int, height: int) -> int:
    """The smallest face the CNN's second look seeks in a `width`×`height` photo: PROBE_DETECT_STEPS[-1] px, or
    more where the photo scaled for that would exceed CNN_LOOK_MAX_PIXELS."""
    bounded = math.ceil(DETECTOR_WINDOW_PX * math.sqrt(width * height / CNN_LOOK_MAX_PIXELS))
    return max(PROBE_DETECT_STEPS[-1], bounded)


def find_probe_faces(data: bytes, name: str, detector: str = "hog"):
    """The faces of a probe photo, as every search and evaluation looks for them: at the photo's `probe_steps`
    in turn, with `faces.detect_probe` (strips on two cores); where HOG finds none, once more with the CNN
    (`cnn_look_min_face`). The Analysis names the detector that found the faces. Raises PhotoError if
    unreadable."""
    from leadmatch.biometrics.photos import decode

    photo = decode(data, name=name)
    found = _in_steps(photo, probe_steps(photo.width, photo.height), detector, probe=True)
    return cnn_second_look(photo) if not found.faces and detector == "hog" else found


def cnn_second_look(photo):
    """The faces the CNN finds in a decoded photo where HOG found none (`cnn_look_min_face` bounds its cost);
    the Analysis says detector "cnn"."""
    from leadmatch.biometrics.faces import analyze

    return analyze(photo, min_face_px=cnn_look_min_face(photo.width, photo.height), detector="cnn", probe=True)


#: A face dominates a photo of several when it is at least this many times as wide as every other face…
DOMINANT_WIDTH_RATIO = 1.25
#: …or when it is the face nearest the photo's centre, at least this share of the widest face's width, and
#: every other face is at least CENTRE_RATIO times as far from the centre (a portrait with bystanders). Both
#: chosen on lfw-dev: every one of its 30 gallery photos with several faces shows its subject largest and central.
CENTRAL_MIN_WIDTH_SHARE = 0.8
CENTRE_RATIO = 3.0
#: Offsets from the centre below this share of the diagonal count as "at the centre" when comparing.
CENTRE_TOLERANCE = 0.05


def centre_offset(box: tuple, width: int, height: int) -> float:
    """Distance from the face box's centre to the photo's centre, as a fraction of the photo's diagonal."""
    top, right, bottom, left = box
    dx, dy = (left + right) / 2 - width / 2, (top + bottom) / 2 - height / 2
    return float(np.hypot(dx, dy) / max(1.0, np.hypot(width, height)))


def dominant_face(faces: list[Face], width: int, height: int) -> tuple[Face | None, str]:
    """The face that clearly dominates a photo of several, and the rule that chose it ("widest" or "central"),
    or (None, "") when none does. See DOMINANT_WIDTH_RATIO and CENTRE_RATIO."""
    if len(faces) == 1:
        return faces[0], "only"
    by_width = sorted(faces, key=lambda f: f.size_px, reverse=True)
    if by_width[0].size_px >= DOMINANT_WIDTH_RATIO * by_width[1].size_px:
        return by_width[0], "widest"
    by_offset = sorted(faces, key=lambda f: centre_offset(f.box, width, height))
    central, nearest_other = by_offset[0], centre_offset(by_offset[1].box, width, height)
    if (central.size_px >= CENTRAL_MIN_WIDTH_SHARE * by_width[0].size_px and
            nearest_other >= CENTRE_RATIO * max(centre_offset(central.box, width, height), CENTRE_TOLERANCE)):
        return central, "central"
    return None, ""


def gallery_decision(faces: list[Face], width: int, height: int) -> tuple[Face | None, list[str], tuple[str, str] | None]:
    """What enrollment does with the faces found in a gallery photo of `width`×`height`: (face to enroll, its
    quality flags, None) or (None, [], (reason, detail)). Refuses only where no usable face exists: no face,
    several faces with none dominant, or a face below the floor; below the recommended level it enrolls and flags."""
    if not faces:
        return None, [], ("no-face", "no face found")
    face, rule = dominant_face(faces, width, height)
    if face is None:
        widths = ", ".join(f"{f.size_px} px" for f in sorted(faces, key=lambda f: -f.size_px))
        return None, [], ("multiple-faces", f"{len(faces)} faces ({widths}), none dominant (at least "
                          f"{DOMINANT_WIDTH_RATIO:g}× as wide as the others, or central with the others far off "
                          f"centre); crop the photo to the subject")
    shortfalls = GALLERY.shortfalls(face)
    if shortfalls:
        small = face.size_px < GALLERY.min_face_px or face.eye_distance_px < GALLERY.min_eye_distance_px
        return None, [], ("too-small" if small else "blurry", "; ".join(shortfalls))
    flags = [f"low-quality: {w}" for w in GALLERY.warnings(face)]
    if len(faces) > 1:
        flags.append(f"one of {len(faces)} faces: the {rule} one (face {face.index}, {face.size_px} px) enrolled")
    return face, flags, None
