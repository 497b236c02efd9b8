"""azureml.core.compute_target: the exception compute code catches."""

from azureml.exceptions import AzureMLException


class ComputeTargetException(AzureMLException):
    """An error about a compute target."""
