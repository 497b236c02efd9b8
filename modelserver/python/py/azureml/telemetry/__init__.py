"""azureml.telemetry stand-in: modelship sends no telemetry to Azure.

INSTRUMENTATION_KEY is empty and get_telemetry_log_handler returns a handler
that drops every record.
"""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

import logging

INSTRUMENTATION_KEY = ""

_diagnostics = {"send_diagnostics": False, "verbose": False}


def get_telemetry_log_handler(instrumentation_key=INSTRUMENTATION_KEY, component_name=None, path=None, **kwargs):
    """A logging handler that drops everything."""
    return logging.NullHandler()


def set_diagnostics_collection(send_diagnostics=True, verbose=False, reset=False, path=None):
    """Remember the setting; nothing is ever sent."""
    _diagnostics["send_diagnostics"] = bool(send_diagnostics)
    _diagnostics["verbose"] = bool(verbose)


def get_diagnostics_collection_info(component_name=None, path=None):
    return dict(_diagnostics)


def is_diagnostics_collection_info_available():
    return True
