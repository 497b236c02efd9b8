# The same scoring script with inference-schema decorators, as in Azure ML's samples.
# The decorators convert the "data" field to a numpy array before run() is called and
# describe the input and output in GET /swagger.json.
#
# modelship ships stand-ins for the inference_schema package, so this works without
# installing it (an installed inference-schema package is used instead when present).
import os

import joblib
import numpy as np

from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType


def init():
    global model
    model_path = os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl')
    model = joblib.load(model_path)


input_sample = np.array([[0.0380759, 0.0506801, 0.0616962, 0.0218724, -0.0442235,
                          -0.0348208, -0.0434008, -0.0025923, 0.0199075, -0.0176461]])
output_sample = np.array([206.1])


@input_schema('data', NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    result = model.predict(data)
    return result.tolist()
