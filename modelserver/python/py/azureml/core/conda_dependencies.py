"""azureml.core.conda_dependencies.CondaDependencies: build, edit and write a
conda environment file locally (no Azure call is involved).

The default environment is the SDK's: name project_environment, this
worker's Python version, pip package azureml-defaults, channels anaconda and
conda-forge. serialize_to_string() writes YAML that conda reads.
"""

import copy
import json
import os
import re
import sys

_DEFAULT_CHANNELS = ["anaconda", "conda-forge"]
_HEADER = (
    "# Conda environment specification. The dependencies defined in this file will\n"
    "# be automatically provisioned for runs with userManagedDependencies=False.\n"
    "\n"
    "# Details about the Conda environment file format:\n"
    "# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually\n"
    "\n"
)
_PLAIN = re.compile(r"^[A-Za-z0-9_./][^#:'\"\n]*$")
_NUMBER = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def _package_name(spec):
    """'scikit-learn==1.2.1' -> 'scikit-learn', 'inference-schema[numpy-support]' -> 'inference-schema'."""
    spec = spec.strip()
    if "::" in spec:
        spec = spec.split("::", 1)[1]
    return re.split(r"[\s=<>!~\[;@]", spec, 1)[0].lower()


def _scalar(value):
    text = str(value)
    if (text and _PLAIN.match(text) and not text.endswith(" ") and not _NUMBER.match(text)
            and text.lower() not in ("null", "true", "false", "~", "yes", "no", "on", "off")):
        return text
    return json.dumps(text)


def _parse_scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return json.loads(text) if text[0] == '"' else text[1:-1].replace("''", "'")
    return re.split(r"\s+#", text, 1)[0].strip()


def _parse_yaml(text):
    """Read a conda environment file: name, channels, dependencies (with a pip list)."""
    try:
        import yaml

        return yaml.safe_load(text) or {}
    except ImportError:
        pass
    out, key, pip = {}, None, None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0 and not body.startswith("-"):
            k, _, v = body.partition(":")
            key, pip = k.strip(), None
            out[key] = _parse_scalar(v) if v.strip() else []
            continue
        if not body.startswith("-") or key is None:
            continue
        item = body[1:].strip()
        if pip is not None and indent > pip:
            pip_list.append(_parse_scalar(item))
            continue
        if item.rstrip(":").strip() == "pip" and item.endswith(":"):
            pip, pip_list = indent, []
            out[key].append({"pip": pip_list})
            continue
        pip = None
        out[key].append(_parse_scalar(item))
    return out


class CondaDependencies:
    """A conda environment specification (dependencies, pip packages, channels)."""

    def __init__(self, conda_dependencies_file_path=None, _underlying_structure=None):
        if _underlying_structure is not None:
            conda = copy.deepcopy(dict(_underlying_structure))
        elif conda_dependencies_file_path is not None:
            with open(conda_dependencies_file_path, encoding="utf-8") as f:
                conda = _parse_yaml(f.read())
        else:
            conda = {
                "name": "project_environment",
                "dependencies": ["python=%d.%d.%d" % sys.version_info[:3], {"pip": ["azureml-defaults"]}],
                "channels": list(_DEFAULT_CHANNELS),
            }
        conda.setdefault("dependencies", [])
        self._conda_dependencies = conda

    @staticmethod
    def create(pip_indexurl=None, pip_packages=None, conda_packages=None, python_version=None, pin_sdk_version=True):
        """A new specification with the given Python version and packages."""
        if python_version is None:
            python_version = "%d.%d.%d" % sys.version_info[:3]
        cd = CondaDependencies(_underlying_structure={
            "name": "project_environment",
            "dependencies": ["python=%s" % python_version],
            "channels": list(_DEFAULT_CHANNELS),
        })
        if pip_indexurl:
            cd.set_pip_option("--index-url %s" % pip_indexurl)
        for p in conda_packages or []:
            cd.add_conda_package(p)
        for p in pip_packages or []:
            cd.add_pip_package(p)
        return cd

    @staticmethod
    def merge_requirements(requirements):
        return list(dict.fromkeys(requirements))

    # ---- conda packages -------------------------------------------------

    def _deps(self):
        return self._conda_dependencies.setdefault("dependencies", [])

    def _pip_section(self, create=False):
        for d in self._deps():
            if isinstance(d, dict) and "pip" in d:
                if d["pip"] is None:
                    d["pip"] = []
                return d["pip"]
        if not create:
            return None
        pip = []
        self._deps().append({"pip": pip})
        return pip

    @property
    def conda_packages(self):
        return iter([d for d in self._deps() if isinstance(d, str) and not d.startswith("python=") and d != "python"])

    def add_conda_package(self, conda_package):
        deps = self._deps()
        name = _package_name(conda_package)
        for i, d in enumerate(deps):
            if isinstance(d, str) and _package_name(d) == name:
                deps[i] = conda_package
                return
        at = next((i for i, d in enumerate(deps) if isinstance(d, dict)), len(deps))
        deps.insert(at, conda_package)

    def remove_conda_package(self, conda_package):
        name = _package_name(conda_package)
        self._conda_dependencies["dependencies"] = [
            d for d in self._deps() if not (isinstance(d, str) and _package_name(d) == name)
        ]

    def get_python_version(self):
        for d in self._deps():
            if isinstance(d, str) and _package_name(d) == "python":
                return d.partition("=")[2].lstrip("=") or None
        return None

    def set_python_version(self, version):
        self.add_conda_package("python=%s" % version)

    # ---- pip packages ---------------------------------------------------

    @property
    def pip_packages(self):
        return iter([p for p in self._pip_section() or [] if not p.startswith("-")])

    @property
    def pip_options(self):
        return iter([p for p in self._pip_section() or [] if p.startswith("-")])

    def add_pip_package(self, pip_package):
        pip = self._pip_section(create=True)
        name = _package_name(pip_package)
        for i, p in enumerate(pip):
            if not p.startswith("-") and _package_name(p) == name:
                pip[i] = pip_package
                return
        pip.append(pip_package)

    def remove_pip_package(self, pip_package):
        pip = self._pip_section()
        if pip is not None:
            name = _package_name(pip_package)
            pip[:] = [p for p in pip if p.startswith("-") or _package_name(p) != name]

    def set_pip_option(self, pip_option):
        pip = self._pip_section(create=True)
        flag = pip_option.split()[0]
        for i, p in enumerate(pip):
            if p.startswith("-") and p.split()[0] == flag:
                pip[i] = pip_option
                return
        pip.insert(0, pip_option)

    def set_pip_requirements(self, pip_requirements):
        pip = self._pip_section(create=True)
        pip[:] = list(pip_requirements)

    # ---- channels -------------------------------------------------------

    @property
    def conda_channels(self):
        return iter(self._conda_dependencies.get("channels") or [])

    def add_channel(self, channel):
        channels = self._conda_dependencies.setdefault("channels", [])
        if channel not in channels:
            channels.append(channel)

    def remove_channel(self, channel):
        channels = self._conda_dependencies.get("channels") or []
        if channel in channels:
            channels.remove(channel)

    # ---- output ---------------------------------------------------------

    def as_dict(self):
        return copy.deepcopy(self._conda_dependencies)

    def serialize_to_string(self):
        """The environment as conda's YAML file format."""
        lines = []
        for key, value in self._conda_dependencies.items():
            if isinstance(value, list):
                if not value:
                    lines.append("%s: []" % key)
                    continue
                lines.append("%s:" % key)
                for item in value:
                    if isinstance(item, dict):
                        for k, sub in item.items():
                            if isinstance(sub, list) and sub:
                                lines.append("- %s:" % k)
                                lines.extend("  - %s" % _scalar(s) for s in sub)
                            else:
                                lines.append("- %s: []" % k if isinstance(sub, list) or sub is None else "- %s: %s" % (k, _scalar(sub)))
                    else:
                        lines.append("- %s" % _scalar(item))
            elif value is None:
                lines.append("%s:" % key)
            else:
                lines.append("%s: %s" % (key, _scalar(value)))
        return _HEADER + "\n".join(lines) + "\n"

    def save_to_file(self, base_directory, conda_file_path=None):
        path = os.path.join(base_directory, conda_file_path or "conda_dependencies.yml")
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.serialize_to_string())
        return path

    def save(self, path=None):
        if path is None:
            path = os.path.join(os.getcwd(), "conda_dependencies.yml")
        return self.save_to_file(os.path.dirname(os.path.abspath(path)), os.path.basename(path))

    def __str__(self):
        return self.serialize_to_string()
