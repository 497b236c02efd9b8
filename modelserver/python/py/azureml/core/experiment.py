"""azureml.core.Experiment: importable; any use needs the cloud."""

from ._unavailable import CloudObject


class Experiment(CloudObject):
    _kind = "azureml.core.Experiment"
