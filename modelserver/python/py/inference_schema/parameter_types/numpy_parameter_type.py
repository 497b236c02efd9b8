"""NumpyParameterType: inputs become numpy arrays with the sample's dtype."""

from .abstract_parameter_type import AbstractParameterType, require


def _swagger_for_dtype(dtype):
    if dtype.names:
        return {"type": "object", "properties": {n: _swagger_for_dtype(dtype.fields[n][0]) for n in dtype.names}}
    kind = dtype.kind
    if kind == "b":
        return {"type": "boolean"}
    if kind in "iu":
        return {"type": "integer", "format": "int64" if dtype.itemsize > 4 else "int32"}
    if kind == "f":
        return {"type": "number", "format": "double" if dtype.itemsize > 4 else "float"}
    if kind in "US":
        return {"type": "string"}
    if kind == "M":
        return {"type": "string", "format": "date-time"}
    if kind == "m":
        return {"type": "string", "format": "timedelta"}
    return {"type": "object"}


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
        dtype = self.sample_input.dtype
        if isinstance(input_data, np.ndarray):
            arr = input_data
        elif dtype.names:
            rows = [tuple(r[n] for n in dtype.names) if isinstance(r, dict) else tuple(r) for r in input_data]
            arr = np.array(rows, dtype=dtype)
        else:
            arr = np.array(input_data, dtype=dtype if self.enforce_column_type else None)
        if self.enforce_shape:
            want = self.sample_input.shape
            if arr.ndim != len(want) or arr.shape[1:] != want[1:]:
                raise ValueError(
                    "Invalid input data: shape %s does not match the sample's shape %s (only the first "
                    "dimension may differ)" % (arr.shape, want)
                )
        return arr

    def input_to_swagger(self):
        schema = _swagger_for_dtype(self.sample_input.dtype)
        for _ in range(self.sample_input.ndim):
            schema = {"type": "array", "items": schema}
        schema["example"] = self._example()
        return schema

    def _example(self):
        s = self.sample_input
        if s.dtype.names:
            return [dict(zip(s.dtype.names, row)) for row in s.tolist()]
        if s.dtype.kind in "Mm":
            return s.astype(str).tolist()
        return s.tolist()
