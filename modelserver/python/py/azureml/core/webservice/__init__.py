"""azureml.core.webservice: importable; deploying from inside a worker raises a clear error."""

from .._unavailable import CloudObject, unavailable


class Webservice(CloudObject):
    _kind = "azureml.core.webservice.Webservice"

    @staticmethod
    def deploy_configuration(*args, **kwargs):
        unavailable("Webservice.deploy_configuration")


class AksWebservice(Webservice):
    _kind = "azureml.core.webservice.AksWebservice"


class AciWebservice(Webservice):
    _kind = "azureml.core.webservice.AciWebservice"


class LocalWebservice(Webservice):
    _kind = "azureml.core.webservice.LocalWebservice"


class AksEndpoint(Webservice):
    _kind = "azureml.core.webservice.AksEndpoint"
