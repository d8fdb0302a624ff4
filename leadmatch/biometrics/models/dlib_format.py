"""dlib's serialized networks as plain data: the reader of dlib/serialize.h's primitives, one `Layer` per
computational layer with its weights, and the folding of inference-time batch norms into convolutions. Shared by
the converters of dlib's models (`resnet_onnx`, `mmod_onnx`)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from leadmatch.lazy import lazy

np = lazy("numpy")


class Reader:
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


@dataclass
class Layer:
    """One computational layer, bottom-up order. `arrays` hold its weights; `args` its shape parameters."""

    kind: str
    args: tuple = ()
    arrays: dict = field(default_factory=dict)


def read_details(reader: Reader, spec: tuple) -> Layer:
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


def fold(layers: list[Layer]) -> list[Layer]:
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
