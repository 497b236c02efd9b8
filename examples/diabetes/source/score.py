# Scoring script for the diabetes Ridge model, in the style of Azure ML's samples.
# modelship runs it unchanged: init() once per worker, run() once per request.
import json
import os

import joblib
import numpy as np


def init():
    global model
    # AZUREML_MODEL_DIR is the folder of the deployed model: <root>/<name>/<version>
    # when one model is deployed (as here).
    model_path = os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl')
    model = joblib.load(model_path)
    print("model loaded from", model_path)


def run(raw_data):
    # raw_data is the request body as a string.
    data = np.array(json.loads(raw_data)['data'])
    result = model.predict(data)
    # Anything JSON-serializable can be returned. An exception here becomes a 502
    # at the gateway, with the traceback in `modelship service get-logs`.
    return result.tolist()
