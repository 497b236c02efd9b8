"""azureml.train stand-in (modelship): only azureml.train.automl exists, for scripts that import it."""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
