"""modelship's implementation of the inference-schema package API used by score.py files."""
