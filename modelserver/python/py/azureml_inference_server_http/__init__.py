"""modelship's stand-in for the parts of azureml-inference-server-http that score.py files import."""
