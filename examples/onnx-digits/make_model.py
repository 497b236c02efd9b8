"""Build a small ONNX model for handwritten digits, by hand, with onnx.helper.

A scikit-learn LogisticRegression is trained on sklearn.datasets.load_digits
(8x8 images flattened to 64 pixel values from 0 to 16). Its coefficients are then
written into a two-node ONNX graph:

    input [N, 64] float32
      -> Gemm(W, b, transB=1)  -> logits [N, 10]
      -> Softmax(axis=1)       -> probabilities [N, 10]   (output)
      -> ArgMax(axis=1)        -> label [N] int64         (output)

so the ONNX model gives the same answers as model.predict_proba / model.predict.
The batch dimension is dynamic ("N").

    /usr/bin/python3 make_model.py            # writes model.onnx and the sample requests here

Needs numpy, scikit-learn and onnx (Debian: python3-sklearn python3-onnx).
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

SEED = 0
HERE = os.path.dirname(os.path.abspath(__file__))


def build(clf):
    W = clf.coef_.astype(np.float32)        # [10, 64]
    b = clf.intercept_.astype(np.float32)   # [10]
    nodes = [
        helper.make_node("Gemm", ["input", "W", "b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_logreg",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        outputs=[
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, producer_name="modelship-examples",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7  # readable by any ONNX Runtime from 1.8 on
    onnx.checker.check_model(model)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output-dir", default=HERE, help="where to write the files (default: here)")
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=SEED)
    clf = LogisticRegression(max_iter=5000, random_state=SEED)
    clf.fit(X_train, y_train)
    print(f"LogisticRegression test accuracy {clf.score(X_test, y_test):.3f}")

    path = os.path.join(args.output_dir, "model.onnx")
    onnx.save(build(clf), path)
    print(f"saved {path} ({os.path.getsize(path)} bytes)")

    # Two test images as sample requests, with what scikit-learn predicts for them.
    rows = X_test[:2].astype(np.float32)
    with open(os.path.join(args.output_dir, "sample-request.json"), "w") as f:
        json.dump({"data": rows.tolist()}, f)
        f.write("\n")
    with open(os.path.join(args.output_dir, "sample-infer.json"), "w") as f:
        json.dump({"inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32",
                               "data": rows.ravel().tolist()}]}, f)
        f.write("\n")
    print("scikit-learn predicts", clf.predict(rows).tolist(), "(true labels", y_test[:2].tolist(), ")")
    print("probabilities", np.round(clf.predict_proba(rows), 4).tolist())


if __name__ == "__main__":
    main()
