"""Model integrity and the lead-only contract of scores."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadmatch.biometrics.models import registry as models
from leadmatch.errors import ModelError
from leadmatch.search import leads

from .helpers import LABEL

CARD = models.WEIGHTS_FILE.parent / "MODEL_CARD.md"


def test_installed_weights_match_the_card():
    checked = models.verify_all()
    assert set(checked) == set(json.loads(models.WEIGHTS_FILE.read_text())["weights"])


def test_model_card_lists_the_same_hashes_as_weights_json():
    text = CARD.read_text()
    for name, digest in models.expected_hashes().items():
        assert name in text and digest in text
    for name, digest in models.faceres_card()["weights"].items():
        assert name in text and digest in text
    for name, entry in models.expected_converted().items():
        sources = entry["from"] if isinstance(entry["from"], list) else [entry["from"]]
        assert name in text and entry["sha256"] in text
        assert all(s in models.expected_hashes() or s in models.faceres_card()["weights"] for s in sources)


def test_altered_weights_are_refused(tmp_path, monkeypatch):
    fake = tmp_path / "models"
    fake.mkdir()
    source = models.models_dir() / "shape_predictor_5_face_landmarks.dat"
    data = bytearray(source.read_bytes())
    data[1000] ^= 0xFF
    (fake / source.name).write_bytes(bytes(data))
    monkeypatch.setattr(models, "models_dir", lambda: fake)
    models.verified_path.cache_clear()
    try:
        with pytest.raises(ModelError, match="do not match the model card"):
            models.verified_path(source.name)
        (fake / source.name).unlink()
        with pytest.raises(ModelError, match="missing"):
            models.verified_path(source.name)
    finally:
        models.verified_path.cache_clear()


@given(st.floats(min_value=0, max_value=4), st.floats(min_value=0, max_value=4))
def test_estimated_false_alarm_rate_grows_with_distance(a, b):
    """The per-candidate rate (which replaced the linear score) never falls as the distance grows."""
    from leadmatch.gallery import calibration

    calibrated = calibration.from_distances([0.41, 0.45, 0.5, 0.52, 0.55, 0.6, 0.62, 0.7], 8)
    ra, rb = calibrated.fpir_at(a), calibrated.fpir_at(b)
    assert 0 <= ra <= 1 and 0 <= rb <= 1
    if a < b:
        assert ra <= rb


@given(st.floats(min_value=0, max_value=2))
def test_every_candidate_field_set_is_lead_only(distance):
    fields = leads.candidate_fields(distance, 0.6)
    assert fields["lead_only"] is True and fields["label"] == LABEL  # the words themselves, not the constant
    assert fields["within_threshold"] == (distance < 0.6)
