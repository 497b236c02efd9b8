# NumpyParameterType with a structured dtype that has a sub-array field (the
# sample of inference-schema's own nested-type tests).
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

sample = np.array([('Sarah', (8.0, 7.0)), ('John', (6.0, 7.0))],
                  dtype=np.dtype([('name', np.str_, 16), ('grades', np.float64, (2,))]))


def init():
    pass


@input_schema("data", NumpyParameterType(sample))
@output_schema(NumpyParameterType(sample))
def run(data):
    return {"dtype": str(data.dtype), "shape": list(data.shape), "names": data["name"].tolist(),
            "grades": data["grades"].tolist(), "mean": data["grades"].mean(axis=1).tolist()}
