"""azureml.core.Run: Run.get_context() returns an offline run that logs to stdout."""

import uuid

from ._unavailable import CloudObject, unavailable


class Run(CloudObject):
    """An experiment run. Only the offline run from get_context() works in modelship."""

    _kind = "azureml.core.Run"

    @staticmethod
    def get_context(allow_offline=True, **kwargs):
        if not allow_offline:
            unavailable("azureml.core.Run.get_context(allow_offline=False)")
        return _OfflineRun()


class _OfflineRun:
    """A run that is not attached to any workspace; metrics are printed."""

    def __init__(self):
        self.id = "OfflineRun_" + str(uuid.uuid4())
        self.experiment = None
        self.properties = {}
        self.tags = {}

    def _print(self, kind, name, value):
        print("Attempted to %s %s to the offline run: %r" % (kind, name, value))

    def log(self, name, value, description="", step=None):
        self._print("log", name, value)

    def log_list(self, name, value, description=""):
        self._print("log_list", name, value)

    def log_row(self, name, description=None, **kwargs):
        self._print("log_row", name, kwargs)

    def log_table(self, name, value, description=""):
        self._print("log_table", name, value)

    def log_image(self, name, path=None, plot=None, description=""):
        self._print("log_image", name, path)

    def tag(self, key, value=None):
        self.tags[key] = value

    def set_tags(self, tags):
        self.tags.update(tags)

    def add_properties(self, properties):
        self.properties.update(properties)

    def get_metrics(self, *args, **kwargs):
        return {}

    def upload_file(self, name, path_or_stream, **kwargs):
        unavailable("Run.upload_file")

    def complete(self, *args, **kwargs):
        pass

    def fail(self, *args, **kwargs):
        pass
