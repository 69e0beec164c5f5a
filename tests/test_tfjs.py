"""TF.js graph model → TensorFlow: a hand-made model whose output is known exactly, and the weight decoding."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pose.models.graph import FrozenGraph
from pose.models.tfjs import TfjsError, WeightSpec, dequantize, graph_def_from_tfjs, load_graph_model, read_weights


def _s(text: str) -> str:
    """A string attribute in protobuf's JSON form (bytes are base64)."""
    return base64.b64encode(text.encode()).decode()


def _ints(*values: int) -> dict[str, Any]:
    return {"list": {"i": [str(v) for v in values]}}


def _const(name: str, dtype: str) -> dict[str, Any]:
    return {"name": name, "op": "Const", "attr": {"dtype": {"type": dtype}, "value": {"tensor": {"dtype": dtype}}}}


def _shape(*dims: int) -> dict[str, Any]:
    return {"shape": {"dim": [{"size": str(d)} for d in dims]}}


def _conv_attrs(*fused: str) -> dict[str, Any]:
    """What the TF.js converter writes on its fused convolutions: num_args but no TArgs, explicit_paddings."""
    return {
        "T": {"type": "DT_FLOAT"},
        "strides": _ints(1, 1, 1, 1),
        "dilations": _ints(1, 1, 1, 1),
        "padding": {"s": _s("VALID")},
        "data_format": {"s": _s("NHWC")},
        "explicit_paddings": {"list": {}},
        "fused_ops": {"list": {"s": [_s(op) for op in fused]}},
        "num_args": {"i": "1"},
    }


# x (1, 2, 2, 1) → _FusedConv2D 1x1 to 2 channels (weights [2, -1], bias [1, 0], Relu)
#   → FusedDepthwiseConv2dNative (weights [3, 0.5], bias [0.5, -0.25], Relu6) → Identity "out"
#   → Reshape to (1, 8) by an int32 constant → "flat".
TOPOLOGY = {
    "node": [
        {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": _shape(1, 2, 2, 1)}},
        _const("w", "DT_FLOAT"),
        _const("b", "DT_FLOAT"),
        _const("dw", "DT_FLOAT"),
        _const("db", "DT_FLOAT"),
        _const("shape", "DT_INT32"),
        {
            "name": "conv",
            "op": "_FusedConv2D",
            "input": ["x", "w", "b"],
            "device": "/device:CPU:0",
            "attr": _conv_attrs("BiasAdd", "Relu"),
        },
        {
            "name": "dconv",
            "op": "FusedDepthwiseConv2dNative",
            "input": ["conv", "dw", "db"],
            "attr": _conv_attrs("BiasAdd", "Relu6"),
        },
        {"name": "out", "op": "Identity", "input": ["dconv"], "attr": {"T": {"type": "DT_FLOAT"}}},
        {
            "name": "flat",
            "op": "Reshape",
            "input": ["dconv", "shape"],
            "attr": {"T": {"type": "DT_FLOAT"}, "Tshape": {"type": "DT_INT32"}},
        },
    ],
    "library": {},
    "versions": {},
}
WEIGHTS: list[tuple[dict[str, Any], bytes]] = [
    ({"name": "w", "shape": [1, 1, 1, 2], "dtype": "float32", "quantization": {"dtype": "float16"}},
     np.array([2, -1], "<f2").tobytes()),
    ({"name": "b", "shape": [2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1}},
     bytes([4, 2])),
    ({"name": "dw", "shape": [1, 1, 2, 1], "dtype": "float32"}, np.array([3, 0.5], "<f4").tobytes()),
    ({"name": "db", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}},
     np.array([0.5, -0.25], "<f2").tobytes()),
    ({"name": "shape", "shape": [2], "dtype": "int32"}, np.array([1, 8], "<i4").tobytes()),
]  # fmt: skip
X = np.array([-1, 0.25, 1, 4], np.float32).reshape(1, 2, 2, 1)
# channel 0: relu6(3 relu(2x + 1) + 0.5); channel 1: relu6(0.5 relu(-x) - 0.25)
EXPECTED = np.array([[0.5, 0.25], [5, 0], [6, 0], [6, 0]], np.float32).reshape(1, 2, 2, 2)


def write_model(folder: Path) -> Path:
    """model.json with its weights split over two shard files, as the TF.js converter splits large models."""
    data = b"".join(blob for _, blob in WEIGHTS)
    (folder / "group1-shard1of2.bin").write_bytes(data[:5])
    (folder / "group1-shard2of2.bin").write_bytes(data[5:])
    model = {
        "format": "graph-model",
        "modelTopology": TOPOLOGY,
        "weightsManifest": [
            {"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": [spec for spec, _ in WEIGHTS]}
        ],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(model))
    return path


def test_hand_made_model_gives_the_known_output(tmp_path: Path) -> None:
    graph = FrozenGraph(load_graph_model(write_model(tmp_path)))
    out, flat = graph.run(["out:0", "flat:0"], {"x:0": X})
    np.testing.assert_array_equal(out, EXPECTED)
    np.testing.assert_array_equal(flat, EXPECTED.reshape(1, 8))


def test_fused_ops_are_rewritten_into_tensorflow_form(tmp_path: Path) -> None:
    nodes = {n.name: n for n in load_graph_model(write_model(tmp_path)).node}
    # The fused depthwise op becomes the plain ops it stands for, its output keeping its name.
    assert nodes["dconv/depthwise"].op == "DepthwiseConv2dNative"
    assert "explicit_paddings" not in nodes["dconv/depthwise"].attr
    assert (nodes["dconv/bias_add"].op, list(nodes["dconv/bias_add"].input)) == ("BiasAdd", ["dconv/depthwise", "db"])
    assert (nodes["dconv"].op, list(nodes["dconv"].input)) == ("Relu6", ["dconv/bias_add"])
    assert list(nodes["conv"].attr["TArgs"].list.type) == [nodes["conv"].attr["T"].type]
    assert nodes["conv"].device == ""


def test_every_weight_needs_a_const_node(tmp_path: Path) -> None:
    model = json.loads(write_model(tmp_path).read_text())
    model["modelTopology"]["node"] = [n for n in model["modelTopology"]["node"] if n["name"] != "db"]
    with pytest.raises(TfjsError, match="no Const node"):
        graph_def_from_tfjs(model, [b"".join(blob for _, blob in WEIGHTS)])


def test_not_a_graph_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "layers.json"
    path.write_text(json.dumps({"format": "layers-model", "modelTopology": {}}))
    with pytest.raises(TfjsError, match=r"not a TF\.js graph model"):
        load_graph_model(path)
    path.write_text("{")
    with pytest.raises(TfjsError, match="not a readable"):
        load_graph_model(path)


@pytest.mark.parametrize(
    ("spec", "stored", "expected"),
    [
        # float16 holds these exactly, 65504 being its largest finite value
        (WeightSpec("f16", "float32", (3,), {"dtype": "float16"}),
         np.array([0.5, -2, 65504], "<f2").tobytes(), np.array([0.5, -2, 65504], np.float32)),
        # uint8 affine: q * scale + min, computed in float64 then stored as float32
        (WeightSpec("u8", "float32", (2, 2), {"dtype": "uint8", "scale": 0.1, "min": -1.0}),
         bytes([0, 1, 10, 255]), np.array([[-1.0, -0.9], [0.0, 24.5]], np.float32)),
        (WeightSpec("u16", "float32", (2,), {"dtype": "uint16", "scale": 0.001, "min": 0.0}),
         np.array([0, 65535], "<u2").tobytes(), np.array([0.0, 65.535], np.float32)),
        # int32 weights are rounded back as JavaScript's Math.round does: halves go up, also below zero
        (WeightSpec("i8", "int32", (4,), {"dtype": "uint8", "scale": 0.5, "min": -1.5}),
         bytes([0, 1, 2, 4]), np.array([-1, -1, 0, 1], np.int32)),
        (WeightSpec("i32", "int32", (2,)), np.array([-7, 1 << 30], "<i4").tobytes(), np.array([-7, 1 << 30], np.int32)),
        (WeightSpec("flag", "bool", (3,)), bytes([1, 0, 1]), np.array([True, False, True])),
        (WeightSpec("scalar", "float32", ()), np.array([1.25], "<f4").tobytes(), np.array(1.25, np.float32)),
    ],
)  # fmt: skip
def test_dequantize(spec: WeightSpec, stored: bytes, expected: np.ndarray) -> None:
    values = dequantize(spec, stored)
    assert values.dtype == expected.dtype and values.shape == expected.shape
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("spec", "stored", "message"),
    [
        (WeightSpec("short", "float32", (2,)), bytes(7), "expected 8 bytes, got 7"),
        (WeightSpec("half-int", "int32", (1,), {"dtype": "float16"}), bytes(2), "float16 quantisation of int32"),
        (WeightSpec("text", "string", (1,)), bytes(4), "dtype string is not supported"),
        (WeightSpec("c64", "float32", (1,), {"dtype": "complex64"}), bytes(8), "complex64 is not supported"),
    ],
)
def test_dequantize_refuses_what_it_cannot_read(spec: WeightSpec, stored: bytes, message: str) -> None:
    with pytest.raises(TfjsError, match=message):
        dequantize(spec, stored)


def test_weights_are_read_in_manifest_order_and_must_fill_the_buffer() -> None:
    group = {"paths": ["a.bin"], "weights": [spec for spec, _ in WEIGHTS]}
    data = b"".join(blob for _, blob in WEIGHTS)
    weights = read_weights([group], [data])
    assert list(weights) == ["w", "b", "dw", "db", "shape"]
    np.testing.assert_array_equal(weights["b"], [1.0, 0.0])
    with pytest.raises(TfjsError, match="bytes for"):
        read_weights([group], [data + b"\0"])
