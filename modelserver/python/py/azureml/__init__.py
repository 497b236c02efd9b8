"""modelship compatibility shims for the Azure ML SDK (v1) used inside score.py."""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
