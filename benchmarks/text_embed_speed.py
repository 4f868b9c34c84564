"""Text embedding speed: the shipped MiniLM over builtin:rottentomatoes snippets, batched in the data's own
order (each batch padded to its longest text) against ``embed``'s shortest-first order.

Prints texts per second for both and the largest difference between the two embeddings (they must agree).

Usage: python benchmarks/text_embed_speed.py [--texts 2000] [--batch 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from selfsup.data import DataOptions
from selfsup.encoders import build_encoder
from selfsup.encoders.text import load_pretrained, text_encoder_config
from selfsup.evaluation.embed import embed
from selfsup.modalities import get_modality
from selfsup.sources import load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = text_encoder_config("minilm")
    reading = get_modality("text").planned_preprocessing("minilm", DataOptions(), {})
    x = load_data("builtin:rottentomatoes", preprocessing=reading).train.x[: args.texts]
    encoder = build_encoder(config)
    load_pretrained(encoder)
    encoder.eval()
    real = (x != config["pad_id"]).sum(dim=1).float()
    print(
        f"{len(x)} texts, tokens per text: mean {real.mean():.1f}, max {int(real.max())} (max_length "
        f"{config['max_length']}); batch {args.batch}, {args.threads} threads"
    )

    with torch.inference_mode():  # warm-up: one-time costs are paid before either timing
        encoder(x[: args.batch])
    start = time.perf_counter()
    with torch.inference_mode():
        as_read = torch.cat([encoder(x[i : i + args.batch]) for i in range(0, len(x), args.batch)]).numpy()
    unsorted = time.perf_counter() - start
    start = time.perf_counter()
    shortest_first = embed(encoder, x, batch_size=args.batch)
    ordered = time.perf_counter() - start
    print(f"data order:     {len(x) / unsorted:7.1f} texts/s ({unsorted:.1f} s)")
    print(f"shortest first: {len(x) / ordered:7.1f} texts/s ({ordered:.1f} s), {unsorted / ordered:.2f}x")
    print(f"largest difference between the embeddings: {np.abs(as_read - shortest_first).max():.2e}")


if __name__ == "__main__":
    main()
