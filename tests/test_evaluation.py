"""`leadmatch evaluate`: numbers checked against counts worked out by hand from the sample photos."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from leadmatch.errors import InputError
from leadmatch.tools import evaluation

from .helpers import FACES, GALLERY_DIR, probe_rows, run_cli


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """Gallery photos plus every probe, labeled from probes.csv (group photos by their first face)."""
    path = tmp_path_factory.mktemp("eval") / "labeled.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "subject"])
        for photo in sorted(GALLERY_DIR.glob("*/*")):
            writer.writerow([str(photo), photo.parent.name])
        for row in probe_rows():
            writer.writerow([str(FACES / row["file"]), row["identities"][0]])
    return path


@pytest.fixture(scope="module")
def result(manifest):
    return evaluation.evaluate(manifest, enroll_first=1, holdout=0.2, seed=0)


def test_counts_match_the_hand_count(result):
    # 6 subjects, 20% held out → 1 subject; seed 0 holds out kit_harington.
    assert result["holdout_subjects"] == ["kit_harington"]
    # Gallery: the first photo (by path) of each of the 5 other subjects, all enrolled.
    assert result["gallery_photos"] == 5 and result["gallery"]["refused"] == 0
    # Mated: barack_obama obama2.jpg + 10 single-face obama probes + two_people.jpg = 12; alex_lacamoire img1.jpg +
    # 1 probe = 2; joe_biden biden2.jpg + obama_and_biden.jpg = 2; rose_leslie img2.jpg + kit_with_rose.jpg = 2;
    # lin_manuel_miranda has one photo, all enrolled → 18, of which the 3 group photos are refused.
    assert (result["mated_probes"], result["mated_accepted"], result["mated_refused"]) == (18, 15, 3)
    # Non-mated: kit_harington's john1, john2 and johnsnow_test1 = 3.
    assert result["nonmated_probes"] == 3
    # The three group photos hold several faces and no --face was given: refused, listed, tabled.
    assert sorted((r["path"].rsplit("/", 1)[1], r["reason"]) for r in result["refused"]) == [
        ("kit_with_rose.jpg", "multiple-faces"), ("obama_and_biden.jpg", "multiple-faces"),
        ("two_people.jpg", "multiple-faces")]
    assert result["refusals_by_reason"] == {"probe": {"multiple-faces": 3}}


def test_refusals_count_as_misses_in_the_headline(result):
    # 15 searched mated probes all find their person at rank 1; the 3 refused ones are misses (FRTE).
    assert (result["rank1"], result["rank1_hits"]) == (round(15 / 18, 4), 15)
    assert result["rank1_accepted"] == result["rank5_accepted"] == result["rank20_accepted"] == 1.0
    assert result["rank1_by_photo"] == result["rank1"]  # one photo per enrolled subject: the lists agree
    assert result["default_threshold"] == {"threshold": 0.6, "fnir": round(3 / 18, 4), "fnir_misses": 3, "fpir": 0.0,
                                           "fpir_alarms": 0}
    for target in ("0.1", "0.01"):  # 3 non-mated probes cannot resolve an FPIR of 0.1 or 0.01
        assert result["fnir_at_fpir"][target]["fnir"] is None
        assert "have 3" in result["fnir_at_fpir"][target]["note"]


def test_calibrated_threshold_is_measured_beside_its_estimate(result):
    c = result["calibrated_threshold"]
    # 5 people cannot resolve 1 %: the threshold stays at the 1:1 operating point, and says so.
    assert c["subjects"] == 5 and c["threshold"] == 0.6 and c["limited_by"] == "max-threshold"
    assert "in this gallery of 5 people" in c["text"]
    assert (c["measured_fpir"], c["measured_alarms"], c["nonmated_probes"]) == (0.0, 0, 3)
    assert c["estimated_fpir"] == 0.0 and c["fnir_misses"] == 3


def outcome(mated, mate_rank=None, mate_distance=None, top=None, subject="s"):
    return {"mated": mated, "mate_rank": mate_rank, "mate_subject_rank": mate_rank, "mate_distance": mate_distance,
            "top_distance": top, "subject": subject, "path": "x"}


def test_threshold_arithmetic_on_hand_made_outcomes():
    mated = [outcome(True, 1, 0.30), outcome(True, 1, 0.45), outcome(True, 3, 0.58), outcome(True, 2, 0.70),
             outcome(True, None, None)]
    tops = [0.50, 0.55, 0.65, 0.70, 0.72, 0.75, 0.80, 0.82, 0.85, 0.90]
    rates = evaluation.summarize(mated + [outcome(False, top=t) for t in tops])
    assert (rates["rank1"], rates["rank5"], rates["rank20"]) == (0.4, 0.8, 0.8)
    # five refused mated probes halve the headline rates but leave the accepted-only ones alone
    refused = [{"mated": True, "subject": "s", "path": "r", "stage": "probe", "reason": "low-quality"}] * 5
    with_refusals = evaluation.summarize(mated + refused + [outcome(False, top=t) for t in tops])
    assert (with_refusals["rank1"], with_refusals["rank1_accepted"]) == (0.2, 0.4)
    assert with_refusals["mated_probes"] == 10 and with_refusals["mated_refused"] == 5
    assert with_refusals["default_threshold"]["fnir"] == 0.7  # 2 misses + 5 refused of 10
    # FPIR 0.1 of 10 non-mated allows 1 alarm: threshold = 2nd smallest top distance (0.55), strictly below.
    at = rates["fnir_at_fpir"]["0.1"]
    assert at["threshold"] == 0.55 and at["fpir"] == 0.1
    assert (at["misses"], at["fnir"]) == (3, 0.6)  # only 0.30 and 0.45 are under 0.55
    # Default 0.6: mates 0.30, 0.45, 0.58 found → 2 misses of 5; non-mated 0.50, 0.55 under → 2 of 10.
    assert rates["default_threshold"]["fnir"] == 0.4 and rates["default_threshold"]["fpir"] == 0.2
    assert rates["fnir_at_fpir"]["0.01"]["fnir"] is None  # needs 100 non-mated probes


def test_per_group_rates():
    rows = [outcome(True, 1, 0.3, subject="a"), outcome(True, 2, 0.7, subject="b"), outcome(False, top=0.5, subject="c")]
    rates = evaluation.summarize(rows, {"a": {"sex": "f"}, "b": {"sex": "m"}, "c": {"sex": "m"}})
    assert rates["groups"]["sex"]["f"]["rank1"] == 1.0 and rates["groups"]["sex"]["m"]["rank1"] == 0.0
    assert rates["groups"]["sex"]["m"]["nonmated_probes"] == 1


def test_det_plot_is_a_png_with_log_axes(result, tmp_path):
    path = tmp_path / "det.png"
    axes = evaluation.plot_det(result, path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
    assert (axes["xscale"], axes["yscale"]) == ("log", "log")
    assert axes["xlabel"].startswith("FPIR") and axes["ylabel"].startswith("FNIR")


def test_bad_options_are_refused(manifest):
    with pytest.raises(InputError):
        evaluation.evaluate(manifest, enroll_first=0)
    with pytest.raises(InputError):
        evaluation.evaluate(manifest, face="leftmost")
    with pytest.raises(InputError):
        evaluation.evaluate(manifest, holdout=1.5)


def test_cli_json_keys_and_labels(manifest, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,sex\nbarack_obama,m\njoe_biden,m\nrose_leslie,f\nalex_lacamoire,m\n"
                      "kit_harington,m\nlin_manuel_miranda,m\n")
    out = run_cli("evaluate", str(manifest), "--json", "--labels", str(labels), "--plot", str(tmp_path / "d.png"),
                  "--face", "largest")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("rank1", "rank5", "rank20", "mated_probes", "nonmated_probes", "refused", "fnir_at_fpir",
                "default_threshold", "calibrated_threshold", "refusals_by_reason", "rank1_accepted"):
        assert key in data
    assert set(data["fnir_at_fpir"]) == {"0.1", "0.01"}
    # --face largest searches the group photos instead of refusing them
    assert data["face_choice"] == "largest" and data["refused"] == [] and data["mated_accepted"] == 18
    assert data["rank1_hits"] >= 15
    assert data["groups"]["sex"]["f"]["mated_probes"] == 2  # rose_leslie: img2.jpg and kit_with_rose.jpg
    assert (tmp_path / "d.png").is_file()
