"""dlib's face-recognition ResNet re-expressed as an ONNX graph: the same weights, the same numbers.

`read_resnet(path)` parses `dlib_face_recognition_resnet_model_v1.dat` following dlib's own `serialize` code
(dlib/serialize.h, dlib/dnn/core.h, layers.h, input.h, loss.h, cuda/tensor.h) and returns its layers bottom-up;
`build_model(layers)` writes them as an ONNX model with each batch-norm (affine) folded into the convolution
before it. The network is the one in dlib's tools/python/src/face_recognition.cpp (`anet_type`).

Input of the ONNX model: `chips`, float32 N×3×150×150, RGB planes already normalised as dlib's
`input_rgb_image_sized` does ((value − channel mean) / 256); output `embeddings`, N×128.
"""

from __future__ import annotations

from leadmatch.lazy import lazy
from leadmatch.biometrics.models.dlib_format import Layer, Reader, fold, read_details
from leadmatch.biometrics.models.onnx_graph import OPSET, Graph
from leadmatch.errors import ModelError

np = lazy("numpy")

CHIP_PX = 150
EMBEDDING_DIM = 128
PRODUCER = "leadmatch.onnx_export"
PRODUCER_VERSION = "1"  # bump when the graph written for the same weights changes (its sha256 is on the card)


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


def read_resnet(data: bytes) -> list[Layer]:
    """Parse the serialized `anet_type` (bytes of the .dat) into its computational layers, input first.

    add_loss_layer writes its loss then its subnet; every add_layer writes a version, its whole subnet, then its
    own details; tag and skip layers write a version and their subnet. So the file holds the versions top-down,
    the input layer, then each layer's details bottom-up."""
    reader = Reader(data)
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
    first = read_details(reader, body[-2])
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
        layers.append(read_details(reader, spec))
        for _ in range(3):
            reader.bool()
        for _ in range(3 if version == 2 else 2):
            reader.tensor()  # x_grad, cached_output, (version 2) params_grad
    if reader.buf.read(1):
        raise ValueError("trailing bytes after the network")
    return layers


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
    for layer in fold(layers[1:]):
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
