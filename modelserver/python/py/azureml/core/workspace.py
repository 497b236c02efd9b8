"""azureml.core.Workspace: importable; any use needs the cloud and raises a clear error."""

from ._unavailable import CloudObject, unavailable


class Workspace(CloudObject):
    """An Azure ML workspace (not reachable from a modelship worker)."""

    _kind = "azureml.core.Workspace"

    @classmethod
    def from_config(cls, *args, **kwargs):
        unavailable("azureml.core.Workspace.from_config")

    @classmethod
    def create(cls, *args, **kwargs):
        unavailable("azureml.core.Workspace.create")
