"""leadmatch: face search that returns investigative leads, never identifications."""

from leadmatch.search.leads import NOTICE

__version__ = "0.1.0"
__all__ = ["NOTICE", "__version__"]
