"""leadmatch: face search that returns investigative leads, never identifications."""

from .leads import NOTICE

__version__ = "0.1.0"
__all__ = ["NOTICE", "__version__"]
