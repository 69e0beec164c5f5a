"""A TF.js graph model (model.json + weight shards) turned into a TensorFlow GraphDef, in process.

`modelTopology` is a GraphDef in protobuf's JSON form whose `Const` nodes carry only dtype and shape; their
values sit in the weight shards, described by `weightsManifest` (possibly quantised: float16, or uint8/uint16
with a scale and a minimum). TF.js also writes two fused ops in forms TensorFlow's importer rejects, fixed
here (`_fix_fused_op`), and the fused depthwise op is split back into the plain ops it stands for
(`_unfuse_depthwise`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from pose.models import tf as tensorflow
from pose.models.graph import GraphDef

# TF.js dtype names → numpy dtypes (little-endian, as TF.js writes them).
_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("?"),
    "float16": np.dtype("<f2"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
}
# TF.js names the fused depthwise op without TensorFlow's leading underscore.
_RENAMED_OPS = {"FusedDepthwiseConv2dNative": "_FusedDepthwiseConv2dNative"}


class TfjsError(ValueError):
    """The model JSON or its weights are not a TF.js graph model this converter understands."""


@dataclass(frozen=True)
class WeightSpec:
    """One entry of a weight group: name, logical dtype and shape, and how it is stored.

    quantization: None, or {"dtype": "float16"|"uint8"|"uint16"} plus "scale" and "min" for the integer ones.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    quantization: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> WeightSpec:
        return cls(entry["name"], entry["dtype"], tuple(int(d) for d in entry["shape"]), entry.get("quantization"))

    @property
    def stored_dtype(self) -> str:
        return self.quantization["dtype"] if self.quantization else self.dtype

    @property
    def nbytes(self) -> int:
        if self.stored_dtype not in _DTYPES:
            raise TfjsError(f"weight {self.name}: dtype {self.stored_dtype} is not supported")
        return int(np.prod(self.shape, dtype=np.int64)) * _DTYPES[self.stored_dtype].itemsize


def dequantize(spec: WeightSpec, data: bytes) -> np.ndarray:
    """The weight's values with its logical dtype and shape, from exactly `spec.nbytes` bytes of a shard."""
    if len(data) != spec.nbytes:
        raise TfjsError(f"weight {spec.name}: expected {spec.nbytes} bytes, got {len(data)}")
    if spec.dtype not in ("float32", "int32", "bool"):
        raise TfjsError(f"weight {spec.name}: dtype {spec.dtype} is not supported")
    stored = np.frombuffer(data, _DTYPES[spec.stored_dtype])
    q = spec.quantization
    if q is None:
        values = stored
    elif q["dtype"] == "float16":
        if spec.dtype != "float32":
            raise TfjsError(f"weight {spec.name}: float16 quantisation of {spec.dtype}")
        values = stored.astype(np.float32)
    elif q["dtype"] in ("uint8", "uint16"):
        scaled = stored.astype(np.float64) * float(q["scale"]) + float(q["min"])
        # TF.js rounds integer weights back (Math.round: halves go up) and keeps floats at float32.
        values = np.floor(scaled + 0.5).astype(np.int32) if spec.dtype == "int32" else scaled.astype(np.float32)
    else:
        raise TfjsError(f"weight {spec.name}: quantisation {q['dtype']} is not supported")
    return values.astype(_DTYPES[spec.dtype]).reshape(spec.shape)


def read_weights(manifest: Iterable[dict[str, Any]], shards: Iterable[bytes]) -> dict[str, np.ndarray]:
    """Every weight of the manifest by name; `shards` are the groups' buffers (their paths concatenated)."""
    weights: dict[str, np.ndarray] = {}
    for group, buffer in zip(manifest, shards, strict=True):
        offset = 0
        for entry in group["weights"]:
            spec = WeightSpec.from_json(entry)
            weights[spec.name] = dequantize(spec, buffer[offset : offset + spec.nbytes])
            offset += spec.nbytes
        if offset != len(buffer):
            raise TfjsError(f"weight group {group['paths']}: {len(buffer)} bytes for {offset} bytes of weights")
    return weights


def graph_def_from_tfjs(model: dict[str, Any], shards: Iterable[bytes]) -> GraphDef:
    """A GraphDef ready for `tf.import_graph_def`: constants filled, fused ops in TensorFlow's form."""
    if model.get("format") != "graph-model" or "modelTopology" not in model:
        raise TfjsError(f"not a TF.js graph model (format {model.get('format')!r})")
    tf = tensorflow.load()
    graph_def = json_format.ParseDict(model["modelTopology"], tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    weights = read_weights(model.get("weightsManifest", []), shards)
    for node in graph_def.node:
        node.device = ""  # TF.js keeps the exporting machine's placements; let this one place the ops
        if node.op == "Const" and node.name in weights:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights.pop(node.name)))
        _fix_fused_op(node)
    if weights:
        raise TfjsError(f"{len(weights)} weights have no Const node, e.g. {next(iter(weights))}")
    for node in [n for n in graph_def.node if n.op == "_FusedDepthwiseConv2dNative"]:
        _unfuse_depthwise(graph_def, node)
    return graph_def


def _fix_fused_op(node: Any) -> None:
    """Rename TF.js's fused depthwise op, and give the fused ops the attributes TensorFlow's op defs require.

    `_FusedConv2D` declares its extra inputs as a type list (`TArgs`), which TF.js leaves out; TF.js also writes
    `explicit_paddings` on the depthwise op, whose TensorFlow def does not have it.
    """
    node.op = _RENAMED_OPS.get(node.op, node.op)
    if node.op not in ("_FusedConv2D", "_FusedDepthwiseConv2dNative"):
        return
    num_args = sum(1 for name in node.input if not name.startswith("^")) - 2
    if "num_args" not in node.attr:
        node.attr["num_args"].i = num_args
    if node.op == "_FusedConv2D" and "TArgs" not in node.attr:
        node.attr["TArgs"].list.type.extend([node.attr["T"].type] * node.attr["num_args"].i)
    if node.op == "_FusedDepthwiseConv2dNative" and "explicit_paddings" in node.attr:
        del node.attr["explicit_paddings"]


def _unfuse_depthwise(graph_def: GraphDef, node: Any) -> None:
    """Split a fused depthwise op into DepthwiseConv2dNative → BiasAdd → activation, under the same output name.

    TensorFlow 2.21's CPU kernel for `_FusedDepthwiseConv2dNative` fails on some machines ("Missing 0-th output");
    the plain ops compute the same thing everywhere.
    """
    fused = [op.decode() for op in node.attr["fused_ops"].list.s]
    if not fused or fused[0] != "BiasAdd" or len(fused) > 2 or (fused[1:] and fused[1] not in ("Relu", "Relu6")):
        raise TfjsError(f"{node.name}: fused depthwise ops {fused} are not supported")
    data, controls = [i for i in node.input if not i.startswith("^")], [i for i in node.input if i.startswith("^")]
    conv = graph_def.node.add(name=f"{node.name}/depthwise", op="DepthwiseConv2dNative", input=[*data[:2], *controls])
    for key in ("T", "strides", "padding", "data_format", "dilations"):
        if key in node.attr:
            conv.attr[key].CopyFrom(node.attr[key])
    bias = graph_def.node.add(name=f"{node.name}/bias_add", op="BiasAdd", input=[conv.name, data[2]])
    bias.attr["T"].CopyFrom(node.attr["T"])
    if "data_format" in node.attr:
        bias.attr["data_format"].CopyFrom(node.attr["data_format"])
    name, dtype = node.name, node.attr["T"].type
    node.Clear()
    node.name, node.op = name, fused[1] if fused[1:] else "Identity"
    node.input.append(bias.name)
    node.attr["T"].type = dtype


def load_graph_model(model_json: Path) -> GraphDef:
    """Read model.json and its weight shards (paths relative to it) into a GraphDef."""
    try:
        model = json.loads(Path(model_json).read_text())
    except (OSError, ValueError) as exc:
        raise TfjsError(f"{model_json}: not a readable TF.js model JSON: {exc}") from exc
    folder = Path(model_json).parent
    shards = [b"".join((folder / p).read_bytes() for p in group["paths"]) for group in model.get("weightsManifest", [])]
    return graph_def_from_tfjs(model, shards)
