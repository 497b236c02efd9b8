"""azureml.train.automl stand-in (modelship), so that ``import azureml.train.automl``
in a score.py works (Microsoft's Power BI sample has one, unused).

It is not AutoML: AutoMLConfig and the other AutoML classes, and models
pickled with them, need Azure's AutoML packages in the worker's Python.
"""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from azureml import _automl_missing

_automl_missing.install()


def __getattr__(name):
    if name.startswith("_"):
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    # An ImportError (not AttributeError) keeps this message in `from azureml.train.automl import X`.
    raise ImportError(_automl_missing.message("azureml.train.automl.%s" % name), name=__name__)
