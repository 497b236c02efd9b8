"""Built-in scoring script for "no-code" scikit-learn deployments.

Loads the joblib/pickle file named by MODELSHIP_NOCODE_MODEL and answers
{"data": [[...], ...]} with the model's output as a JSON list. As in Azure's
no-code deployment, a model that has predict_proba uses it by default, and
"method": "predict" (or "predict_proba") in the body chooses.
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
    method = data.get("method")
    if method is None:
        method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    if method not in ("predict", "predict_proba") or not hasattr(model, method):
        raise ValueError("method %r is not available for %s; use \"predict\"%s" % (
            method, type(model).__name__, ' or "predict_proba"' if hasattr(model, "predict_proba") else ""))
    result = getattr(model, method)(np.asarray(data["data"]))
    return result.tolist()
