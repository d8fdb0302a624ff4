"""dlib's face-recognition ResNet re-expressed as an ONNX graph: the same weights, the same numbers.

`read_resnet(path)` parses `dlib_face_recognition_resnet_model_v1.dat` following dlib's own `serialize` code
(dlib/serialize.h, dlib/dnn/core.h, layers.h, input.h, loss.h, cuda/tensor.h) and returns its layers bottom-up;
`build_model(layers)` writes them as an ONNX model with each batch-norm (affine) folded into the convolution
before it. The network is the one in dlib's tools/python/src/face_recognition.cpp (`anet_type`).

Input of the ONNX model: `chips`, float32 N×3×150×150, RGB planes already normalised as dlib's
`input_rgb_image_sized` does ((value − channel mean) / 256); output `embeddings`, N×128.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from leadmatch.errors import ModelError

CHIP_PX = 150
EMBEDDING_DIM = 128
OPSET = 13
PRODUCER = "leadmatch.onnx_export"
PRODUCER_VERSION = "1"  # bump when the graph written for the same weights changes (its sha256 is on the card)


# --- dlib's serialization primitives (dlib/serialize.h) -------------------------------------------------------

class _Reader:
    """Sequential reader of dlib's portable binary format."""

    def __init__(self, data: bytes) -> None:
        self.buf = io.BytesIO(data)

    def _take(self, n: int) -> bytes:
        chunk = self.buf.read(n)
        if len(chunk) != n:
            raise ValueError("file ends early")
        return chunk

    def int(self) -> int:
        """pack_int: a control byte (size in the low 4 bits, 0x80 = negative), then that many little-endian bytes."""
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise ValueError(f"bad integer control byte {control:#x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        """float_details: mantissa (int64) and exponent (int16), value = mantissa · 2^exponent."""
        if self.buf.getbuffer()[self.buf.tell()] & 0x70:
            raise ValueError("old ASCII float format is not supported")
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:  # dlib's is_inf / is_ninf / is_nan markers
            raise ValueError("non-finite float in model")
        return float(np.ldexp(np.float64(mantissa), exponent))

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise ValueError("bad bool")
        return ch == b"1"

    def string(self) -> str:
        return self._take(self.int()).decode("latin-1")

    def version(self, *allowed) -> None:
        got = self.int()
        if got not in allowed:
            raise ValueError(f"unexpected version {got}, expected one of {allowed}")

    def tensor(self) -> np.ndarray:
        """resizable_tensor: version 2, num_samples, k, nr, nc, then little-endian float32s."""
        self.version(2)
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        """alias_tensor: version 1 and its shape (the data lives in the layer's params tensor)."""
        self.version(1)
        return tuple(self.int() for _ in range(4))


# --- the layers of anet_type, top (loss) to bottom (input) ----------------------------------------------------

def _block(n: int, stride: int) -> list:
    # block = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [("affine",), ("con", n, 3, 1), ("relu",), ("affine",), ("con", n, 3, stride)]


def _ares(n: int) -> list:
    # ares = relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("relu",), ("add_prev", 1), *_block(n, 1), ("tag", 1)]


def _ares_down(n: int) -> list:
    # ares_down = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [("relu",), ("add_prev", 2), ("avg_pool", 2, 2), ("skip", 1), ("tag", 2), *_block(n, 2), ("tag", 1)]


def network_top_down() -> list[tuple]:
    """anet_type of face_recognition.cpp as a list of layer kinds, loss first, input last."""
    levels = (_ares_down(256)
              + _ares(256) + _ares(256) + _ares_down(256)
              + _ares(128) + _ares(128) + _ares_down(128)
              + _ares(64) + _ares(64) + _ares(64) + _ares_down(64)
              + _ares(32) + _ares(32) + _ares(32))
    return [("loss_metric",), ("fc", EMBEDDING_DIM), ("avg_pool_everything",), *levels,
            ("max_pool", 3, 2), ("relu",), ("affine",), ("con", 32, 7, 2), ("input",)]


@dataclass
class Layer:
    """One computational layer, bottom-up order. `arrays` hold its weights; `args` its shape parameters."""

    kind: str
    args: tuple = ()
    arrays: dict = field(default_factory=dict)


def _read_details(reader: _Reader, spec: tuple) -> Layer:
    """The `details` part of one add_layer (layers.h deserialize of con_, affine_, relu_, ...)."""
    kind = spec[0]
    name = reader.string()
    if kind == "con":
        if name not in ("con_4", "con_5", "con_6"):
            raise ValueError(f"expected con_, found {name!r}")
        params = reader.tensor().ravel()
        filters = reader.int()
        nr, nc, stride_y, stride_x, pad_y, pad_x = (reader.int() for _ in range(6))
        w_shape, b_shape = reader.alias(), reader.alias()
        for _ in range(4):
            reader.float()  # learning-rate and weight-decay multipliers: training only
        use_bias = reader.bool() if name in ("con_5", "con_6") else True
        use_relu = reader.bool() if name == "con_6" else False
        if (filters, nr, stride_y) != spec[1:] or nr != nc or stride_x != stride_y:
            raise ValueError(f"convolution {filters}x{nr}x{nc}/{stride_y} does not match the network definition")
        size_w = int(np.prod(w_shape))
        weights = params[:size_w].reshape(w_shape)
        bias = params[size_w:size_w + int(np.prod(b_shape))] if use_bias else np.zeros(filters, np.float32)
        return Layer("con", (stride_y, pad_y, pad_x, use_relu), {"W": weights, "B": bias.reshape(filters)})
    if kind == "affine":
        if name == "bn_con2":
            params = reader.tensor().ravel()
            g_shape, b_shape = reader.alias(), reader.alias()
            for _ in range(2):
                reader.tensor()  # means, invstds of the last training batch
            running_means, running_variances = reader.tensor().ravel(), reader.tensor().ravel()
            reader.int(), reader.int()  # num_updates, running_stats_window_size
            for _ in range(4):
                reader.float()
            eps = np.float32(reader.float())
            k = int(np.prod(g_shape))
            gamma, beta = params[:k], params[k:k + int(np.prod(b_shape))]
            # affine_(const bn_&): g = gamma / sqrt(var + eps); b = beta - g * mean (float arithmetic, as dlib)
            scale = (gamma / np.sqrt(running_variances + eps)).astype(np.float32)
            shift = (beta - scale * running_means).astype(np.float32)
            return Layer("affine", (), {"scale": scale, "shift": shift})
        if name in ("affine_", "affine_2"):
            params = reader.tensor().ravel()
            g_shape, b_shape = reader.alias(), reader.alias()
            mode = reader.int()
            disabled = reader.bool() if name == "affine_2" else False
            if mode != 0:  # CONV_MODE: one scale per channel
                raise ValueError("affine layer is not in convolution mode")
            if disabled:  # already folded into the convolution by dlib
                return Layer("identity")
            k = int(np.prod(g_shape))
            return Layer("affine", (), {"scale": params[:k].copy(), "shift": params[k:k + int(np.prod(b_shape))].copy()})
        raise ValueError(f"expected affine_ or bn_con2, found {name!r}")
    if kind == "relu":
        if name not in ("relu_", "relu_2"):
            raise ValueError(f"expected relu_, found {name!r}")
        disabled = reader.bool() if name == "relu_2" else False
        return Layer("identity" if disabled else "relu")
    if kind in ("max_pool", "avg_pool", "avg_pool_everything"):
        expected = "max_pool_2" if kind == "max_pool" else "avg_pool_2"
        if name != expected:
            raise ValueError(f"expected {expected}, found {name!r}")
        nr, nc, stride_y, stride_x, pad_y, pad_x = (reader.int() for _ in range(6))
        if kind == "avg_pool_everything":
            if nr != 0 or nc != 0:
                raise ValueError("global average pool expected")
            return Layer("global_avg_pool")
        if (nr, stride_y) != spec[1:] or nr != nc or stride_x != stride_y:
            raise ValueError(f"{kind} window does not match the network definition")
        return Layer(kind, (nr, stride_y, pad_y, pad_x))
    if kind == "add_prev":
        if name != "add_prev_":
            raise ValueError(f"expected add_prev_, found {name!r}")
        return Layer("add_prev", (spec[1],))
    if kind == "fc":
        if name not in ("fc_2", "fc_3"):
            raise ValueError(f"expected fc_, found {name!r}")
        outputs, inputs = reader.int(), reader.int()
        params = reader.tensor().ravel()
        w_shape = reader.alias()
        reader.alias()  # the bias alias: unused, this is fc_no_bias
        bias_mode = reader.int()
        for _ in range(4):
            reader.float()
        if name == "fc_3":
            reader.bool()  # use_bias
        if outputs != spec[1] or bias_mode != 1:  # FC_NO_BIAS
            raise ValueError("fully connected layer does not match fc_no_bias<128>")
        # dlib computes output = input · W with W stored num_inputs × num_outputs
        return Layer("fc", (), {"W": params[:int(np.prod(w_shape))].reshape(inputs, outputs)})
    raise ValueError(f"unknown layer kind {kind}")


def read_resnet(data: bytes) -> list[Layer]:
    """Parse the serialized `anet_type` (bytes of the .dat) into its computational layers, input first.

    add_loss_layer writes its loss then its subnet; every add_layer writes a version, its whole subnet, then its
    own details; tag and skip layers write a version and their subnet. So the file holds the versions top-down,
    the input layer, then each layer's details bottom-up."""
    reader = _Reader(data)
    top_down = network_top_down()
    reader.version(1)  # add_loss_layer
    loss = reader.string()
    if loss == "loss_metric_2":
        reader.float(), reader.float()
    elif loss != "loss_metric_":
        raise ValueError(f"expected loss_metric_, found {loss!r}")
    body = top_down[1:]
    computational = []
    for spec in body[:-2]:  # every layer above the one that sits on the input
        if spec[0] in ("tag", "skip"):
            reader.version(1)
            computational.append((spec, 1))
        else:
            version = reader.int()
            if version not in (1, 2):
                raise ValueError(f"unexpected add_layer version {version}")
            computational.append((spec, version))
    input_version = reader.int()  # add_layer over the input layer
    if input_version not in (2, 3):
        raise ValueError(f"unexpected input add_layer version {input_version}")
    if reader.string() != "input_rgb_image_sized":
        raise ValueError("expected input_rgb_image_sized")
    means = tuple(np.float32(reader.float()) for _ in range(3))
    if (reader.int(), reader.int()) != (CHIP_PX, CHIP_PX):
        raise ValueError("input is not 150×150")
    layers = [Layer("input", (), {"means": np.array(means, np.float32)})]
    first = _read_details(reader, body[-2])
    for _ in range(3):
        reader.bool()
    for _ in range(3):
        reader.tensor()  # x_grad, cached_output, grad_final: training state
    if input_version == 3:
        reader.int()  # _sample_expansion_factor
    layers.append(first)
    for spec, version in reversed(computational):
        if spec[0] == "tag":
            layers.append(Layer("tag", (spec[1],)))
            continue
        if spec[0] == "skip":
            layers.append(Layer("skip", (spec[1],)))
            continue
        layers.append(_read_details(reader, spec))
        for _ in range(3):
            reader.bool()
        for _ in range(3 if version == 2 else 2):
            reader.tensor()  # x_grad, cached_output, (version 2) params_grad
    if reader.buf.read(1):
        raise ValueError("trailing bytes after the network")
    return layers


def _fold(layers: list[Layer]) -> list[Layer]:
    """Fold each affine (inference-time batch norm) into the convolution right below it: W·s, b·s + t."""
    folded: list[Layer] = []
    for layer in layers:
        if layer.kind == "identity":
            continue
        if layer.kind == "affine":
            below = folded[-1] if folded else None
            if below is None or below.kind != "con" or below.args[3]:
                raise ValueError("affine layer not directly above a convolution")
            scale, shift = layer.arrays["scale"], layer.arrays["shift"]
            below.arrays = {"W": (below.arrays["W"] * scale[:, None, None, None]).astype(np.float32),
                            "B": (below.arrays["B"] * scale + shift).astype(np.float32)}
            continue
        folded.append(layer)
    return folded


class Graph:
    """An ONNX graph being built: its nodes and initializers, each named uniquely in the order added (so the
    same layers always give the same file)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._counter = iter(range(10_000))

    def const(self, array: np.ndarray, stem: str) -> str:
        """Add `array` as an initializer; returns its name."""
        from onnx import numpy_helper

        name = f"{stem}_{next(self._counter)}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        """Add one `op` node on `inputs`; returns the name of its output."""
        from onnx import helper

        out = f"{op.lower()}_{next(self._counter)}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out


def build_model(layers: list[Layer]):
    """ONNX model for the parsed layers. Input `chips`: uint8 N×150×150×3 RGB aligned chips (as
    `dlib.get_face_chip` returns them); output `embeddings`: float32 N×128."""
    import onnx
    from onnx import TensorProto, helper

    builder = Graph()
    nodes, inits, const, node = builder.nodes, builder.inits, builder.const, builder.node

    means = layers[0].arrays["means"]
    x = node("Cast", ["chips"], to=TensorProto.FLOAT)
    x = node("Transpose", [x], perm=[0, 3, 1, 2])
    # input_rgb_image_sized::to_tensor: (value - mean) / 256; /256 is exact, so multiplying by 1/256 is identical
    x = node("Sub", [x, const(means.reshape(1, 3, 1, 1), "means")])
    x = node("Mul", [x, const(np.array(1 / 256, np.float32), "inv256")])
    shape = (3, CHIP_PX, CHIP_PX)
    tags: dict[int, tuple[str, tuple]] = {}
    for layer in _fold(layers[1:]):
        kind = layer.kind
        if kind == "con":
            stride, pad_y, pad_x, use_relu = layer.args
            weights = layer.arrays["W"]
            k = weights.shape[2]
            x = node("Conv", [x, const(weights, "W"), const(layer.arrays["B"], "B")], kernel_shape=[k, k],
                     strides=[stride, stride], pads=[pad_y, pad_x, pad_y, pad_x])
            shape = (weights.shape[0], 1 + (shape[1] + 2 * pad_y - k) // stride,
                     1 + (shape[2] + 2 * pad_x - k) // stride)
            if use_relu:
                x = node("Relu", [x])
        elif kind == "relu":
            x = node("Relu", [x])
        elif kind in ("max_pool", "avg_pool"):
            window, stride, pad_y, pad_x = layer.args
            x = node("MaxPool" if kind == "max_pool" else "AveragePool", [x], kernel_shape=[window, window],
                     strides=[stride, stride], pads=[pad_y, pad_x, pad_y, pad_x])
            shape = (shape[0], 1 + (shape[1] + 2 * pad_y - window) // stride,
                     1 + (shape[2] + 2 * pad_x - window) // stride)
        elif kind == "tag":
            tags[layer.args[0]] = (x, shape)
        elif kind == "skip":
            x, shape = tags[layer.args[0]]
        elif kind == "add_prev":
            # dlib's add_prev sums tensors of different sizes: the output takes the larger of each dimension
            # and the missing part of the smaller one counts as zero (padded at the end).
            other, other_shape = tags[layer.args[0]]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape))
            x = node("Add", [_pad_to(x, shape, target, node, const), _pad_to(other, other_shape, target, node, const)])
            shape = target
        elif kind == "global_avg_pool":
            x = node("GlobalAveragePool", [x])
            x = node("Flatten", [x], axis=1)
            shape = (shape[0],)
        elif kind == "fc":
            x = node("MatMul", [x, const(layer.arrays["W"], "fc")])
            shape = (layer.arrays["W"].shape[1],)
        else:
            raise ValueError(f"cannot express layer {kind}")
    nodes[-1].output[0] = "embeddings"
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["N", CHIP_PX, CHIP_PX, 3])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", EMBEDDING_DIM])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER,
                              producer_version=PRODUCER_VERSION, ir_version=8)
    onnx.checker.check_model(model)
    return model


def _pad_to(x: str, shape: tuple, target: tuple, node, const) -> str:
    """Zero-pad a C×H×W tensor at the end of each dimension up to `target`."""
    if shape == target:
        return x
    pads = [0, 0, 0, 0, 0, target[0] - shape[0], target[1] - shape[1], target[2] - shape[2]]
    return node("Pad", [x, const(np.array(pads, np.int64), "pads")], mode="constant")


def convert(dat: bytes) -> bytes:
    """The .dat's bytes → the ONNX model's bytes (deterministic: the same weights give the same file)."""
    try:
        layers = read_resnet(dat)
    except ValueError as exc:
        raise ModelError(f"cannot read the dlib face recognition model: {exc}",
                         "reinstall face_recognition_models 0.3.0") from None
    return build_model(layers).SerializeToString()
