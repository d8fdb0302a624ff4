"""What a search looks with: one face of a photo, one face from each of several stills of one person, or the best
frames of one face track in a video clip.

Whatever the agent brings becomes a `ProbeSet`: the faces to search with (each with its quality and where it came
from) and the provenance to record — the source's sha256, and for a clip the frames used, kept as images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from leadmatch.biometrics.models import registry as models
from leadmatch.biometrics import quality
from leadmatch.search import video
from leadmatch.errors import FaceChoiceNeeded, InputError, PhotoError, Refused
from leadmatch.biometrics.faces import Analysis, Face
from leadmatch.biometrics.photos import PHOTO_SUFFIXES, display_name, read_bytes, sha256_bytes

#: How a subject's distance is taken from several probe faces (a track's frames or several stills).
#: "mean": distance to the mean embedding; "min": the closest any probe face comes; "best": the first (best-quality)
#: face alone. `benchmarks/fusion.py` measured them on LFW bursts and the sample clip: the mean had the best rank-1
#: and the lowest FNIR at FPIR 10 % (min lets every extra frame add a chance of a look-alike), so it is the default.
FUSIONS = ("mean", "min", "best")
DEFAULT_FUSION = "mean"


@dataclass
class ProbeFace:
    """One face a search uses: the face, the image it was cut from (bytes, to keep), and where that came from."""

    face: Face
    image: bytes = field(repr=False)
    image_sha256: str
    suffix: str
    source: str                  # file name as given (display form)
    time_s: float | None = None  # for a video frame
    faces_in_image: int = 1
    detector: str = "hog"        # what found the face: "cnn" on the second look where HOG found none

    def provenance(self) -> dict:
        out = {"source": self.source, "sha256": self.image_sha256, "face_index": self.face.index,
               "faces_in_image": self.faces_in_image, "box": list(self.face.box), "quality": self.face.quality(),
               "detector": self.detector}
        if self.time_s is not None:
            out["time_s"] = round(self.time_s, 2)
        return out


@dataclass
class ProbeSet:
    """The faces to search with and how they were obtained. `kind` is "photo", "stills" or "video"."""

    kind: str
    faces: list[ProbeFace]
    source_sha256: str           # the photo's, the clip's, or (stills) the first photo's
    source_name: str
    flags: list[str] = field(default_factory=list)
    video: dict | None = None    # clip sha256, duration, track, frames sampled
    description: str | None = None  # set by whoever built the set from elsewhere (a case person)
    lead: int = 0                # the face that leads (best quality): a clip's frames are kept in time order

    @property
    def lead_face(self) -> ProbeFace:
        """The face the search is recorded by (its box, quality, stored image) and `best` fusion uses."""
        return self.faces[self.lead]

    def describe(self) -> str:
        """One line naming what was searched, as shown in outputs and the report."""
        if self.description:
            return self.description
        if self.kind == "video":
            times = ", ".join(f"{p.time_s:.1f} s" for p in self.faces)  # in time order (`from_video`)
            return (f"frames {times} of {self.source_name} (track {self.video['track']}, "
                    f"sha256 {self.source_sha256[:16]}…)")
        if self.kind == "stills":
            return f"{len(self.faces)} stills of one person: " + ", ".join(p.source for p in self.faces)
        return self.source_name


#: Besides a face number from 1 (left to right): the largest face, or the one nearest the photo's centre.
FACE_CHOICES = ("largest", "central")


def probe_face(data: bytes, name: str, choice: int | str | None, detector: str = "hog") -> tuple[Face, Analysis]:
    """A probe photo's bytes → the face a search uses (the one found, or `choice`), past the quality gate, with
    everything found. The one pipeline of search and evaluation; raises PhotoError (unreadable, no face),
    FaceChoiceNeeded (several faces, no choice), InputError (no such face) or Refused (below the minimum)."""
    found = quality.find_probe_faces(data, name, detector)
    face = pick_face(found, choice, name)
    gate(face, name)
    return face, found


def choose(faces: list[Face], choice: int | str | None, width: int, height: int) -> Face | None:
    """The face `choice` names among `faces` of a `width`×`height` photo: the only one when there is no choice;
    the largest; the one nearest the centre; face number `choice` (from 1, left to right); else None."""
    if choice is None:
        return faces[0] if len(faces) == 1 else None
    if choice == "largest":
        return max(faces, key=lambda f: f.size_px)
    if choice == "central":
        return min(faces, key=lambda f: quality.centre_offset(f.box, width, height))
    if isinstance(choice, int) and 1 <= choice <= len(faces):
        return faces[choice - 1]
    return None


def pick_face(found: Analysis, choice: int | str | None, probe_name: str) -> Face:
    """The face the agent chose (a number from 1, largest or central); several faces and no choice →
    FaceChoiceNeeded listing them."""
    if not found.faces:
        raise PhotoError(f"no face found in {probe_name}",
                         f"use a photo with a face at least {quality.PROBE_DETECT_STEPS[-1]} px wide", reason="no-face")
    if choice is None:
        if len(found.faces) == 1:
            return found.faces[0]
        raise FaceChoiceNeeded(f"{probe_name} holds {len(found.faces)} faces",
                               "pick one with --face N (numbered left to right), --face largest or --face central",
                               [f.summary() for f in found.faces], field="face")
    face = choose(found.faces, choice, found.width, found.height)
    if face is not None:
        return face
    held = f"{len(found.faces)} {'face' if len(found.faces) == 1 else 'faces'}"
    raise InputError(f"--face {choice} does not exist: {probe_name} holds {held}",
                     f"pick 1 to {len(found.faces)}, largest or central", field="face")


def gate(face: Face, where: str) -> None:
    """Refuse a probe face below the minimum quality (the measured values in the message)."""
    shortfalls = quality.PROBE.shortfalls(face)
    if shortfalls:
        raise Refused(f"probe face {face.index} of {where} is below the minimum quality: {'; '.join(shortfalls)}",
                      "use a larger or sharper photo of the face", "low-quality-probe")


def from_photos(paths: list[Path], choice: int | str | None, detector: str,
                hashes: list[str]) -> ProbeSet:
    """One face from each photo (the agent asserts several photos show one person). `hashes` collects each
    photo's sha256 as soon as it is read, so a refusal can still name them."""
    chosen = []
    for path in paths:
        name = display_name(Path(path).name)
        data = read_bytes(path)
        digest = sha256_bytes(data)
        hashes.append(digest)
        face, found = probe_face(data, name, choice, detector)
        suffix = Path(path).suffix.lower()
        chosen.append(ProbeFace(face, data, digest, suffix if suffix in PHOTO_SUFFIXES else "", name,
                                faces_in_image=len(found.faces), detector=found.detector))
    if len(chosen) > 1 and len({p.image_sha256 for p in chosen}) < len(chosen):
        raise InputError("the same photo was given twice", "give each still once")
    flags = [f"face found by the CNN detector's second look (HOG found none): {p.source}"
             for p in chosen if p.detector != detector]
    return ProbeSet(kind="stills" if len(chosen) > 1 else "photo", faces=chosen, flags=flags,
                    source_sha256=chosen[0].image_sha256, source_name=chosen[0].source)


def pick_track(found: video.VideoAnalysis, choice: int | str | None, name: str) -> video.Track:
    """The track to search: the only usable one, or the agent's pick; several usable and no pick →
    FaceChoiceNeeded listing every track (usable or not, with why not)."""
    usable = [t for t in found.tracks if usable_frames(t)]
    listing = [{**t.summary(), "usable": bool(usable_frames(t)),
                **({} if usable_frames(t) else {"why_not": "; ".join(quality.PROBE.shortfalls(t.best[0].face))})}
               for t in found.tracks]
    if choice is None:
        if len(usable) == 1:
            return usable[0]
        if not usable:
            best = max(found.tracks, key=lambda t: t.best[0].quality_score)
            raise Refused(f"no face track in {name} has a frame of searchable quality (best: track {best.number}, "
                          f"{'; '.join(quality.PROBE.shortfalls(best.best[0].face))})",
                          "use footage where the face is larger or sharper", "low-quality-probe")
        raise FaceChoiceNeeded(f"{name} holds {len(found.tracks)} face tracks ({len(usable)} searchable)",
                               "pick one with --track N or --track largest", listing, field="track")
    if choice == "largest":
        pool = usable or found.tracks
        track = max(pool, key=lambda t: t.largest_px)
    elif isinstance(choice, int) and 1 <= choice <= len(found.tracks):
        track = found.tracks[choice - 1]
    else:
        raise InputError(f"--track {choice} does not exist: {name} holds {len(found.tracks)} track(s)",
                         f"pick 1 to {len(found.tracks)} or largest", field="track")
    if not usable_frames(track):
        raise Refused(f"track {track.number} of {name} has no frame of searchable quality "
                      f"({'; '.join(quality.PROBE.shortfalls(track.best[0].face))})",
                      "pick another track or use better footage", "low-quality-probe", field="track")
    return track


def usable_frames(track: video.Track) -> list[video.Observation]:
    """A track's kept frames that pass the probe quality gate, best first."""
    return [o for o in track.best if not quality.PROBE.shortfalls(o.face)]


def from_video(path: Path, choice: int | str | None, detector: str, every_s: float, best_frames: int,
               hashes: list[str], budget: video.Budget | None = None, kept: Path | None = None,
               progress=None) -> ProbeSet:
    """A track's best frames (those passing the quality gate, at most `best_frames`) as a probe set, in time
    order, the best of them leading; analysed within `budget` (video.Budget; the default limits if None).

    `kept`: a folder where the clip's analysis is kept (see `video.keep_analysis`): an analysis of the same clip
    with the same options found there is used instead of decoding the clip again (the search after a track
    pick), and a fresh one is left there. `progress(seconds_done, duration_s)` is called while the clip is
    decoded (never for a kept analysis)."""
    if not 1 <= best_frames <= 20:
        raise InputError(f"--best-frames {best_frames} is out of range", "use 1 to 20 frames", field="best_frames")
    name = display_name(Path(path).name)
    video.check_file(path)
    digest = models.sha256_file(path)
    hashes.append(digest)
    keep = max(best_frames, video.DEFAULT_BEST_FRAMES)
    key = video.analysis_key(digest, every_s, detector, keep, quality.PROBE_DETECT_MIN_PX)
    found = video.kept_analysis(kept, key) if kept is not None else None
    if found is None:
        found = video.analyze_video(path, every_s=every_s, min_face_px=quality.PROBE_DETECT_MIN_PX,
                                    detector=detector, keep=keep, budget=budget, progress=progress)
        if kept is not None:
            video.keep_analysis(kept, key, found)
    track = pick_track(found, choice, name)
    best = usable_frames(track)[:best_frames]
    frames = sorted(best, key=lambda o: o.time_s)  # listed in time order everywhere; the best one leads
    faces = [ProbeFace(o.face, o.jpeg, hashlib.sha256(o.jpeg).hexdigest(), ".jpg", name, time_s=o.time_s,
                       faces_in_image=0, detector=detector) for o in frames]
    info = {"sha256": found.sha256, "name": name, "duration_s": round(found.duration_s, 2),
            "fps": round(found.fps, 3), "size": [found.width, found.height], "every_s": every_s,
            "frames_sampled": found.frames_sampled, "tracks": len(found.tracks), "track": track.number,
            "track_span_s": [round(track.first_s, 2), round(track.last_s, 2)]}
    return ProbeSet(kind="video", faces=faces, source_sha256=found.sha256, source_name=name, video=info,
                    lead=frames.index(best[0]))


__all__ = ["ProbeFace", "ProbeSet", "from_photos", "from_video", "pick_face", "pick_track", "usable_frames",
           "FUSIONS", "DEFAULT_FUSION"]
