"""The one version constant: setup.py, the image tags and every compiled YAML derive from it."""

__version__ = "0.1.0"
