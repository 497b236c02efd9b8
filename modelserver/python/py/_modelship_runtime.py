"""Shared state between the modelship worker and the compatibility shims.

The worker sets ``request_id`` and increments ``request_seq`` before each
call of the user's run() (``request_seq`` tells two requests apart even when
a client reuses a request id), and installs ``send_collect`` so that
``azureml.monitoring.ModelDataCollector`` can hand rows to the Go server.
Outside a modelship worker they stay inert.
"""

INIT_REQUEST_ID = "00000000-0000-0000-0000-000000000000"

request_id = INIT_REQUEST_ID

request_seq = 0


def send_collect(meta, rows_json):
    """Send collected rows to the server; replaced by the worker at startup."""
    return False
