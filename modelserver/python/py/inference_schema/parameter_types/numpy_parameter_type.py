"""NumpyParameterType: inputs become numpy arrays with the sample's dtype."""

import base64

from .abstract_parameter_type import AbstractParameterType, require


def _swagger_array(items, shape):
    for _ in shape:
        items = {"type": "array", "items": items}
    return items


def _swagger_for_dtype(dtype):
    if dtype.names:
        return {"type": "object", "properties": {n: _swagger_for_dtype(dtype.fields[n][0]) for n in dtype.names}}
    if dtype.subdtype is not None:
        # A sub-array field, e.g. ('grades', np.float64, (2,)): nested arrays.
        base, shape = dtype.subdtype
        return _swagger_array(_swagger_for_dtype(base), shape)
    kind = dtype.kind
    if kind == "b":
        return {"type": "boolean"}
    if kind in "iu":
        return {"type": "integer", "format": "int64" if dtype.itemsize > 4 else "int32"}
    if kind == "f":
        return {"type": "number", "format": "double" if dtype.itemsize > 4 else "float"}
    if kind == "U":
        return {"type": "string"}
    if kind in "SV":
        return {"type": "string", "format": "binary"}
    if kind == "M":
        return {"type": "string", "format": "date-time"}
    if kind == "m":
        return {"type": "string", "format": "timedelta"}
    return {"type": "object"}


def _json_value(value, dtype):
    """The JSON form of one element of an array of ``dtype`` (as ndarray.tolist() gives it)."""
    if dtype.names:
        return {n: _json_value(value[i], dtype.fields[n][0]) for i, n in enumerate(dtype.names)}
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        if hasattr(value, "tolist") and not base.names and base.kind not in "MmSV":
            return value.tolist()
        return _json_nested(value, base, len(shape))
    if dtype.kind in "Mm":
        # tolist() gives datetime objects or, for ns units, integers: let numpy format them.
        np = require("numpy", "NumpyParameterType")
        return str(np.array(value, dtype=dtype))
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _json_nested(value, dtype, depth):
    if depth == 0:
        return _json_value(value, dtype)
    return [_json_nested(v, dtype, depth - 1) for v in value]


def _record(value, dtype):
    """Turn a JSON element into what numpy.array(..., dtype) takes for ``dtype``."""
    if dtype.names:
        fields = [dtype.fields[n][0] for n in dtype.names]
        if isinstance(value, dict):
            value = [value.get(n) for n in dtype.names]
        if isinstance(value, (list, tuple)) and len(value) == len(fields):
            return tuple(_record(v, f) for v, f in zip(value, fields))
        return value
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        if base.names:
            return _nested(value, base, len(shape))
    return value


def _nested(value, dtype, depth):
    if depth == 0 or not isinstance(value, (list, tuple)):
        return _record(value, dtype)
    return [_nested(v, dtype, depth - 1) for v in value]


class NumpyParameterType(AbstractParameterType):
    """A numpy array parameter; the sample fixes the dtype and (with enforce_shape) the inner shape."""

    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True):
        np = require("numpy", "NumpyParameterType")
        if not isinstance(sample_input, np.ndarray):
            raise ValueError("NumpyParameterType needs a numpy.ndarray sample, got %s" % type(sample_input).__name__)
        super().__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape

    def deserialize_input(self, input_data):
        np = require("numpy", "NumpyParameterType")
        sample = self.sample_input
        dtype = sample.dtype
        if isinstance(input_data, np.ndarray):
            arr = input_data
        elif dtype.names:
            arr = np.array(_nested(input_data, dtype, max(sample.ndim, 1)), dtype=dtype)
        else:
            arr = np.array(input_data, dtype=dtype if self.enforce_column_type else None)
        if self.enforce_shape:
            want = sample.shape
            if arr.ndim != len(want) or arr.shape[1:] != want[1:]:
                raise ValueError(
                    "Invalid input data: shape %s does not match the sample's shape %s (only the first "
                    "dimension may differ)" % (arr.shape, want)
                )
        return arr

    def input_to_swagger(self):
        schema = _swagger_array(_swagger_for_dtype(self.sample_input.dtype), self.sample_input.shape)
        schema["example"] = self._example()
        return schema

    def _example(self):
        s = self.sample_input
        if s.dtype.names or s.dtype.kind in "MmSV":
            return _json_nested(s.tolist(), s.dtype, s.ndim)
        return s.tolist()
