"""azureml.monitoring.ModelDataCollector: send scoring data to the modelship server.

When AML_MODEL_DC_STORAGE_ENABLED is "true", collect() hands the rows to the
server (over the worker protocol) with the request id; otherwise it is a
no-op, as in Azure. AML_MODEL_DC_DEBUG=true also prints the rows.

Correlation ids: an "inputs" collect gets a new id (or user_correlation_id).
"predictions", "labels" and "signals" rows collected later in the same
request get the id of that request's last "inputs" collect, as Azure's SDK
correlates them with the last inputs; without one (or with an explicit
user_correlation_id) they get their own. "general" rows always get their own.
"""

import json
import os
import uuid

_DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
_CORRELATED = ("predictions", "labels", "signals")

# (request id, request sequence number, correlation id) of the last "inputs"
# collect in this worker.
_last_inputs = None


def _request_key():
    import _modelship_runtime as rt

    return rt.request_id, getattr(rt, "request_seq", 0)


def _correlation_id(designation, user_correlation_id):
    global _last_inputs
    if designation == "inputs":
        correlation_id = user_correlation_id or str(uuid.uuid4())
        _last_inputs = _request_key() + (correlation_id,)
        return correlation_id
    if user_correlation_id:
        return user_correlation_id
    last = _last_inputs
    if designation in _CORRELATED and last is not None and last[:2] == _request_key():
        return last[2]
    return str(uuid.uuid4())


def _rows(data):
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        return json.loads(data.to_json(orient="values", date_format="iso")), [str(c) for c in data.columns]
    if hasattr(data, "tolist"):
        data = data.tolist()
    if isinstance(data, (list, tuple)):
        rows = [list(r.tolist() if hasattr(r, "tolist") else r) if isinstance(r, (list, tuple)) or hasattr(r, "tolist") else [r] for r in data]
        return rows, None
    return [[data]], None


class ModelDataCollector:
    """Collects model inputs/predictions for later analysis."""

    def __init__(self, model_name, designation="default", feature_names=None, workspace="default/default/default",
                 webservice_name="default", model_version="default", collection_name="default"):
        if designation == "default":
            designation = "general"
        if designation not in _DESIGNATIONS:
            raise ValueError("designation must be one of %s" % ", ".join(_DESIGNATIONS))
        self.model_name = model_name
        self.designation = designation
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.workspace = os.environ.get("WORKSPACE_NAME") or workspace
        self.webservice_name = os.environ.get("SERVICE_NAME") or webservice_name
        self.model_version = model_version
        self.collection_name = collection_name
        self.enabled = os.environ.get("AML_MODEL_DC_STORAGE_ENABLED", "false").lower() == "true"
        self.debug = os.environ.get("AML_MODEL_DC_DEBUG", "false").lower() == "true"

    def collect(self, input_data, user_correlation_id=""):
        """Collect one batch of rows; returns the correlation id."""
        correlation_id = _correlation_id(self.designation, user_correlation_id)
        if not self.enabled:
            return correlation_id
        rows, columns = _rows(input_data)
        features = self.feature_names or columns
        if self.debug:
            print("ModelDataCollector(%s/%s): %r" % (self.model_name, self.designation, rows))
        import _modelship_runtime as rt

        meta = {
            "model": self.model_name,
            "version": str(self.model_version),
            "designation": self.designation,
            "collection": self.collection_name,
            "features": features,
            "workspace": self.workspace,
            "service": self.webservice_name,
            "corr": correlation_id,
        }
        rt.send_collect(meta, json.dumps(rows, default=str).encode("utf-8"))
        return correlation_id

    def add_correlations(self, input_data, correlations):
        """Return the data unchanged (correlation columns are added by the server)."""
        return input_data
