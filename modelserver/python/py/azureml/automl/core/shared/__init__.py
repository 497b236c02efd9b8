"""azureml.automl.core.shared stand-in: log_server and logging_utilities."""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
