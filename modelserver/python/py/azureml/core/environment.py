"""azureml.core.Environment: constructible, but registry calls raise a clear error."""

from ._unavailable import unavailable


class Environment:
    """A description of a Python environment (informational only in modelship)."""

    def __init__(self, name=None, **kwargs):
        self.name = name
        self.version = None
        self.environment_variables = {}
        self.python = None
        self.docker = None

    @staticmethod
    def get(workspace, name, version=None, label=None):
        unavailable("azureml.core.Environment.get")

    @staticmethod
    def from_conda_specification(name, file_path):
        return Environment(name)

    @staticmethod
    def from_pip_requirements(name, file_path, pip_version=None):
        return Environment(name)

    def register(self, workspace):
        unavailable("azureml.core.Environment.register")
