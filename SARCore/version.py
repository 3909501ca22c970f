"""Single source of the package version (written into every model file header)."""

__version__ = "0.1.0"

#: Model-file format versions this release can read.
SUPPORTED_MODEL_FORMATS = (1,)
