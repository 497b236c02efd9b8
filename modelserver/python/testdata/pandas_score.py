import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

sample = pd.DataFrame({"age": [30], "income": [1.5], "city": ["Oslo"]})


def init():
    pass


@input_schema("Inputs", StandardPythonParameterType({"data": PandasParameterType(sample)}))
@input_schema("GlobalParameters", StandardPythonParameterType({"scale": 1.0}), optional=True)
@output_schema(StandardPythonParameterType({"Results": [1.0]}))
def run(Inputs, GlobalParameters={"scale": 1.0}):
    df = Inputs["data"]
    assert isinstance(df, pd.DataFrame)
    scale = GlobalParameters.get("scale", 1.0)
    return {"Results": [float(x) * scale for x in df["age"] + df["income"]],
            "dtypes": [str(t) for t in df.dtypes], "columns": list(df.columns)}
