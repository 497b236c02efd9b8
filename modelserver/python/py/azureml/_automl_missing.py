"""A clear error for the parts of Azure AutoML that modelship does not provide.

modelship ships import stand-ins only for the AutoML modules that generated
scoring files import (azureml.automl.core.shared.log_server and
logging_utilities, azureml.telemetry, azureml.train.automl). A model pickled
with AutoML's classes needs Azure's AutoML packages: unpickling it imports
e.g. azureml.automl.runtime.shared.model_wrappers. install() appends a finder
to the end of sys.meta_path, so it is asked only about modules no installed
package provides, and makes those imports fail with a message that says so.
"""

import sys

_PREFIXES = ("azureml.automl.", "azureml.train.automl.", "azureml.training.")
_NAMES = ("azureml.training",)


def message(what):
    return (
        "%s is part of Azure AutoML, which modelship does not provide: it ships only import stand-ins "
        "for the modules AutoML scoring scripts import (azureml.automl.core.shared logging, "
        "azureml.telemetry, azureml.train.automl). A model trained with AutoML needs Azure's AutoML "
        "packages (azureml-automl-runtime, azureml-train-automl-runtime; the versions it was trained with) "
        "in the worker's Python: install them there, or point modelship at a Python that has them "
        "(--python / MODELSHIP_PYTHON)." % what
    )


class _MissingAutoMLFinder:
    """Fails the import of AutoML modules that nothing on sys.path provides."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname.startswith(_PREFIXES) or fullname in _NAMES:
            raise ModuleNotFoundError("No module named %r. %s" % (fullname, message("It")), name=fullname)
        return None

    @staticmethod
    def invalidate_caches():
        pass


def install():
    if _MissingAutoMLFinder not in sys.meta_path:
        sys.meta_path.append(_MissingAutoMLFinder)
