"""azureml.automl stand-in: only what AutoML-generated scoring files import.

See azureml.automl.core.shared.log_server and logging_utilities. Importing
any other AutoML module (as unpickling an AutoML model does) fails with an
error that names the AutoML packages to install.
"""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from azureml import _automl_missing

_automl_missing.install()
