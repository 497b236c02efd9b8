"""azureml.core.model: Model.get_model_path finds deployed model files locally.

Lookup rules (Azure ML SDK v1, inside a deployment): with a version, the
folder ``<models root>/<name>/<version>/`` must hold exactly one entry, which
is returned; without a version the highest numeric version folder is used;
then ``./<name>`` relative to the working directory; otherwise
ModelNotFoundException "Model not found in cache or in root at ./<name>".
The models root is AZUREML_MODEL_DIR when it holds ``<name>/`` (several
models deployed), or its grandparent when AZUREML_MODEL_DIR is
``<root>/<name>/<version>`` (one model), or ``azureml-models`` under the app
root or the working directory.
"""

import os

from azureml.exceptions import ModelNotFoundException, WebserviceException

from ._unavailable import unavailable


def _roots(model_name):
    roots = []
    env = os.environ.get("AZUREML_MODEL_DIR")
    if env:
        env = os.path.normpath(env)
        roots.append(env)
        roots.append(os.path.dirname(os.path.dirname(env)))
    for base in (os.environ.get("AML_APP_ROOT"), os.getcwd()):
        if base:
            roots.append(os.path.join(base, "azureml-models"))
    seen = []
    for r in roots:
        if r and r not in seen and os.path.isdir(os.path.join(r, model_name)):
            seen.append(r)
    return seen


def _versions(folder):
    out = []
    for entry in os.listdir(folder):
        if entry.isdigit() and os.path.isdir(os.path.join(folder, entry)):
            out.append(int(entry))
    return sorted(out)


def _single_entry(version_dir, strict):
    entries = [e for e in os.listdir(version_dir) if not e.startswith(".")]
    if len(entries) == 1:
        return os.path.join(version_dir, entries[0])
    if strict:
        raise WebserviceException(
            "Dir %s should contain exactly one file or folder, found %d" % (version_dir, len(entries))
        )
    return version_dir


def _get_model_path(model_name, version=None):
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise WebserviceException("Model version must be an int, got %r" % (version,))
    for root in _roots(model_name):
        folder = os.path.join(root, model_name)
        if version is not None:
            vdir = os.path.join(folder, str(version))
            if os.path.isdir(vdir):
                return _single_entry(vdir, True)
            continue
        versions = _versions(folder)
        if versions:
            return _single_entry(os.path.join(folder, str(versions[-1])), False)
    if os.path.exists(model_name):
        return model_name
    raise ModelNotFoundException("Model not found in cache or in root at ./%s" % model_name)


class Model:
    """A registered model. Only the local path lookup works in modelship."""

    def __init__(self, workspace=None, name=None, id=None, tags=None, properties=None, version=None, **kwargs):
        unavailable("azureml.core.Model(workspace, ...)")

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None):
        """Return the local path of a deployed model (see the module doc for the rules)."""
        return _get_model_path(model_name, version)

    @staticmethod
    def register(*args, **kwargs):
        unavailable("azureml.core.Model.register")

    @staticmethod
    def list(*args, **kwargs):
        unavailable("azureml.core.Model.list")

    @staticmethod
    def deploy(*args, **kwargs):
        unavailable("azureml.core.Model.deploy")


class InferenceConfig:
    """Inference configuration (informational only inside a worker)."""

    def __init__(self, entry_script=None, runtime=None, conda_file=None, extra_docker_file_steps=None,
                 source_directory=None, enable_gpu=None, description=None, base_image=None,
                 base_image_registry=None, cuda_version=None, environment=None):
        self.entry_script = entry_script
        self.source_directory = source_directory
        self.environment = environment
        self.description = description
