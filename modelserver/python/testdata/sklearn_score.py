# Written the way Azure ML's public "deploy to AKS" samples are.
import json
import os

import joblib
import numpy as np
from azureml.core.model import Model
from azureml.monitoring import ModelDataCollector
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global model, inputs_dc, prediction_dc
    model_path = Model.get_model_path("sklearn_regression_model")
    same = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pkl")
    assert os.path.samefile(model_path, same), (model_path, same)
    model = joblib.load(model_path)
    inputs_dc = ModelDataCollector("sklearn_regression_model", designation="inputs",
                                   feature_names=["f%d" % i for i in range(10)])
    prediction_dc = ModelDataCollector("sklearn_regression_model", designation="predictions",
                                       feature_names=["prediction"])
    print("model loaded from", model_path)


input_sample = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]])
output_sample = np.array([3726.995])


@input_schema("data", NumpyParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data):
    assert isinstance(data, np.ndarray) and data.dtype == np.float64
    inputs_dc.collect(data)
    result = model.predict(data)
    prediction_dc.collect(result)
    return result.tolist()
