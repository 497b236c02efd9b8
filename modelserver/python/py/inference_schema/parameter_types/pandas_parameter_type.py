"""PandasParameterType: inputs become DataFrames, decoded with the given orient."""

import io
import json

from .abstract_parameter_type import AbstractParameterType, require, swagger_for_value
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
        """Decode a JSON value with the orient, as the inference-schema package does.

        The sample's column names are applied only with apply_column_names=True
        (orient "values" has no names: its columns are 0, 1, ...). With
        enforce_column_type, a column takes the dtype of the sample's column of
        the same name, and any other column becomes object.
        """
        pd = require("pandas", "PandasParameterType")
        if isinstance(input_data, pd.DataFrame):
            return input_data
        if not isinstance(input_data, (list, dict)):
            raise ValueError("Unable to convert input of type %s into a pandas DataFrame" % type(input_data).__name__)
        df = pd.read_json(io.StringIO(json.dumps(input_data)), orient=self.orient)
        if self.apply_column_names:
            df.columns = self.sample_input.columns.copy()
        if self.enforce_column_type:
            sample_types = self.sample_input.dtypes.to_dict()
            types = {c: sample_types.get(c, object) for c in df.columns}
            for c, t in types.items():
                if str(t).startswith("timedelta"):
                    df[c] = pd.to_timedelta(df[c])
            df = df.astype(dtype=types)
        if self.enforce_shape:
            want = self.sample_input.shape
            if df.ndim != len(want):
                raise ValueError(
                    "Invalid input data frame: a data frame with %d dimensions is expected; input has %d [shape %s]"
                    % (len(want), df.ndim, df.shape)
                )
            for dim in range(1, len(want)):
                if df.shape[dim] != want[dim]:
                    raise ValueError(
                        "Invalid input data frame: data frame has size %d on dimension #%d, while expected value is %d"
                        % (df.shape[dim], dim, want[dim])
                    )
        return df

    def _column_schemas(self):
        np = require("numpy", "PandasParameterType")
        out = {}
        for c, t in self.sample_input.dtypes.items():
            if isinstance(t, np.dtype) and t.kind != "O":
                schema = _swagger_for_dtype(t)
            elif str(t).startswith("datetime"):
                schema = {"type": "string", "format": "date-time"}
            else:
                # object columns (pandas keeps str as object), string and category
                # columns: describe them by their values, as inference-schema does
                # (a column of str is a "string").
                schema = {"type": "string"} if str(t) == "string" else {"type": "object"}
                values = self.sample_input[c].dropna()
                if len(values):
                    first = values.iloc[0]
                    if isinstance(first, np.generic):
                        first = first.item()
                    if isinstance(first, (str, bool, int, float)):
                        schema = swagger_for_value(first)
            out[str(c)] = schema
        return out

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
