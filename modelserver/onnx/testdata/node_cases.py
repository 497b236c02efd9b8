#!/usr/bin/python3
"""Converts ONNX backend node test cases (Debian's libonnx-testdata) to OIP v2 JSON.

Usage: /usr/bin/python3 node_cases.py OUTFILE CASEDIR...

For each CASEDIR (holding model.onnx and test_data_set_0/{input,output}_N.pb) writes one entry of
a JSON list to OUTFILE: {"name", "model", "request": <OIP infer request>, "outputs": [<OIP tensors>]}.
Cases with element types the OIP JSON form cannot carry are left out with a note on stderr.
"""
import glob
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

DATATYPES = {
    np.bool_: "BOOL", np.uint8: "UINT8", np.uint16: "UINT16", np.uint32: "UINT32", np.uint64: "UINT64",
    np.int8: "INT8", np.int16: "INT16", np.int32: "INT32", np.int64: "INT64",
    np.float16: "FP16", np.float32: "FP32", np.float64: "FP64", np.object_: "BYTES",
}


def tensor(name, arr):
    dt = DATATYPES.get(arr.dtype.type)
    if dt is None:
        raise ValueError(f"{name}: dtype {arr.dtype} has no OIP datatype")
    data = arr.flatten().tolist()
    if dt == "BYTES":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in data]
    return {"name": name, "datatype": dt, "shape": list(arr.shape), "data": data}


def load(path):
    t = onnx.TensorProto()
    with open(path, "rb") as fh:
        t.ParseFromString(fh.read())
    return numpy_helper.to_array(t)


def convert(case):
    model = onnx.load(os.path.join(case, "model.onnx"))
    inits = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    outputs = [o.name for o in model.graph.output]
    ds = os.path.join(case, "test_data_set_0")
    ins = [load(p) for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")), key=lambda p: int(p.split("_")[-1][:-3]))]
    outs = [load(p) for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")), key=lambda p: int(p.split("_")[-1][:-3]))]
    if len(ins) != len(inputs) or len(outs) != len(outputs):
        raise ValueError("inputs/outputs do not match the data set")
    return {
        "name": os.path.basename(case.rstrip("/")),
        "model": os.path.join(case, "model.onnx"),
        "request": {"id": os.path.basename(case), "inputs": [tensor(n, a) for n, a in zip(inputs, ins)]},
        "outputs": [tensor(n, a) for n, a in zip(outputs, outs)],
    }


def main(out, cases):
    result = []
    for case in cases:
        try:
            result.append(convert(case))
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"skipping {case}: {e}", file=sys.stderr)
    with open(out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
