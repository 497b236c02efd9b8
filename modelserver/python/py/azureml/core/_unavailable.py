"""Helpers for SDK classes that need the Azure cloud."""

from azureml.exceptions import NotAvailableInModelship


def unavailable(what):
    """Raise the error used for every Azure cloud call inside modelship."""
    raise NotAvailableInModelship(
        "%s is not available in modelship: scoring workers have no Azure ML workspace. "
        "Read models from AZUREML_MODEL_DIR or Model.get_model_path(name) instead." % what
    )


class CloudObject:
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
