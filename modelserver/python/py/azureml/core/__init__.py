"""azureml.core stand-ins: imports work; cloud calls raise a clear error."""

from .compute import ComputeTarget  # noqa: F401
from .dataset import Dataset  # noqa: F401
from .datastore import Datastore  # noqa: F401
from .environment import Environment  # noqa: F401
from .experiment import Experiment  # noqa: F401
from .model import InferenceConfig, Model  # noqa: F401
from .run import Run  # noqa: F401
from .webservice import Webservice  # noqa: F401
from .workspace import Workspace  # noqa: F401
