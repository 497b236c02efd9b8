"""Public API used by score.py files: AMLRequest, rawhttp and AMLResponse."""
