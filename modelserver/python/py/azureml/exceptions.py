"""Exception types of the Azure ML SDK that score.py files catch."""


class AzureMLException(Exception):
    """Base class of Azure ML SDK errors."""

    def __init__(self, exception_message="", *args, **kwargs):
        super().__init__(exception_message, *args)
        self.message = exception_message


class UserErrorException(AzureMLException):
    """An error caused by the caller."""


class WebserviceException(AzureMLException):
    """An error about a web service or a model."""


class ModelNotFoundException(WebserviceException):
    """Model.get_model_path found no model."""


class NotAvailableInModelship(AzureMLException, NotImplementedError):
    """An Azure cloud call was attempted inside a modelship scoring worker."""


class AuthenticationException(AzureMLException):
    """Authentication with Azure failed."""
