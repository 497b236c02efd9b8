"""azureml.automl.core stand-in (modelship): the logging modules that
AutoML-generated scoring files import. It is not AutoML: a model trained
with AutoML needs Azure's AutoML packages installed in the worker's Python.
"""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from azureml.automl.core.shared import log_server, logging_utilities  # noqa: F401,E402

VERSION = "0.0.0+modelship"
SELFVERSION = VERSION
__version__ = VERSION
PROJECT_NAME = __name__
