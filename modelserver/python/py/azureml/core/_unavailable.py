"""Helpers for SDK classes that need the Azure cloud."""

from azureml.exceptions import NotAvailableInModelship


def unavailable(what):
    """Raise the error used for every Azure cloud call inside modelship."""
    raise NotAvailableInModelship(
        "%s is not available in modelship: scoring workers have no Azure ML workspace. "
        "Read models from AZUREML_MODEL_DIR or Model.get_model_path(name) instead." % what
    )


def _raiser(what):
    def call(*args, **kwargs):
        unavailable(what)

    call.__name__ = what.rsplit(".", 1)[-1]
    call.__qualname__ = what
    return call


class _CloudClass(type):
    """Makes any public class attribute an SDK class does not define a cloud call
    (e.g. Datastore.register_azure_blob_container) that raises the clear error."""

    def __getattr__(cls, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _raiser(cls._kind + "." + name)


class CloudObject(metaclass=_CloudClass):
    """A class whose construction and class methods need the Azure cloud."""

    _kind = "azureml.core object"

    def __init__(self, *args, **kwargs):
        unavailable(self._kind)

    @classmethod
    def get(cls, *args, **kwargs):
        unavailable(cls._kind + ".get")

    @classmethod
    def list(cls, *args, **kwargs):
        unavailable(cls._kind + ".list")


class LocalObject(metaclass=_CloudClass):
    """An SDK object that can be built in a worker (from arguments, not from the
    cloud); its public methods and attributes that need the cloud raise the
    clear error when called."""

    _kind = "azureml.core object"

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _raiser(self._kind + "." + name)
