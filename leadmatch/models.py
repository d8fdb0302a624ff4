"""The dlib models leadmatch runs, loaded once per process after their sha256 is checked.

Only the models in use are loaded (face_recognition's own import loads the 100 MB 68-point model too).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path

from .errors import ModelError

WEIGHTS_FILE = Path(__file__).resolve().parent.parent / "models" / "weights.json"


def expected_hashes() -> dict[str, str]:
    """File name → sha256 from the model card's `models/weights.json`."""
    try:
        return json.loads(WEIGHTS_FILE.read_text())["weights"]
    except (OSError, ValueError, KeyError):
        raise ModelError(f"model card {WEIGHTS_FILE} is missing or unreadable", "reinstall leadmatch") from None


def models_dir() -> Path:
    """Folder of the installed face_recognition_models weights, found without importing the package.

    Importing it pulls in pkg_resources; we only need its files.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("face_recognition_models is not installed", "run `make install`")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def verified_path(name: str) -> Path:
    """Path of weight file `name`, after checking its sha256 against the model card."""
    expected = expected_hashes().get(name)
    if expected is None:
        raise ModelError(f"{name} is not listed in the model card", "add it to models/weights.json")
    path = models_dir() / name
    if not path.is_file():
        raise ModelError(f"model weights {path} are missing", "reinstall face_recognition_models")
    actual = _sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"model weights {name} do not match the model card (sha256 {actual[:12]}…, expected {expected[:12]}…)",
            "reinstall face_recognition_models 0.3.0",
        )
    return path


def verify_all() -> dict[str, str]:
    """Check every weight file on the card; return name → sha256. Raises ModelError on the first mismatch."""
    return {name: (verified_path(name), digest)[1] for name, digest in expected_hashes().items()}


@functools.cache
def hog_detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.cache
def cnn_detector():
    import dlib

    return dlib.cnn_face_detection_model_v1(str(verified_path("mmod_human_face_detector.dat")))


@functools.cache
def landmarks_5():
    import dlib

    return dlib.shape_predictor(str(verified_path("shape_predictor_5_face_landmarks.dat")))


@functools.cache
def encoder():
    import dlib

    return dlib.face_recognition_model_v1(str(verified_path("dlib_face_recognition_resnet_model_v1.dat")))
