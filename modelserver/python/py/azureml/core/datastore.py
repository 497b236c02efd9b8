"""azureml.core.Datastore: importable; any use needs the cloud."""

from ._unavailable import CloudObject


class Datastore(CloudObject):
    """An Azure ML datastore (not reachable from a modelship worker)."""

    _kind = "azureml.core.Datastore"
