"""FaceRes per face on one core: the converted model on ONNX Runtime (what leadmatch runs), and two ways to make it
cheaper that leadmatch does not use (README "Enrollment time, dlib vs dlib+faceres"): the same model quantized to
int8 (ONNX Runtime static quantization, calibrated on 60 lfw-dev crops), and OpenVINO when it is installed in
this environment (it is not a dependency). Also how far each moves the descriptors from the converted model's.

    python faceres_runtime.py      # table → results/faceres-runtime.{json,md}
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save  # noqa: E402
from lfw_cache import LFW_DEV  # noqa: E402

from leadmatch.biometrics import faceres, faces  # noqa: E402
from leadmatch.biometrics.models import registry  # noqa: E402
from leadmatch.biometrics.photos import load  # noqa: E402

RUNS = 60


def crops(count: int = 120) -> list[np.ndarray]:
    """FaceRes crops of the first face of every 10th lfw-dev photo."""
    out = []
    for path in sorted(LFW_DEV.glob("*/*.jpg"))[::10]:
        pixels = load(path).pixels
        found = faces.detect(pixels, min_face_px=40)
        if found:
            out.append(faceres.crop(pixels, found[0][0]))
        if len(out) == count:
            break
    return out


def cpu_ms(run, crop: np.ndarray) -> float:
    """Median CPU milliseconds of one crop's run, over 3 rounds of RUNS."""
    for _ in range(5):
        run(crop)
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(RUNS):
            run(crop)
        rounds.append((time.process_time() - started) / RUNS * 1000)
    return float(np.median(rounds))


def ort_runner(path: Path):
    session = registry._new_session(path)
    return lambda crop: session.run(None, {"crops": crop[None]})[0][0]


def int8_model(calibration: list[np.ndarray], folder: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{"crops": c[None]} for c in calibration])

        def get_next(self):
            return next(self.feeds, None)

    prepared, quantized = folder / "prepared.onnx", folder / "int8.onnx"
    quant_pre_process(str(registry.faceres_onnx_path()), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    return quantized


def openvino_runner():
    try:
        import openvino
    except ImportError:
        return None
    core = openvino.Core()
    model = core.read_model(str(registry.faceres_onnx_path()))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32",
                                                 "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    return lambda crop: next(iter(request.infer({0: crop[None]}).values()))[0]


def main() -> None:
    found = crops()
    calibration, test = found[:60], found[60:]
    reference = ort_runner(registry.faceres_onnx_path())
    expected = np.array([reference(c) for c in test])
    runners = {"ONNX Runtime, float32 (leadmatch)": reference}
    with tempfile.TemporaryDirectory() as folder:
        runners["ONNX Runtime, int8 (not used)"] = ort_runner(int8_model(calibration, Path(folder)))
        openvino = openvino_runner()
        if openvino:
            runners["OpenVINO, float32 (not used)"] = openvino
        rows = []
        for name, run in runners.items():
            got = np.array([run(c) for c in test])
            moved = np.linalg.norm(faceres.unit(got) - faceres.unit(expected), axis=1)
            rows.append({"runtime": name, "CPU ms a face": round(cpu_ms(run, test[0]), 2),
                         "max |Δ| per component": float(f"{np.abs(got - expected).max():.2g}"),
                         "unit descriptor moved (median)": float(f"{np.median(moved):.2g}")})
    save("faceres-runtime", "FaceRes per face on one core, by runtime", rows, notes=[
        f"{len(test)} lfw-dev crops compared with the converted model on ONNX Runtime; one crop a run",
        "the issue's agreement limit for the converted model is 1e-4 per component",
        "OpenVINO: " + ("float32, one inference thread" if openvino else "not installed here, so no row")])


if __name__ == "__main__":
    main()
