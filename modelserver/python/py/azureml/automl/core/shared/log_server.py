"""azureml.automl.core.shared.log_server stand-in: AutoML's telemetry set-up.

Scoring files call enable_telemetry(INSTRUMENTATION_KEY), set_verbosity(),
update_custom_dimensions(): here nothing is sent anywhere. Loggers and
verbosity behave as in AutoML (set_verbosity sets the level of the loggers
installed with install_handler); custom dimensions are only kept.
"""

import contextlib
import logging
import threading

DEFAULT_VERBOSITY = logging.INFO
verbosity = DEFAULT_VERBOSITY
logger_names = set()
handlers = {}
custom_dimensions = {}
lock = threading.RLock()
log_file_name = None

_log = logging.getLogger(__name__)


def install_handler(name):
    """Set the verbosity on the logger ``name`` (AutoML also disables propagation; modelship keeps it)."""
    with lock:
        logging.getLogger(name).setLevel(verbosity)
        logger_names.add(name)


def install_sockethandler(name, host=None, port=None):
    """AutoML sends records to its log server; here this is install_handler(name)."""
    install_handler(name)


def add_handler(name, handler, overwrite=True):
    with lock:
        if handler is None:
            handlers.pop(name, None)
        elif name not in handlers or overwrite:
            handlers[name] = handler


def remove_handler(name):
    with lock:
        handlers.pop(name, None)


def enable_telemetry(key, *args, **kwargs):
    """Do nothing: modelship sends no AutoML telemetry."""
    _log.debug("modelship: AutoML telemetry is not sent (log_server.enable_telemetry is a stand-in)")


def set_log_file(path):
    """Remember the path; modelship writes AutoML's log to the worker's output only."""
    global log_file_name
    log_file_name = path


def set_verbosity(new_verbosity):
    """Set the level of the loggers installed with install_handler."""
    global verbosity
    with lock:
        verbosity = new_verbosity
        for name in logger_names:
            logging.getLogger(name).setLevel(new_verbosity)


def update_custom_dimensions(new_dimensions):
    """Keep the custom dimensions (they are not sent anywhere)."""
    with lock:
        custom_dimensions.update(new_dimensions)


def update_custom_dimension(**kwargs):
    update_custom_dimensions(kwargs)


@contextlib.contextmanager
def new_log_context(**kwargs):
    global custom_dimensions
    with lock:
        old = custom_dimensions.copy()
        custom_dimensions.update(kwargs)
    try:
        yield
    finally:
        with lock:
            custom_dimensions = old
