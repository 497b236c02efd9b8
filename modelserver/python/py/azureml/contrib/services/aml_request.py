"""Re-export of modelship's AMLRequest and @rawhttp under Azure ML's historical path."""
from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp  # noqa: F401
