"""Heavy libraries imported on first use, so that commands which do no biometrics (help, whoami, show, audit…)
start without loading numpy, OpenCV, FAISS, Pillow or Jinja2.

`np = lazy("numpy")` binds a stand-in; the first attribute read (`np.zeros`) imports the module (the import
system's own locks make that safe from several threads) and every read after forwards to it. Attributes set on
the stand-in (`ImageFile.LOAD_TRUNCATED_IMAGES = False`) are set on the module.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


class Lazy:
    """Stands for the module `name` until it is used; then is that module for every attribute read or set."""

    # The stand-in's own names are ones no module uses, so that `np.load` is numpy's, not the stand-in's.
    __slots__ = ("_lazy_name", "_lazy_module")

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_lazy_name", name)
        object.__setattr__(self, "_lazy_module", None)

    def _lazy_load(self) -> ModuleType:
        """The module itself, imported now if it was not yet."""
        module = self._lazy_module
        if module is None:
            module = importlib.import_module(self._lazy_name)
            object.__setattr__(self, "_lazy_module", module)
        return module

    def __getattr__(self, attr: str):  # called only for names the stand-in lacks: every module attribute
        return getattr(self._lazy_load(), attr)

    def __setattr__(self, attr: str, value) -> None:
        setattr(self._lazy_load(), attr, value)

    def __repr__(self) -> str:
        state = "loaded" if self._lazy_module is not None else "not loaded yet"
        return f"<lazy module {self._lazy_name!r}, {state}>"


def lazy(name: str) -> Lazy | ModuleType:
    """The module `name` if something imported it already, else a stand-in that imports it on first use."""
    return sys.modules.get(name) or Lazy(name)


#: The libraries only biometric work needs (what `tests/test_cli_polish.py` checks a plain command never loads).
HEAVY = ("numpy", "cv2", "faiss", "dlib", "onnxruntime", "face_recognition", "fastapi", "matplotlib", "PIL",
         "jinja2", "ray", "onnx")
