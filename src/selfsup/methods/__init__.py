"""Methods: one small file each, registered by name. Importing this package registers them all."""

from selfsup.methods import barlow_twins, byol, dino, mocov3, simclr, simsiam, vicreg  # noqa: F401
from selfsup.methods.base import METHODS, Method, ViewSpec, build_method, method_class, register_method

__all__ = ["METHODS", "Method", "ViewSpec", "build_method", "method_class", "register_method"]
