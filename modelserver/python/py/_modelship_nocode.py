"""Built-in scoring script for "no-code" scikit-learn deployments.

Loads the joblib/pickle file named by MODELSHIP_NOCODE_MODEL and answers
{"data": [[...], ...]} with the model's predict() output as a JSON list.
"""

import json
import os

model = None


def init():
    global model
    import joblib

    path = os.environ["MODELSHIP_NOCODE_MODEL"]
    model = joblib.load(path)
    print("Loaded scikit-learn model %s from %s" % (type(model).__name__, path))


def run(raw_data):
    import numpy as np

    data = json.loads(raw_data)
    if not isinstance(data, dict) or "data" not in data:
        raise ValueError('expected a JSON object {"data": [[...], ...]}')
    result = model.predict(np.asarray(data["data"]))
    return result.tolist()
