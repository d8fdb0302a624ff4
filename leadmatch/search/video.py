"""Video probes: a clip in, face tracks out, each with its best frames kept for searching and for the record.

A clip is sampled every `every_s` seconds (OpenCV decodes; the pip wheel ships FFmpeg). Faces are found and
embedded in each sampled frame with the same pipeline as a photo, then linked into **tracks**: a face joins the
track whose last box it overlaps, or whose last embedding it is close to, within a short gap; a scene cut ends
every track. Each track keeps its best frames by quality (size, eye distance, sharpness, frontalness) as JPEG
images, so a search can show exactly which frames it used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from leadmatch.lazy import lazy

from leadmatch.biometrics.models import registry as models
from leadmatch.safetext import plural
from leadmatch.errors import PhotoError
from leadmatch.biometrics.faces import Face, describe, detect_probe
from leadmatch.biometrics.photos import display_name

cv2 = lazy("cv2")
np = lazy("numpy")

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".3gp", ".ts"})
#: Refused above these before decoding: a probe clip is evidence footage, not a feature film.
MAX_DURATION_S = 600.0
MAX_FRAME_PIXELS = 3840 * 2160
MAX_VIDEO_BYTES = 2 << 30
DEFAULT_EVERY_S = 0.1
DEFAULT_BEST_FRAMES = 5
#: The work one clip search may take, so one agent's clip cannot hold a worker for minutes: frames sampled
#: (duration ÷ every, refused before decoding when the container says so) and wall seconds of analysis.
MAX_SAMPLED_FRAMES = 1200
MAX_ANALYSIS_S = 180.0
#: A face may vanish for this long (motion blur, a turn of the head) and still continue its track.
MAX_GAP_S = 1.0
#: Linking rules: box overlap (intersection over union) or embedding distance to the track's last face.
LINK_IOU = 0.3
LINK_DISTANCE = 0.55
#: Correlation of consecutive frames' colour histograms below this is a cut: every track ends there.
CUT_CORRELATION = 0.5


@dataclass
class Observation:
    """One face of a track in one sampled frame. `jpeg` holds the whole frame, kept only for best frames."""

    time_s: float
    face: Face
    frontalness: float
    jpeg: bytes | None = field(default=None, repr=False)

    @property
    def quality_score(self) -> float:
        """0–1, higher is better: size, eye distance and sharpness saturating at a good probe's level,
        times frontalness. Used only to rank a track's frames against each other."""
        f = self.face
        return (min(1.0, f.size_px / 100.0) * min(1.0, f.eye_distance_px / 40.0)
                * min(1.0, f.sharpness / 100.0) * self.frontalness)

    def summary(self) -> dict:
        return {"time_s": round(self.time_s, 2), "box": list(self.face.box), **self.face.quality(),
                "frontalness": round(self.frontalness, 2), "quality_score": round(self.quality_score, 3)}


@dataclass
class Track:
    """A face followed across frames. `number` counts from 1 in order of first appearance."""

    number: int
    first_s: float
    last_s: float
    frames_seen: int
    last: Observation = field(repr=False)
    best: list[Observation] = field(default_factory=list, repr=False)  # best first

    @property
    def largest_px(self) -> int:
        return max(o.face.size_px for o in self.best)

    def summary(self) -> dict:
        """As listed when the agent must pick a track: number, time span, best frame's size and quality."""
        top = self.best[0]
        return {"track": self.number, "start_s": round(self.first_s, 2), "end_s": round(self.last_s, 2),
                "frames_seen": self.frames_seen, "best_frame": top.summary()}


@dataclass
class VideoAnalysis:
    """What `analyze_video` found: the clip's sha256 and shape, how many frames were sampled, the tracks."""

    sha256: str
    duration_s: float
    fps: float
    width: int
    height: int
    frames_sampled: int
    cuts: int
    tracks: list[Track]


@dataclass
class Budget:
    """What one clip analysis may cost: `max_frames` sampled frames and `max_seconds` of wall time; and a file
    (`cancel_file`) whose appearance stops it at the next frame (the service creates it when the client left).
    Plain data, so it crosses to a worker process."""

    max_frames: int = MAX_SAMPLED_FRAMES
    max_seconds: float = MAX_ANALYSIS_S
    cancel_file: str | None = None

    def planned(self, name: str, duration_s: float, every_s: float) -> None:
        """Refuse, before any frame is decoded, a clip whose length (as its container says) at `every_s`
        needs more frames than the budget."""
        frames = math.floor(duration_s / every_s) + 1 if duration_s > 0 else 0
        if frames > self.max_frames:
            raise PhotoError(f"video {name} sampled every {every_s:g} s makes {frames} frames, over the limit of "
                             f"{self.max_frames} frames a search", f"sample less often (--every "
                             f"{math.ceil(100 * duration_s / max(1, self.max_frames - 1)) / 100:g} or more) or cut the clip",
                             "too-large")

    def check(self, sampled: int, started: float) -> None:
        """Stop the analysis (PhotoError) when cancelled, past its frames (a container that lied about its
        length) or past its seconds."""
        if self.cancel_file and os.path.exists(self.cancel_file):
            raise PhotoError("the clip search was cancelled: its client went away", "search again", "cancelled")
        if sampled > self.max_frames:
            raise PhotoError(f"the clip needs more than {self.max_frames} sampled frames (the limit of a search)",
                             "sample less often (a larger --every) or cut the clip", "too-large")
        if time.monotonic() - started > self.max_seconds:
            raise PhotoError(f"the clip analysis ran past {self.max_seconds:g} s (the limit of a search)",
                             "sample less often (a larger --every), cut the clip, or use --detector hog",
                             "too-large")


def is_video(path: Path) -> bool:
    """True when `path` names a video by its extension (how the CLI tells a clip from a photo)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_file(path: Path) -> int:
    """The clip's size in bytes, after checking it is a regular, non-empty file under the size limit."""
    name = display_name(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise PhotoError(f"cannot read video {name}: {exc.strerror}", "check the path", "unreadable") from None
    if not stat.S_ISREG(info.st_mode):
        raise PhotoError(f"{name} is not a regular file", "give a video file", "unreadable")
    if info.st_size == 0:
        raise PhotoError(f"video {name} is empty (0 bytes)", "give the original clip", "unreadable")
    if info.st_size > MAX_VIDEO_BYTES:
        raise PhotoError(f"video {name} is {info.st_size / 2**30:.1f} GiB (limit {MAX_VIDEO_BYTES / 2**30:.0f} GiB)",
                         "cut the clip to the minutes that matter", "too-large")
    return info.st_size


def open_clip(path: Path, max_duration_s: float = MAX_DURATION_S) -> tuple[cv2.VideoCapture, float, int, int, float]:
    """Open a clip and check its limits (`max_duration_s`: a probe's 10 minutes unless told) from the container
    before decoding anything.

    Returns (capture, fps, width, height, duration_s). Raises PhotoError for unreadable, over-long or
    over-sized clips."""
    name = display_name(path)
    check_file(path)
    capture = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise PhotoError(f"cannot decode video {name}: not a video or corrupt", "give the original clip",
                         "unreadable")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    frames = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
    if not (math.isfinite(fps) and 0 < fps <= 1000) or width <= 0 or height <= 0:
        capture.release()
        raise PhotoError(f"cannot decode video {name}: no readable video stream", "give the original clip",
                         "unreadable")
    if width * height > MAX_FRAME_PIXELS:
        capture.release()
        raise PhotoError(f"video {name} is {width}×{height}, over the 4K limit ({MAX_FRAME_PIXELS:,} pixels a frame)",
                         "downscale the clip to 4K or less", "too-large")
    duration = frames / fps if frames > 0 else 0.0
    if duration > max_duration_s:
        capture.release()
        raise PhotoError(f"video {name} lasts {duration / 60:.1f} minutes (limit {max_duration_s / 60:.0f})",
                         "cut the clip to the minutes that matter", "too-large")
    return capture, fps, width, height, duration


#: JPEG markers that start a frame header (baseline, progressive, lossless, arithmetic-coded), which holds the size.
_JPEG_FRAME_HEADERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or None when `data` is not a JPEG or has none."""
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # fill byte or a marker without length
            at += 1 if marker == 0xFF else 2
            continue
        if marker in _JPEG_FRAME_HEADERS and at + 9 <= len(data):
            return int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        if marker == 0xDA:  # scan data before any frame header
            return None
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return None


def check_jpeg_frames(path: Path) -> None:
    """Frames stored as JPEGs (MJPEG) each carry their own size, and the decoder obeys it whatever the container
    said (then scales the picture to the container's size): read every packet raw, without decoding, and refuse
    the clip (PhotoError) when a frame is over the 4K limit. Clips of other codecs are left to the header check."""
    name = display_name(path)
    capture = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened() or not capture.set(cv2.CAP_PROP_FORMAT, -1):
            return
        number = 0
        while True:
            ok, packet = capture.read()
            if not ok or packet is None:
                return
            size = jpeg_size(packet.tobytes())
            if size is None:
                return  # not JPEG frames (or not readable as such): nothing more to learn here
            number += 1
            if size[0] * size[1] > MAX_FRAME_PIXELS:
                raise PhotoError(f"video {name}: frame {number} is {size[0]}×{size[1]}, over the 4K limit "
                                 f"({MAX_FRAME_PIXELS:,} pixels a frame) though the clip's header says "
                                 f"{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}×"
                                 f"{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}",
                                 "downscale the clip to 4K or less", "too-large")
    finally:
        capture.release()


def sample_frames(capture: cv2.VideoCapture, every_s: float, max_duration_s: float = MAX_DURATION_S
                  ) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in seconds, RGB frame) every `every_s` seconds of the clip's own timestamps.

    Frames in between are grabbed but not converted. Stops at `max_duration_s` even if the container lied
    about its length."""
    next_s = 0.0
    while capture.grab():
        time_s = (capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
        if time_s > max_duration_s:
            raise PhotoError(f"video runs past {max_duration_s / 60:.0f} minutes", "cut the clip to the minutes "
                             "that matter", "too-large")
        if time_s + 1e-6 < next_s:
            continue
        ok, bgr = capture.retrieve()
        if not ok or bgr is None:
            continue
        if bgr.shape[0] * bgr.shape[1] > MAX_FRAME_PIXELS:  # larger than the container said (MJPEG can)
            raise PhotoError(f"a frame at {time_s:.2f} s is {bgr.shape[1]}×{bgr.shape[0]}, over the 4K limit "
                             f"({MAX_FRAME_PIXELS:,} pixels a frame)", "downscale the clip to 4K or less",
                             "too-large")
        next_s = time_s + every_s
        yield time_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _histogram(rgb: np.ndarray) -> np.ndarray:
    small = cv2.resize(rgb, (64, 36), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def is_cut(previous: np.ndarray | None, current: np.ndarray) -> bool:
    """True when two consecutive sampled frames' colour histograms differ like a change of scene."""
    if previous is None:
        return False
    return float(cv2.compareHist(previous, current, cv2.HISTCMP_CORREL)) < CUT_CORRELATION


def frontalness(pixels: np.ndarray, box: tuple) -> float:
    """1 for a face looking at the camera, falling towards 0 as it turns: how far the nose tip sits from the
    midpoint between the eyes, in eye distances (5-point landmarks)."""
    import dlib

    top, right, bottom, left = box
    shape = models.landmarks_5()(pixels, dlib.rectangle(left, top, right, bottom))
    points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float64)
    eye_a, eye_b, nose = points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    eyes = np.linalg.norm(eye_a - eye_b)
    if eyes < 1e-6:
        return 0.0
    axis = (eye_b - eye_a) / eyes
    offset = abs(float(np.dot(nose - (eye_a + eye_b) / 2, axis))) / eyes  # 0 frontal, ~0.5 near profile
    return float(max(0.0, 1.0 - 2.0 * offset))


def iou(a: tuple, b: tuple) -> float:
    """Intersection over union of two (top, right, bottom, left) boxes."""
    top, bottom = max(a[0], b[0]), min(a[2], b[2])
    left, right = max(a[3], b[3]), min(a[1], b[1])
    inter = max(0, bottom - top) * max(0, right - left)
    area = lambda r: max(0, r[2] - r[0]) * max(0, r[1] - r[3])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def _link_cost(track: Track, face: Face, time_s: float) -> float | None:
    """How well `face` continues `track` (lower is better), or None when it cannot."""
    if time_s - track.last_s > MAX_GAP_S:
        return None
    overlap = iou(track.last.face.box, face.box)
    distance = float(np.linalg.norm(track.last.face.embedding - face.embedding))
    if overlap < LINK_IOU and distance > LINK_DISTANCE:
        return None
    return distance - overlap


def _keep_best(track: Track, observation: Observation, frame: np.ndarray, keep: int) -> None:
    """Keep the track's `keep` best observations (by quality score), with their frame as JPEG."""
    scores = [o.quality_score for o in track.best]
    if len(track.best) >= keep and observation.quality_score <= min(scores):
        return
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    observation.jpeg = encoded.tobytes() if ok else None
    track.best.append(observation)
    track.best.sort(key=lambda o: o.quality_score, reverse=True)
    del track.best[keep:]


def analyze_video(path: Path, every_s: float = DEFAULT_EVERY_S, min_face_px: int = 52, detector: str = "hog",
                  keep: int = DEFAULT_BEST_FRAMES, budget: Budget | None = None, max_duration_s: float = MAX_DURATION_S,
                  progress=None) -> VideoAnalysis:
    """Sample, detect, embed and track the faces of a clip, within `budget` (the default limits if None).
    Raises PhotoError for a clip that cannot be used or would exceed the budget, when cancelled, and when no
    face is found in any sampled frame. `max_duration_s`: longer clips are refused (case media allows more than
    a probe, with a budget of its own); `progress(seconds_done, duration_s)` is called every sampled frame
    (`duration_s` as the container says; 0 when it does not), and once more when the whole clip is decoded."""
    if not (0.01 <= every_s <= 10):
        raise PhotoError(f"--every {every_s:g} s is out of range", "sample between every 0.01 and 10 seconds",
                         "bad-option", field="every")
    budget, started = budget or Budget(), time.monotonic()
    budget.check(0, started)
    capture, fps, width, height, duration = open_clip(path, max_duration_s)
    try:
        budget.planned(display_name(Path(path).name), duration, every_s)
        check_jpeg_frames(path)
    except PhotoError:
        capture.release()
        raise
    sha256 = models.sha256_file(path)
    tracks: list[Track] = []
    active: list[Track] = []
    previous_hist, sampled, cuts, last_s = None, 0, 0, 0.0
    try:
        for time_s, frame in sample_frames(capture, every_s, max_duration_s):
            sampled += 1
            budget.check(sampled, started)
            if progress:
                progress(time_s, duration)
            hist = _histogram(frame)
            if is_cut(previous_hist, hist):
                cuts += 1
                active = []
            previous_hist = hist
            active = [t for t in active if time_s - t.last_s <= MAX_GAP_S]
            found = detect_probe(frame, min_face_px=min_face_px, detector=detector)  # large frames: two cores
            faces = [describe(frame, box, i, score) for i, (box, score) in enumerate(found, start=1)]
            _link(faces, frame, time_s, active, tracks, keep)
            last_s = time_s
        if progress and sampled:
            progress(max(duration, last_s), duration)  # the whole clip is decoded
    finally:
        capture.release()
    if sampled == 0:
        raise PhotoError(f"cannot decode video {display_name(path)}: no frame could be read (corrupt or truncated)",
                         "give the original clip", "unreadable")
    if not tracks:
        raise PhotoError(f"no face found in {plural(sampled, 'sampled frame')} of {display_name(path)}",
                         f"faces must be at least {min_face_px} px wide in the frame", "no-face")
    return VideoAnalysis(sha256=sha256, duration_s=duration, fps=fps, width=width, height=height,
                         frames_sampled=sampled, cuts=cuts, tracks=tracks)


def _link(faces: list[Face], frame: np.ndarray, time_s: float, active: list[Track], tracks: list[Track],
          keep: int) -> None:
    """Attach each face of one frame to the best free active track, or start a new track."""
    pairs = []
    for fi, face in enumerate(faces):
        for ti, track in enumerate(active):
            cost = _link_cost(track, face, time_s)
            if cost is not None:
                pairs.append((cost, fi, ti))
    taken_faces, taken_tracks = set(), set()
    assignment: dict[int, Track] = {}
    for cost, fi, ti in sorted(pairs):  # greedy by cost: few faces a frame, so this equals the optimum in practice
        if fi in taken_faces or ti in taken_tracks:
            continue
        taken_faces.add(fi)
        taken_tracks.add(ti)
        assignment[fi] = active[ti]
    for fi, face in enumerate(faces):
        observation = Observation(time_s, face, frontalness(frame, face.box))
        track = assignment.get(fi)
        if track is None:
            track = Track(number=len(tracks) + 1, first_s=time_s, last_s=time_s, frames_seen=0, last=observation)
            tracks.append(track)
            active.append(track)
        track.last, track.last_s = observation, time_s
        track.frames_seen += 1
        _keep_best(track, observation, frame, keep)


# A kept analysis -------------------------------------------------------------------------------------------
#
# Listing a clip's tracks for the agent to pick from, then searching the one picked, would analyse the clip twice.
# The first analysis is kept instead, beside the kept upload (private, swept with it), keyed by the clip's sha256
# and every option that changes what an analysis finds; the search after the pick reads it back.

#: Bumped when what a kept analysis holds changes: an older file is then analysed afresh, never misread.
KEPT_VERSION = 1


def analysis_key(sha256: str, every_s: float, detector: str, keep: int, min_face_px: int) -> str:
    """What a kept analysis must match to be reused: the clip's bytes and the options of its analysis."""
    return f"v{KEPT_VERSION}:{sha256}:{every_s!r}:{detector}:{keep}:{min_face_px}"


def kept_path(folder: Path, key: str) -> Path:
    """Where the analysis of `key` is kept in `folder` (a dot file: never taken for an uploaded probe)."""
    return Path(folder) / f".analysis-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def keep_analysis(folder: Path, key: str, found: VideoAnalysis) -> Path:
    """Write `found` to `folder` under `key`: owner-only (0600), through a temp file renamed into place, so a
    reader finds the whole analysis or none. Returns the file."""
    target = kept_path(folder, key)
    temp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    data = json.dumps({"key": key, "analysis": _analysis_dict(found)}, separators=(",", ":")).encode()
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def kept_analysis(folder: Path, key: str) -> VideoAnalysis | None:
    """The analysis kept in `folder` under `key`, or None (none kept, another key, or unreadable: then the clip
    is simply analysed again)."""
    try:
        stored = json.loads(kept_path(folder, key).read_text(encoding="utf-8"))
        if stored.get("key") != key:
            return None
        return _analysis_from(stored["analysis"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _face_dict(face: Face) -> dict:
    return {"index": face.index, "box": list(face.box), "size_px": face.size_px,
            "eye_distance_px": face.eye_distance_px, "sharpness": face.sharpness,
            "detector_score": face.detector_score, "embedding": [float(v) for v in face.embedding]}


def _face_from(data: dict) -> Face:
    return Face(index=int(data["index"]), box=tuple(int(v) for v in data["box"]), size_px=int(data["size_px"]),
                eye_distance_px=float(data["eye_distance_px"]), sharpness=float(data["sharpness"]),
                detector_score=None if data["detector_score"] is None else float(data["detector_score"]),
                embedding=np.asarray(data["embedding"], dtype=np.float32))


def _observation_dict(o: Observation) -> dict:
    return {"time_s": o.time_s, "face": _face_dict(o.face), "frontalness": o.frontalness,
            "jpeg": base64.b64encode(o.jpeg).decode() if o.jpeg else None}


def _observation_from(data: dict) -> Observation:
    return Observation(float(data["time_s"]), _face_from(data["face"]), float(data["frontalness"]),
                       base64.b64decode(data["jpeg"]) if data["jpeg"] else None)


def _analysis_dict(found: VideoAnalysis) -> dict:
    return {"sha256": found.sha256, "duration_s": found.duration_s, "fps": found.fps, "width": found.width,
            "height": found.height, "frames_sampled": found.frames_sampled, "cuts": found.cuts,
            "tracks": [{"number": t.number, "first_s": t.first_s, "last_s": t.last_s, "frames_seen": t.frames_seen,
                        "best": [_observation_dict(o) for o in t.best]} for t in found.tracks]}


def _analysis_from(data: dict) -> VideoAnalysis:
    tracks = []
    for t in data["tracks"]:
        best = [_observation_from(o) for o in t["best"]]
        # `last` only links faces while a clip is analysed; a kept track is complete, so its latest best frame
        # stands in for it
        tracks.append(Track(number=int(t["number"]), first_s=float(t["first_s"]), last_s=float(t["last_s"]),
                            frames_seen=int(t["frames_seen"]), last=max(best, key=lambda o: o.time_s), best=best))
    return VideoAnalysis(sha256=data["sha256"], duration_s=float(data["duration_s"]), fps=float(data["fps"]),
                         width=int(data["width"]), height=int(data["height"]),
                         frames_sampled=int(data["frames_sampled"]), cuts=int(data["cuts"]), tracks=tracks)


__all__ = ["Budget", "VideoAnalysis", "Track", "Observation", "analyze_video", "is_video", "iou", "frontalness",
           "analysis_key", "keep_analysis", "kept_analysis", "kept_path",
           "VIDEO_SUFFIXES", "DEFAULT_EVERY_S", "DEFAULT_BEST_FRAMES"]
