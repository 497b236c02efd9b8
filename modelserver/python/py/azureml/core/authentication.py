"""azureml.core.authentication: the credential classes can be built (they only
keep their arguments); getting a token or header needs Azure and raises the
clear modelship error."""

from ._unavailable import LocalObject, unavailable


class AbstractAuthentication(LocalObject):
    _kind = "azureml.core.authentication.AbstractAuthentication"

    def __init__(self, cloud=None):
        self._cloud_type = cloud

    def get_authentication_header(self):
        unavailable(self._kind + ".get_authentication_header")

    def get_token(self, *scopes, **kwargs):
        unavailable(self._kind + ".get_token")


class InteractiveLoginAuthentication(AbstractAuthentication):
    _kind = "azureml.core.authentication.InteractiveLoginAuthentication"

    def __init__(self, force=False, tenant_id=None, cloud=None):
        super().__init__(cloud)
        self._force = force
        self._tenant_id = tenant_id


class AzureCliAuthentication(AbstractAuthentication):
    _kind = "azureml.core.authentication.AzureCliAuthentication"


class MsiAuthentication(AbstractAuthentication):
    _kind = "azureml.core.authentication.MsiAuthentication"

    def __init__(self, cloud=None, identity_config=None):
        super().__init__(cloud)
        self._identity_config = identity_config


class ServicePrincipalAuthentication(AbstractAuthentication):
    _kind = "azureml.core.authentication.ServicePrincipalAuthentication"

    def __init__(self, tenant_id, service_principal_id, service_principal_password, cloud="AzureCloud",
                 _enable_caching=True):
        super().__init__(cloud)
        self._tenant_id = tenant_id
        self._service_principal_id = service_principal_id
        self._service_principal_password = service_principal_password


class TokenAuthentication(AbstractAuthentication):
    _kind = "azureml.core.authentication.TokenAuthentication"

    def __init__(self, get_token_for_audience, cloud=None):
        super().__init__(cloud)
        self._get_token_for_audience = get_token_for_audience
