"""Label-free quality of an encoder on a dataset: the monitors of ``selfsup.monitors`` over its embeddings."""

from __future__ import annotations

import torch

from selfsup.evaluation.embed import embed
from selfsup.monitors import alignment, embedding_spread, rankme, uniformity


@torch.no_grad()
def label_free(
    encoder: torch.nn.Module, x: torch.Tensor, views: torch.nn.Module | None = None, batch_size: int = 512
) -> dict[str, float]:
    """All monitors for ``encoder`` on samples ``x``; alignment only with ``views`` (a modality's views
    module with two global views), whose two views of each sample are the positive pair."""
    z = torch.from_numpy(embed(encoder, x, batch_size=batch_size))
    result = {"rankme": rankme(z), "uniformity": uniformity(z[:2048]), "embedding_spread": embedding_spread(z)}
    if views is not None:
        first, second = views(x[:2048])[:2]
        result["alignment"] = alignment(
            torch.from_numpy(embed(encoder, first)), torch.from_numpy(embed(encoder, second))
        )
    return result
