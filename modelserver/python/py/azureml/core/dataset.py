"""azureml.core.Dataset: importable; loading or registering data needs the cloud."""

from azureml.data.dataset_factory import FileDatasetFactory, TabularDatasetFactory

from ._unavailable import CloudObject


class Dataset(CloudObject):
    """Azure ML datasets (not reachable from a modelship worker)."""

    _kind = "azureml.core.Dataset"

    Tabular = TabularDatasetFactory
    File = FileDatasetFactory
