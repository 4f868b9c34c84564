"""Methods: one small file each, registered by name. Importing this package registers them all."""

from selfsup.methods import (  # noqa: F401
    barlow_twins, byol, clip, cpc, data2vec, dino, jepa, mae, mfm, mlm, mocov3, scarf, simclr, simcse, simsiam, ts2vec,
    vicreg, vime,
)
from selfsup.methods.base import METHODS, Method, ViewSpec, build_method, method_class, register_method

__all__ = ["METHODS", "Method", "ViewSpec", "build_method", "method_class", "register_method"]
