"""Re-export of modelship's AMLResponse under Azure ML's historical path."""
from azureml_inference_server_http.api.aml_response import AMLResponse  # noqa: F401
