"""Reference FaceRes descriptors from the original TensorFlow.js graph, run by TensorFlow itself.

Run once at development time, in a virtual environment of its own outside the project (TensorFlow is no
dependency of leadmatch):

    python3 -m venv /work/tfenv && /work/tfenv/bin/pip install tensorflow-cpu
    /work/tfenv/bin/python tests/data/faceres_reference.py models/faceres.json models/faceres.bin \
        tests/data/faceres_crops.npz tests/data/faceres_reference.npy

It reads the graph model the way TensorFlow.js does (the GraphDef from `modelTopology`, each constant's value
from `faceres.bin` as the weights manifest describes, float16 widened to float32), imports it into TensorFlow
unchanged, feeds the crops as trained (BGR, float 0–255 minus 103.939, 116.779, 123.68) and writes the
`global_pooling/Mean` output: float32 N×1024.
"""

import json
import sys

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

BGR_MEANS = np.array([103.939, 116.779, 123.68], np.float32)


def load(json_path: str, bin_path: str) -> tf.compat.v1.GraphDef:
    model = json.load(open(json_path))
    data = open(bin_path, "rb").read()
    values, offset = {}, 0
    for entry in model["weightsManifest"][0]["weights"]:
        count = int(np.prod(entry["shape"])) if entry["shape"] else 1
        stored = (entry.get("quantization") or {}).get("dtype", entry["dtype"])
        dtype = {"float32": np.float32, "float16": np.float16, "int32": np.int32}[stored]
        size = count * np.dtype(dtype).itemsize
        array = np.frombuffer(data[offset:offset + size], dtype=dtype).reshape(entry["shape"])
        values[entry["name"]] = array.astype(np.float32 if entry["dtype"] == "float32" else np.int32)
        offset += size
    graph = json_format.ParseDict({"node": model["modelTopology"]["node"]}, tf.compat.v1.GraphDef())
    for node in graph.node:
        if node.op == "Const":
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values[node.name]))
    return tf.compat.v1.graph_util.extract_sub_graph(graph, ["global_pooling/Mean"])


def main() -> None:
    json_path, bin_path, crops_path, out_path = sys.argv[1:5]
    graph_def = load(json_path, bin_path)
    crops = np.load(crops_path)["crops"]  # uint8 N×224×224×3 RGB, as leadmatch crops them
    feed = crops[..., ::-1].astype(np.float32) - BGR_MEANS
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            out = session.run("global_pooling/Mean:0", {"input_1:0": feed})
    np.save(out_path, out.astype(np.float32))
    print(f"{len(out)} descriptors → {out_path}")


if __name__ == "__main__":
    main()
