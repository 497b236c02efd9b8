"""azureml.data stand-in: dataset classes are importable; reading or
registering data needs the cloud and raises a clear error."""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from azureml.core._unavailable import LocalObject


class AbstractDataset(LocalObject):
    _kind = "azureml.data.AbstractDataset"


class TabularDataset(AbstractDataset):
    _kind = "azureml.data.TabularDataset"


class FileDataset(AbstractDataset):
    _kind = "azureml.data.FileDataset"
