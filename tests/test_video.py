"""Video probes: the real sample clip gives a lin_manuel_miranda track; bad clips give one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from leadmatch.biometrics import quality
from leadmatch.errors import PhotoError
from leadmatch.search import video

from .helpers import FACES

CLIP = FACES / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def clip_analysis():
    return video.analyze_video(CLIP)


def write_clip(path: Path, frames: int, size: tuple[int, int], fps: float, painter=None) -> Path:
    """Write a small mp4 (mp4v codec, shipped in OpenCV's wheel) of `frames` frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = painter(i) if painter else rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_sample_clip_tracks_lin_manuel_miranda_close_up(clip_analysis):
    a = clip_analysis
    assert a.width == 640 and a.height == 360 and 9.0 < a.duration_s < 9.3
    assert 85 <= a.frames_sampled <= 95                 # every 100 ms of a 9.2 s clip
    usable = [t for t in a.tracks if any(not quality.PROBE.shortfalls(o.face) for o in t.best)]
    # Two tracks can be searched: the far shot before the cut and the close-up from 3 to 7 s; the blurred
    # audience at the end cannot.
    assert len(usable) == 2 and len(a.tracks) == 3
    track = max(usable, key=lambda t: t.largest_px)
    assert track.first_s < 3.5 and track.last_s > 6.5 and track.largest_px >= 90
    assert len(track.best) == video.DEFAULT_BEST_FRAMES
    scores = [o.quality_score for o in track.best]
    assert scores == sorted(scores, reverse=True)
    assert all(o.jpeg and o.jpeg[:2] == b"\xff\xd8" for o in track.best)


def test_cut_ends_tracks_so_far_and_close_shots_are_separate(clip_analysis):
    # The far shot (0–0.6 s) and the close-up (from 2.8 s) are split by the cut and the gap between them.
    a = clip_analysis
    assert a.cuts >= 1
    far = [t for t in a.tracks if t.last_s < 1.0]
    close = [t for t in a.tracks if t.first_s > 2.0 and t.last_s < 7.5]
    assert len(far) == 1 and len(close) == 1
    assert far[0].largest_px < quality.PROBE.recommended_face_px <= close[0].largest_px  # ~47 px vs ~97 px


def test_frames_are_ordered_by_quality_and_frontal(clip_analysis):
    best = max(clip_analysis.tracks, key=lambda t: t.best[0].quality_score).best[0]
    assert best.frontalness > 0.8 and best.face.size_px >= 90


def test_empty_and_non_video_files_are_refused_in_one_line(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_bytes(b"this is not a video at all\n" * 100)
    for path, words in ((empty, "empty"), (text, "cannot decode video")):
        with pytest.raises(PhotoError) as err:
            video.analyze_video(path)
        assert words in str(err.value) and "\n" not in str(err.value)


def test_truncated_clip_is_refused_or_read_as_far_as_it_goes(tmp_path):
    data = CLIP.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])   # the moov atom sits at the end of this file: nothing to index
    with pytest.raises(PhotoError) as err:
        video.analyze_video(cut)
    assert "video" in str(err.value)


def test_clip_without_faces_names_how_many_frames_were_looked_at(tmp_path):
    clip = write_clip(tmp_path / "noise.mp4", frames=20, size=(160, 120), fps=10)
    with pytest.raises(PhotoError) as err:
        video.analyze_video(clip)
    assert err.value.reason == "no-face"
    assert "no face found in 20 sampled frames" in str(err.value)


def test_over_long_and_over_4k_clips_are_refused_before_decoding(tmp_path):
    long_clip = write_clip(tmp_path / "long.mp4", frames=700, size=(16, 16), fps=1,
                           painter=lambda i: np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(PhotoError) as err:
        video.analyze_video(long_clip)
    assert err.value.reason == "too-large" and "minutes" in str(err.value)
    big = write_clip(tmp_path / "big.mp4", frames=1, size=(4096, 2304), fps=1,
                     painter=lambda i: np.zeros((2304, 4096, 3), np.uint8))
    with pytest.raises(PhotoError) as err:
        video.analyze_video(big)
    assert err.value.reason == "too-large" and "4K" in str(err.value)


def test_special_files_are_refused(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(PhotoError) as err:
        video.analyze_video(fifo)
    assert "not a regular file" in str(err.value)


def test_iou_and_frontalness_are_sane():
    assert video.iou((0, 10, 10, 0), (0, 10, 10, 0)) == 1.0
    assert video.iou((0, 10, 10, 0), (20, 30, 30, 20)) == 0.0
    assert 0.1 < video.iou((0, 10, 10, 0), (0, 15, 10, 5)) < 0.5


def test_a_1080p_clip_is_tracked_with_its_face_on_the_strips_cut(tmp_path):
    """Large frames are searched in two strips on two cores, as large probe photos are: a face held on the
    line between the strips for two seconds is one track, found in every sampled frame."""
    from leadmatch.biometrics.photos import load

    pixels = load(FACES / "gallery" / "barack_obama" / "obama.jpg").pixels
    head = cv2.resize(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), (320, 400), interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 90, dtype=np.uint8)
    frame[340:740, 800:1120] = head  # centred on x = 960, where the two strips meet

    clip = write_clip(tmp_path / "hd.mp4", frames=20, size=(1920, 1080), fps=10, painter=lambda i: frame)
    found = video.analyze_video(clip, every_s=0.5)
    assert len(found.tracks) == 1
    assert found.tracks[0].frames_seen == found.frames_sampled == 4
