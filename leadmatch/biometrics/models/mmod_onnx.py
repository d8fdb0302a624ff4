"""dlib's CNN face detector (MMOD) re-expressed as an ONNX graph: the same weights, the same scores.

`read_mmod(data)` parses `mmod_human_face_detector.dat` with the reader of onnx_export.py (dlib's serialization)
and returns its layers bottom-up and its detector settings; `build_model` writes the convolutions as an ONNX
model (each affine folded into the convolution below it). The network is the one in dlib's
tools/python/src/cnn_face_detector.cpp:

    downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, INPUT>>>>>>>>>
    rcon5       = relu<affine<con5<45, SUBNET>>>
    net_type    = loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>

The ONNX model holds only the convolutions. Its input `pyramid` is float32 1×3×H×W, the tiled image pyramid that
dlib's input_rgb_image_pyramid builds ((value − channel mean) / 256, levels side by side, zero between them);
its output `scores` is 1×1×h×w. Building the pyramid and turning scores into face rectangles (loss_mmod) is
done in numpy by cnn_detector.py, with the settings this module stores in the model's metadata (`mmod`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from leadmatch.lazy import lazy

from leadmatch.errors import ModelError
from leadmatch.biometrics.models.dlib_format import Layer, Reader, fold, read_details
from leadmatch.biometrics.models.onnx_graph import OPSET, Graph

np = lazy("numpy")

PRODUCER = "leadmatch.mmod_export"
PRODUCER_VERSION = "1"  # bump when the graph written for the same weights changes (its sha256 is on the card)
PYRAMID_DOWN = 6  # pyramid_down<6>: each level is 5/6 of the one above


@dataclass
class MmodSettings:
    """What loss_mmod and the input layer need besides the convolutions (from the .dat's serialized options).

    `stride`/`offset`: an output cell (c, r) looks at the window centred on input point (stride·c + offset,
    stride·r + offset) — dlib's `output_tensor_to_input_tensor` through the convolutions."""

    window: tuple[int, int]  # detector window width, height in pixels
    nms_iou: float  # overlaps_nms: boxes overlapping more than this (or covering that share) are suppressed
    nms_covered: float
    means: tuple[float, float, float]  # avg_red, avg_green, avg_blue of the input layer
    pyramid_padding: int
    pyramid_outer_padding: int
    pyramid_down: int
    stride: int
    offset: int

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "MmodSettings":
        raw = json.loads(text)
        raw["window"], raw["means"] = tuple(raw["window"]), tuple(raw["means"])
        return cls(**raw)


def network_top_down() -> list[tuple]:
    """net_type of cnn_face_detector.cpp as layer kinds, loss first, input last (same spec format as onnx_export)."""
    rcon5 = [("relu",), ("affine",), ("con", 45, 5, 1)]
    con5d = lambda n: [("relu",), ("affine",), ("con", n, 5, 2)]  # noqa: E731
    return [("loss_mmod",), ("con", 1, 9, 1), *rcon5, *rcon5, *rcon5, *con5d(32), *con5d(32), *con5d(16), ("input",)]


def _read_options(reader: Reader) -> tuple[tuple[int, int], float, float]:
    """mmod_options (loss.h deserialize, versions 1–4): detector window and non-max suppression thresholds."""
    version = reader.int()
    if not 1 <= version <= 4:
        raise ValueError(f"unexpected mmod_options version {version}")
    if version == 1:
        windows = [(reader.int(), reader.int())]
    else:
        windows = []
        for _ in range(reader.int()):
            window_version = reader.int()
            windows.append((reader.int(), reader.int()))
            if window_version == 2:
                reader.string()  # label
    if len(windows) != 1:
        raise ValueError(f"expected one detector window, found {len(windows)}")
    for _ in range(3):
        reader.float()  # loss_per_false_alarm, loss_per_missed_target, truth_match_iou_threshold: training only
    nms_iou, nms_covered = reader.float(), reader.float()
    reader.float(), reader.float()  # overlaps_ignore: training only
    if version >= 3 and reader._take(1)[0] != 1:  # assume_image_pyramid: a single byte
        raise ValueError("detector does not assume an image pyramid")
    if version >= 4 and reader.bool():
        raise ValueError("bounding box regression is not supported")
    if version >= 4:
        reader.float()  # bbr_lambda
    return windows[0], nms_iou, nms_covered


def read_mmod(data: bytes) -> tuple[list[Layer], MmodSettings]:
    """Parse the serialized net_type (bytes of the .dat) into its computational layers (input first) and the
    detector settings. The file holds the loss, the add_layer versions top-down, the input layer, then each
    layer's details bottom-up (see onnx_export.read_resnet)."""
    reader = Reader(data)
    top_down = network_top_down()
    reader.version(1)  # add_loss_layer
    if reader.string() != "loss_mmod_":
        raise ValueError("expected loss_mmod_")
    window, nms_iou, nms_covered = _read_options(reader)
    body = top_down[1:]
    versions = []
    for _ in body[:-2]:
        version = reader.int()
        if version not in (1, 2):
            raise ValueError(f"unexpected add_layer version {version}")
        versions.append(version)
    input_version = reader.int()
    if input_version not in (2, 3):
        raise ValueError(f"unexpected input add_layer version {input_version}")
    name = reader.string()
    if name not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        raise ValueError(f"expected input_rgb_image_pyramid, found {name!r}")
    means = tuple(float(np.float32(reader.float())) for _ in range(3))
    # input.h: the first version did not store the paddings; dlib then uses 10 and 11
    padding, outer = (reader.int(), reader.int()) if name == "input_rgb_image_pyramid2" else (10, 11)
    layers = [Layer("input", (), {"means": np.array(means, np.float32)})]
    layers.append(read_details(reader, body[-2]))
    for _ in range(3):
        reader.bool()
    for _ in range(3):
        reader.tensor()
    if input_version == 3:
        reader.int()
    for spec, version in zip(reversed(body[:-2]), reversed(versions)):
        layers.append(read_details(reader, spec))
        for _ in range(3):
            reader.bool()
        for _ in range(3 if version == 2 else 2):
            reader.tensor()
    if reader.buf.read(1):
        raise ValueError("trailing bytes after the network")
    stride, offset = _receptive_mapping(layers)
    settings = MmodSettings(window=window, nms_iou=nms_iou, nms_covered=nms_covered, means=means,
                            pyramid_padding=padding, pyramid_outer_padding=outer, pyramid_down=PYRAMID_DOWN,
                            stride=stride, offset=offset)
    return layers, settings


def _receptive_mapping(layers: list[Layer]) -> tuple[int, int]:
    """dlib's output_tensor_to_input_tensor for this stack of convolutions: input = stride·output + offset.

    Each con_ maps p → p·stride − padding + size/2 (integer size/2), applied from the top layer down."""
    stride, offset = 1, 0
    for layer in reversed(layers):
        if layer.kind != "con":
            continue
        step, pad_y, pad_x, _ = layer.args
        size = layer.arrays["W"].shape[2]
        if pad_y != pad_x or layer.arrays["W"].shape[3] != size:
            raise ValueError("non-square convolution")
        # p_in = p_out·step − pad + size//2, with p_out = stride·c + offset
        stride, offset = stride * step, offset * step - pad_y + size // 2
    return stride, offset


def build_model(layers: list[Layer], settings: MmodSettings):
    """ONNX model for the parsed convolutions: input `pyramid` float32 1×3×H×W, output `scores` float32 1×1×h×w."""
    import onnx
    from onnx import TensorProto, helper

    builder = Graph()
    nodes, inits, const, node = builder.nodes, builder.inits, builder.const, builder.node

    x = "pyramid"
    for layer in fold(layers[1:]):
        if layer.kind == "con":
            stride, pad_y, pad_x, use_relu = layer.args
            weights = layer.arrays["W"]
            k = weights.shape[2]
            x = node("Conv", [x, const(weights, "W"), const(layer.arrays["B"], "B")], kernel_shape=[k, k],
                     strides=[stride, stride], pads=[pad_y, pad_x, pad_y, pad_x])
            if use_relu:
                x = node("Relu", [x])
        elif layer.kind == "relu":
            x = node("Relu", [x])
        else:
            raise ValueError(f"cannot express layer {layer.kind}")
    nodes[-1].output[0] = "scores"
    graph = helper.make_graph(
        nodes, "mmod_human_face_detector",
        [helper.make_tensor_value_info("pyramid", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER,
                              producer_version=PRODUCER_VERSION, ir_version=8)
    helper.set_model_props(model, {"mmod": settings.to_json()})
    onnx.checker.check_model(model)
    return model


def convert(dat: bytes) -> bytes:
    """The .dat's bytes → the ONNX model's bytes (deterministic: the same weights give the same file)."""
    try:
        layers, settings = read_mmod(dat)
    except ValueError as exc:
        raise ModelError(f"cannot read the dlib CNN face detector: {exc}",
                         "reinstall face_recognition_models 0.3.0") from None
    return build_model(layers, settings).SerializeToString()
