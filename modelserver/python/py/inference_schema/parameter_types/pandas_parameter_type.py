"""PandasParameterType: inputs become DataFrames, decoded with the given orient."""

import io
import json

from .abstract_parameter_type import AbstractParameterType, require
from .numpy_parameter_type import _swagger_for_dtype

_ORIENTS = ("split", "records", "index", "columns", "values", "table")


class PandasParameterType(AbstractParameterType):
    """A pandas DataFrame parameter described by a sample DataFrame."""

    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True, apply_column_names=False,
                 orient="records"):
        pd = require("pandas", "PandasParameterType")
        if not isinstance(sample_input, pd.DataFrame):
            raise ValueError("PandasParameterType needs a pandas.DataFrame sample, got %s" % type(sample_input).__name__)
        if orient not in _ORIENTS:
            raise ValueError("orient must be one of %s, got %r" % (", ".join(_ORIENTS), orient))
        super().__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape
        self.apply_column_names = apply_column_names
        self.orient = orient

    def deserialize_input(self, input_data):
        pd = require("pandas", "PandasParameterType")
        if isinstance(input_data, pd.DataFrame):
            df = input_data
        else:
            if not isinstance(input_data, (list, dict)):
                raise ValueError("Unable to convert input of type %s into a pandas DataFrame" % type(input_data).__name__)
            df = pd.read_json(io.StringIO(json.dumps(input_data)), orient=self.orient, dtype=False)
        if self.apply_column_names or (self.orient == "values" and len(df.columns) == len(self.sample_input.columns)):
            df.columns = self.sample_input.columns.copy()
        if self.enforce_shape and df.shape[1] != self.sample_input.shape[1]:
            raise ValueError(
                "Invalid input data frame: data frame has %d columns, expected %d" % (df.shape[1], self.sample_input.shape[1])
            )
        if self.enforce_column_type:
            types = self.sample_input.dtypes.to_dict()
            df = df.astype({c: types[c] for c in df.columns if c in types})
        return df

    def _column_schemas(self):
        return {str(c): _swagger_for_dtype(t) for c, t in self.sample_input.dtypes.items()}

    def input_to_swagger(self):
        cols = self._column_schemas()
        row = {"type": "object", "properties": cols}
        if self.orient == "records":
            schema = {"type": "array", "items": row}
        elif self.orient == "split":
            schema = {
                "type": "object",
                "properties": {
                    "index": {"type": "array", "items": {}},
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array", "items": {}}},
                },
            }
        elif self.orient == "values":
            schema = {"type": "array", "items": {"type": "array", "items": {}}}
        elif self.orient == "index":
            schema = {"type": "object", "additionalProperties": row}
        elif self.orient == "columns":
            schema = {"type": "object", "properties": {c: {"type": "object", "additionalProperties": s} for c, s in cols.items()}}
        else:
            schema = {"type": "object", "properties": {"schema": {"type": "object"}, "data": {"type": "array", "items": row}}}
        schema["format"] = "pandas.DataFrame:" + self.orient
        schema["example"] = self._example()
        return schema

    def _example(self):
        return json.loads(self.sample_input.to_json(orient=self.orient, date_format="iso"))
