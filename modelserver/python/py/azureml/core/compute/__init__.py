"""azureml.core.compute: importable; compute targets need the cloud."""

from .._unavailable import CloudObject


class ComputeTarget(CloudObject):
    _kind = "azureml.core.ComputeTarget"


class AmlCompute(ComputeTarget):
    _kind = "azureml.core.compute.AmlCompute"


class ComputeInstance(ComputeTarget):
    _kind = "azureml.core.compute.ComputeInstance"


class AksCompute(ComputeTarget):
    _kind = "azureml.core.compute.AksCompute"
