# PandasParameterType with each orient, apply_column_names on and off.
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema

sample = pd.DataFrame({"a": pd.Series([1], dtype="int64"), "b": pd.Series([0.5], dtype="float64"),
                       "s": pd.Series(["x"], dtype="object")})


def init():
    pass


def describe(df):
    return {"columns": [str(c) for c in df.columns], "dtypes": [str(t) for t in df.dtypes],
            "rows": [[repr(v) for v in row] for row in df.itertuples(index=False)]}


@input_schema("records", PandasParameterType(sample), optional=True)
@input_schema("values", PandasParameterType(sample, orient="values"), optional=True)
@input_schema("values_named", PandasParameterType(sample, orient="values", apply_column_names=True), optional=True)
@input_schema("split", PandasParameterType(sample, orient="split"), optional=True)
@input_schema("columns", PandasParameterType(sample, orient="columns"), optional=True)
@input_schema("index", PandasParameterType(sample, orient="index"), optional=True)
@input_schema("untyped", PandasParameterType(sample, orient="values", enforce_column_type=False), optional=True)
def run(records=None, values=None, values_named=None, split=None, columns=None, index=None, untyped=None):
    args = {"records": records, "values": values, "values_named": values_named, "split": split,
            "columns": columns, "index": index, "untyped": untyped}
    return {k: describe(v) for k, v in args.items() if v is not None}
