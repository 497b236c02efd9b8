"""azureml.data.dataset_factory stand-in: creating datasets needs the cloud."""

from azureml.core._unavailable import CloudObject


class TabularDatasetFactory(CloudObject):
    _kind = "azureml.data.dataset_factory.TabularDatasetFactory"


class FileDatasetFactory(CloudObject):
    _kind = "azureml.data.dataset_factory.FileDatasetFactory"


class DataType:
    """A column type for dataset creation (informational only in modelship)."""

    def __init__(self, name):
        self.name = name

    @staticmethod
    def to_string():
        return DataType("string")

    @staticmethod
    def to_long():
        return DataType("long")

    @staticmethod
    def to_float(decimal_mark="."):
        return DataType("float")

    @staticmethod
    def to_bool():
        return DataType("bool")

    @staticmethod
    def to_datetime(formats=None):
        return DataType("datetime")
