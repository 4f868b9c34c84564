"""Evaluation speed (issue 6): embedding + kNN + linear probe of 10,000 samples with a small encoder.

The 10,000 samples are the 1,797 built-in digits and random augmented views of them (crop, jitter),
at 16 px, split 7,500 / 2,500 stratified; the encoder is the built-in small CNN (random init: speed
does not depend on the weights). Prints wall seconds per stage and in total.

Usage: python benchmarks/eval_speed.py [--samples 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.evaluation.embed import embed
from selfsup.evaluation.protocols import run_protocols
from selfsup.methods.base import ViewSpec
from selfsup.modalities.image import encoder_config, make_views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    digits = load_builtin("digits")
    x = torch.cat([digits.train.float_samples(), digits.test.float_samples()])
    x = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)  # the view size
    y = torch.cat([digits.train.y, digits.test.y])
    config = encoder_config("small_cnn", digits, 16)
    views = make_views(ViewSpec(n_global=1), digits, config, {})
    while len(x) < args.samples:  # augmented copies of the real digits
        extra = min(len(digits.train), args.samples - len(x))
        pick = torch.randint(0, 1797, (extra,))
        x = torch.cat([x, views(x[pick])[0]])
        y = torch.cat([y, y[pick]])
    x, y = x[: args.samples], y[: args.samples].numpy()
    train_idx, test_idx = train_test_split(np.arange(len(x)), test_size=0.25, stratify=y, random_state=0)
    encoder = build_encoder(config).eval()

    start = time.perf_counter()
    z = embed(encoder, x)
    embedded = time.perf_counter()
    features = {"pretrained": (z[train_idx], z[test_idx])}
    knn = run_protocols(features, y[train_idx], y[test_idx], ["knn"])
    knn_done = time.perf_counter()
    linear = run_protocols(features, y[train_idx], y[test_idx], ["linear"])
    done = time.perf_counter()
    print(
        f"{len(x)} samples ({len(train_idx)} train / {len(test_idx)} test), small_cnn "
        f"({encoder.embed_dim}-d), {args.threads} threads"
    )
    print(f"embed:        {embedded - start:6.2f} s")
    print(f"kNN (k={knn[0]['details']['k']}, by CV): {knn_done - embedded:6.2f} s   accuracy {knn[0]['accuracy']:.3f}")
    print(f"linear probe: {done - knn_done:6.2f} s   accuracy {linear[0]['accuracy']:.3f} ({linear[0]['details']})")
    print(f"total:        {done - start:6.2f} s")


if __name__ == "__main__":
    main()
