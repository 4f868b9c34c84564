"""Methods: one small file each, registered by name.

Importing this package is light (no torch): ``METHOD_MODULES`` names every method and its module, so a name is
checked before anything heavy loads. A method's module is imported on first use (``method_class``); the registry
and the base classes (``METHODS``, ``Method``, ``build_method``, ...) import every method when first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from selfsup.errors import unknown_name

if TYPE_CHECKING:
    from selfsup.methods.base import METHODS, Method, ViewSpec, build_method, register_method

METHOD_NAMES = (
    "barlow_twins",
    "byol",
    "clip",
    "cpc",
    "cropmae",
    "data2vec",
    "dino",
    "dinov2",
    "ecg_jepa",
    "jepa",
    "mae",
    "mfm",
    "mlm",
    "mocov3",
    "sar_jepa",
    "scarf",
    "simclr",
    "simcse",
    "simsiam",
    "tera",
    "tjepa",
    "ts2vec",
    "ul2",
    "vicreg",
    "vime",
)
METHOD_MODULES: dict[str, str] = {name: f"{__name__}.{name}" for name in METHOD_NAMES}  # a test keeps it true
_FROM_BASE = ("METHODS", "Method", "ViewSpec", "build_method", "register_method")

__all__ = [
    "METHODS",
    "METHOD_MODULES",
    "METHOD_NAMES",
    "Method",
    "ViewSpec",
    "build_method",
    "check_method_name",
    "method_class",
    "register_method",
]


def check_method_name(name: str) -> None:
    """Refuse an unknown method name, suggesting the closest one, without importing any method."""
    if name not in METHOD_MODULES:
        raise unknown_name("method", name, METHOD_MODULES, hint="Run 'selfsup methods' to list them.")


def method_class(name: str) -> type[Method]:
    """The registered class of method ``name``, importing only its module."""
    check_method_name(name)
    importlib.import_module(METHOD_MODULES[name])
    from selfsup.methods.base import METHODS

    return METHODS[name]


def __getattr__(name: str) -> Any:
    """The registry and base classes (every method registered), or one method's module, loaded on first use."""
    if name in METHOD_MODULES:
        return importlib.import_module(METHOD_MODULES[name])
    if name in _FROM_BASE:
        for module in METHOD_MODULES.values():
            importlib.import_module(module)
        from selfsup.methods import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
