"""selfsup: self-supervised pre-training and honest evaluation, one interface for every modality.

The Python API mirrors the CLI::

    import selfsup
    recipe = selfsup.make_recipe(data="builtin:digits", method="simclr", epochs=10, out="runs/digits")
    run = selfsup.pretrain(recipe)
    result = selfsup.evaluate("runs/digits", "builtin:digits")
    result = selfsup.evaluate("runs/digits", "builtin:digits", selfsup.EvaluationOptions(seeds=3), out="runs/digits/eval")
    encoder = selfsup.load_encoder("runs/digits")

Names are imported on first use, so ``import selfsup`` stays cheap (Lightning loads only when needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "Recipe": "selfsup.recipe",
    "make_recipe": "selfsup.recipe",
    "load_recipe": "selfsup.recipe",
    "SelfsupError": "selfsup.errors",
    "load_encoder": "selfsup.checkpoint",
    "save_encoder": "selfsup.checkpoint",
    "load_classifier": "selfsup.checkpoint",
    "self_train": "selfsup.workflows.selftrain",
    "embed": "selfsup.evaluation.embed",
    "evaluate": "selfsup.evaluation.evaluate",
    "EvaluationOptions": "selfsup.evaluation.options",
    "pretrain": "selfsup.workflows.pretrain",
    "quickstart": "selfsup.workflows.quickstart",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'selfsup' has no attribute '{name}'")
