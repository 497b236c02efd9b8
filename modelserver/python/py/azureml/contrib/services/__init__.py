"""azureml.contrib.services: AMLRequest, rawhttp and AMLResponse for score.py files."""
