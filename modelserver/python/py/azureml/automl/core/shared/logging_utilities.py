"""azureml.automl.core.shared.logging_utilities stand-in.

log_traceback() logs the exception and its traceback to the given logger
(at CRITICAL, or ERROR with is_critical=False); the worker's output shows it
as any other log record. The other helpers only keep their call sites working.
"""

import contextlib
import functools
import logging


def log_traceback(exception, logger, override_error_msg=None, is_critical=True, tb=None):
    """Log ``exception`` with its traceback."""
    if logger is None:
        logger = logging.getLogger("azureml.automl")
    msg = override_error_msg or "%s: %s" % (type(exception).__name__, exception)
    exc_info = (type(exception), exception, tb or getattr(exception, "__traceback__", None))
    logger.log(logging.CRITICAL if is_critical else logging.ERROR, msg, exc_info=exc_info)


def mark_package_exceptions_as_loggable(module):
    pass


def mark_path_as_loggable(path):
    pass


def function_debug_log_wrapped(log_level="debug"):
    """A decorator that changes nothing (AutoML logs entry and exit at debug level)."""

    def wrap(func):
        @functools.wraps(func)
        def inner(*args, **kwargs):
            return func(*args, **kwargs)

        return inner

    return wrap


@contextlib.contextmanager
def log_activity(logger, activity_name, activity_type=None, custom_dimensions=None):
    """Log the start and the end of an activity at debug level."""
    if logger is not None:
        logger.debug("ActivityStarted: %s", activity_name)
    yield
    if logger is not None:
        logger.debug("ActivityCompleted: %s", activity_name)
