"""azureml.core stand-ins: imports work; cloud calls raise a clear error."""

from .environment import Environment  # noqa: F401
from .experiment import Experiment  # noqa: F401
from .model import InferenceConfig, Model  # noqa: F401
from .run import Run  # noqa: F401
from .workspace import Workspace  # noqa: F401
