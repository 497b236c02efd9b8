#!/usr/bin/python3
"""Builds the ONNX test models of modelserver/onnx into OUTDIR.

Usage: /usr/bin/python3 make_models.py OUTDIR

Writes:
  digits_lr.onnx   scikit-learn LogisticRegression on load_digits (Gemm, Softmax, ArgMax)
  digits_mlp.onnx  scikit-learn MLPClassifier 64->256->10 (Gemm, Relu, Gemm, Softmax, ArgMax)
  types.onnx       dynamic batch, FP64/INT64/INT32/BOOL/FP16/STRING inputs (Add, Cast, Not, Identity, ReduceSum,
                   Constant)
  expected.json    rows of X and scikit-learn's predict_proba / predict for both classifiers
Everything is deterministic (fixed seeds). Needs Debian's python3-onnx, python3-numpy, python3-sklearn.
"""
import json
import os
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

OPSET = [helper.make_opsetid("", 13)]


def save(graph, path):
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="modelship-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def classifier_graph(name, layers):
    """layers: list of (W with shape [in, out], b) applied as Gemm, Relu between them."""
    nodes, inits = [], []
    x = "input"
    for i, (w, b) in enumerate(layers):
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"W{i}"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"B{i}"))
        out = f"z{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"B{i}"], [out]))
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"a{i}"]))
            out = f"a{i}"
        x = out
    nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=1))
    nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0))
    n_in, n_out = layers[0][0].shape[0], layers[-1][0].shape[1]
    return helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_out]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        inits)


def types_graph():
    f = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Cast", ["i"], ["i_as_double"], to=TensorProto.DOUBLE),
        helper.make_node("Add", ["x", "i_as_double"], ["sum"]),
        helper.make_node("Add", ["i", "i"], ["twice"]),
        helper.make_node("Not", ["b"], ["not_b"]),
        helper.make_node("Add", ["j", "j"], ["j_twice"]),
        helper.make_node("Cast", ["h"], ["h_float"], to=TensorProto.FLOAT),
        helper.make_node("Identity", ["h"], ["h_same"]),
        helper.make_node("Identity", ["s"], ["s_same"]),
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Constant", [], ["h_const"],
                         value=numpy_helper.from_array(np.array([1.5, -2], dtype=np.float16), "c")),
    ]
    return helper.make_graph(
        nodes, "types",
        [f("x", TensorProto.DOUBLE, ["batch", 3]), f("i", TensorProto.INT64, ["batch", 3]),
         f("b", TensorProto.BOOL, ["batch", 3]), f("j", TensorProto.INT32, ["batch"]),
         f("h", TensorProto.FLOAT16, ["batch", 2]), f("s", TensorProto.STRING, ["batch"])],
        [f("sum", TensorProto.DOUBLE, ["batch", 3]), f("twice", TensorProto.INT64, ["batch", 3]),
         f("not_b", TensorProto.BOOL, ["batch", 3]), f("j_twice", TensorProto.INT32, ["batch"]),
         f("h_float", TensorProto.FLOAT, ["batch", 2]), f("h_same", TensorProto.FLOAT16, ["batch", 2]),
         f("s_same", TensorProto.STRING, ["batch"]), f("total", TensorProto.DOUBLE, []),
         f("h_const", TensorProto.FLOAT16, [2])])


def constant_graph():
    """A model without inputs: its output is a constant."""
    c = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "c")
    return helper.make_graph([helper.make_node("Identity", ["c"], ["y"])], "constant", [],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [c])


def fp16_dynamic_graph():
    """Only an FP16 output of dynamic shape, which onnxruntime_go cannot return."""
    return helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "fp16dyn",
                             [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 2])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["batch", 2])])


def main(out):
    os.makedirs(out, exist_ok=True)
    X, y = load_digits(return_X_y=True)
    lr = LogisticRegression(max_iter=5000, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(256,), max_iter=60, random_state=0).fit(X, y)
    save(classifier_graph("digits_lr", [(lr.coef_.T, lr.intercept_)]), os.path.join(out, "digits_lr.onnx"))
    save(classifier_graph("digits_mlp", list(zip(mlp.coefs_, mlp.intercepts_))), os.path.join(out, "digits_mlp.onnx"))
    save(types_graph(), os.path.join(out, "types.onnx"))
    save(constant_graph(), os.path.join(out, "constant.onnx"))
    save(fp16_dynamic_graph(), os.path.join(out, "fp16dyn.onnx"))
    rows = X[:32]
    expected = {
        "X": rows.tolist(),
        "lr_proba": lr.predict_proba(rows).tolist(),
        "lr_label": lr.predict(rows).tolist(),
        "mlp_proba": mlp.predict_proba(rows).tolist(),
        "mlp_label": mlp.predict(rows).tolist(),
    }
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    main(sys.argv[1])
