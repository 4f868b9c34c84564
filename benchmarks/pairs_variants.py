"""Quality benchmark for the pair method's options (issue 21): CLIP's InfoNCE vs SigLIP's sigmoid loss vs FILIP's
token-wise late interaction, at equal optimiser steps, on the built-in pairs of benchmarks/pairs.py.

Setup (as pairs.py's default variant, made smaller to fit 9 runs into ~15 min on 2 busy cores): audio_cnn (from
scratch; width 8 over 32 mel bins, where the default is 32 over 64; log-mels computed once) on
builtin:spoken_words' training voices, paired with builtin:spoken_word_captions embedded by the shipped
all-MiniLM-L6-v2, locked (LiT, what ``lock=auto`` picks here; frozen and in eval mode, its outputs are computed
once per text, ``CachedText``), both sides projected to 128 dimensions. Every variant trains the same seeded
initial weights for the same number of AdamW steps (lr 1e-3, fixed beforehand: twice CLIP's default for the short
budget; weight decay 1e-4; batch 64 drawn from a seeded shuffle of the 320 training pairs; no warm-up or schedule)
on raw clips (no audio views: a simplification of pairs.py's pipeline, to fit the CPU budget). Scored on the 160 pairs of the unseen test voices, no label used in training:

- zero-shot accuracy over the 10 words, with the bare class name (template '{}') and with a 4-template ensemble
  fixed before any run (ENSEMBLE; per class the mean of the templates' normalised embeddings, CLIP's prompt
  ensembling; token-wise scoring averages the templates' scores instead);
- audio-to-caption retrieval recall@1 and @5 among the 160 test captions (a hit: a caption identical to the
  clip's own, since two clips can share one).

Scoring: global (cosine of the projected pooled embeddings, what ``selfsup evaluate`` uses) for every variant, and
token-wise (FILIP's audio-to-text similarity, the mean over the clip's valid time steps of each one's best cosine
to the text's non-padding tokens) as well; the table shows each variant with its own scoring and FILIP with both.
Baseline: the untrained initial weights (random audio side and projections, MiniLM). Mean over seeds with a 95%
interval (``tables_series.fmt``: the t-interval over seeds with each seed's Wilson interval over the 160 test
samples in quadrature).

Usage: python benchmarks/pairs_variants.py [--seeds 3] [--steps 60] [--threads 2]
       [--out benchmarks/results/pairs_variants.json]
       python benchmarks/pairs_variants.py --report   (print the saved results)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from selfsup.data import DataOptions, pair_by_id
from selfsup.datasets import load_builtin
from selfsup.encoders import Encoder, build_encoder
from selfsup.encoders.audio import LogMel
from selfsup.encoders.pair import PairEncoder
from selfsup.encoders.text import load_pretrained, text_encoder_config, tokenize
from selfsup.evaluation.zeroshot import class_embeddings, class_prompts
from selfsup.files import write_atomic
from selfsup.losses import token_similarity
from selfsup.methods.base import build_method
from selfsup.modalities import get_modality
from tables_series import INTERVAL, fmt, with_notes

VARIANTS = {
    "clip (infonce, global)": {"loss": "infonce", "interaction": "global"},
    "siglip (sigmoid, global)": {"loss": "sigmoid", "interaction": "global"},
    "filip (infonce, token-wise)": {"loss": "infonce", "interaction": "token"},
}
ENSEMBLE = ("{}", "the word {}", "a recording of the word {}", "someone saying {}")  # fixed before any run
METRICS = ("zeroshot", "zeroshot_ensemble", "recall@1", "recall@5")
BATCH, LR, WEIGHT_DECAY, DIM, WIDTH, N_MELS = 64, 1e-3, 1e-4, 128, 8, 32


def load_pairs():
    """Training and test pairs (audio waveforms, caption token ids), the classes and the test labels."""
    words = load_builtin("spoken_words")
    reading = get_modality("text").planned_preprocessing("minilm", DataOptions(), {})
    captions = load_builtin("spoken_word_captions", reading)
    train = pair_by_id(words.train, captions.train, "words", "captions")
    test = pair_by_id(words.test, captions.test, "words", "captions")
    assert train is not None and test is not None and words.train.classes is not None
    audio_config = get_modality("audio").encoder_config("audio_cnn", words, None, {"width": WIDTH, "n_mels": N_MELS})
    log_mel = LogMel.from_config(audio_config)  # fixed, no weights: computed once, the encoders read log-mels
    for pairs in (train, test):
        pairs.a.x = torch.cat([log_mel(pairs.a.x[i : i + 64].float()) for i in range(0, len(pairs.a.x), 64)])
    return train, test, words.train.classes, audio_config


class CachedText(Encoder):
    """The locked MiniLM with its outputs memoised per text: locked and in eval mode it gives every text the same
    hidden states each time, so they are computed once (shared by every run) and padded to the batch's longest
    text, as ``TextEncoder.token_ids`` cuts them."""

    def __init__(self, inner: Encoder) -> None:
        super().__init__()
        self.inner = inner.eval().requires_grad_(False)
        self.config, self.embed_dim, self.cache = inner.config, inner.embed_dim, {}

    @torch.no_grad()
    def forward_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = [row.numpy().tobytes() for row in x.long()]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            hidden, valid = self.inner.forward_tokens(x[missing])
            for i, h, v in zip(missing, hidden, valid, strict=True):
                self.cache[keys[i]] = h[: int(v.sum())].clone()
        rows = [self.cache[k] for k in keys]
        longest = max(len(r) for r in rows)
        hidden = torch.zeros(len(rows), longest, self.embed_dim)
        valid = torch.zeros(len(rows), longest, dtype=torch.bool)
        for i, r in enumerate(rows):
            hidden[i, : len(r)], valid[i, : len(r)] = r, True
        return hidden, valid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, valid = self.forward_tokens(x)  # MiniLM's mean pooling over the text's tokens
        return (hidden * valid.unsqueeze(-1)).sum(1) / valid.sum(1, keepdim=True)


def minilm() -> CachedText:
    text = build_encoder(text_encoder_config("minilm"))
    load_pretrained(text)  # type: ignore[arg-type]
    assert text.config["pooling"] == "mean"
    return CachedText(text)


def build(seed: int, audio_config: dict, text: CachedText, args: dict):
    torch.manual_seed(seed)
    audio = build_encoder(audio_config)
    return build_method("clip", PairEncoder(audio, text), {"dim": DIM, "lock": "b", **args})


def train(method, pairs, seed: int, steps: int) -> float:
    """``steps`` AdamW steps on seeded batches of the training pairs; CPU seconds taken."""
    audio, text = pairs.a.x.float(), pairs.b.x
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=LR, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    method.train()
    start = time.process_time()
    for step in range(steps):
        if len(order) < BATCH:
            order = torch.randperm(len(audio), generator=generator).tolist()
        batch, order = order[:BATCH], order[BATCH:]
        out = method.training_loss([audio[batch], text[batch]])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_train_batch_end((step + 1) / steps)
    return time.process_time() - start


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


@torch.no_grad()
def score(method, test, classes: list[str]) -> dict[str, dict[str, float]]:
    """Zero-shot accuracies and retrieval recalls, global and token-wise."""
    method.eval()
    audio, captions, labels = test.a.x.float(), test.b.x, test.a.y
    text_side = method.encoder.b
    out: dict[str, dict[str, float]] = {}
    # global
    a = _normalise(torch.cat([method.encoder.a(audio[i : i + 64]) for i in range(0, len(audio), 64)]))
    t = _normalise(text_side(captions))
    zs = {}
    for name, templates in (("zeroshot", ("{}",)), ("zeroshot_ensemble", ENSEMBLE)):
        prototypes = _normalise(torch.from_numpy(class_embeddings(text_side, classes, templates)).float())
        zs[name] = float(((a @ prototypes.T).argmax(1) == labels).float().mean())
    out["global"] = zs | recalls(a @ t.T, captions)
    # token-wise (FILIP's audio-to-text direction)
    a_tok, a_valid = zip(*(method.tokens("a", audio[i : i + 64]) for i in range(0, len(audio), 64)), strict=True)
    a_tok, a_valid = torch.cat(a_tok), torch.cat(a_valid)
    t_tok, t_valid = method.tokens("b", captions)
    zs = {}
    for name, templates in (("zeroshot", ("{}",)), ("zeroshot_ensemble", ENSEMBLE)):
        scores = torch.zeros(len(audio), len(classes))
        for template in templates:
            ids = tokenize(class_prompts(classes, template), text_side.config)
            p_tok, p_valid = method.tokens("b", ids)
            scores += token_similarity(a_tok, a_valid, p_tok, p_valid)[0] / len(templates)
        zs[name] = float((scores.argmax(1) == labels).float().mean())
    out["token"] = zs | recalls(token_similarity(a_tok, a_valid, t_tok, t_valid)[0], captions)
    return out


def recalls(similarity: torch.Tensor, captions: torch.Tensor) -> dict[str, float]:
    """Audio-to-caption recall@1 and @5: a hit when one of the top k captions is identical to the clip's own."""
    same = (captions[:, None, :] == captions[None, :, :]).all(-1)  # (N, N): caption i equals caption j
    top = similarity.topk(5, dim=1).indices
    hits = same.gather(1, top)
    return {"recall@1": float(hits[:, 0].float().mean()), "recall@5": float(hits.any(1).float().mean())}


def markdown(results: list[dict], n_test: int) -> str:
    def cell(runs: list[dict], key: str, scoring: str, metric: str) -> str:
        return fmt([{"accuracy": r[key][scoring][metric], "n_test": n_test} for r in runs])

    seeds = sorted({r["seed"] for r in results})
    first = [r for r in results if r["variant"] == results[0]["variant"]]
    header = "| encoder | scoring | zero-shot '{}' | zero-shot, 4 templates | R@1 audio→caption | R@5 | CPU s / run |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for scoring in ("global", "token"):
        lines.append(
            f"| random-init (untrained audio side + projections, MiniLM) | {scoring} | "
            + " | ".join(cell(first, "random_init", scoring, m) for m in METRICS)
            + " | |"
        )
    for variant, args in VARIANTS.items():
        runs = [r for r in results if r["variant"] == variant]
        scorings = ("token", "global") if args["interaction"] == "token" else ("global",)
        seconds = sum(r["cpu_seconds"] for r in runs) / len(runs)
        for scoring in scorings:
            lines.append(
                f"| {variant}, {runs[0]['steps']} steps | {scoring} | "
                + " | ".join(cell(runs, "trained", scoring, m) for m in METRICS)
                + f" | {seconds:.0f} |"
            )
    return f"seeds {seeds}\n\n" + with_notes("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/pairs_variants.json")
    parser.add_argument("--report", action="store_true", help="print the saved results and exit")
    args = parser.parse_args()
    if not args.report:
        torch.set_num_threads(args.threads)
        wall = time.time()
        train_pairs, test_pairs, classes, audio_config = load_pairs()
        text = minilm()
        results = []
        for seed in range(args.seeds):
            random_init = score(build(seed, audio_config, text, {}), test_pairs, classes)
            for variant, method_args in VARIANTS.items():
                method = build(seed, audio_config, text, method_args)
                seconds = train(method, train_pairs, seed, args.steps)
                trained = score(method, test_pairs, classes)
                results.append(
                    {
                        "variant": variant,
                        "method_args": method_args,
                        "seed": seed,
                        "steps": args.steps,
                        "cpu_seconds": round(seconds, 1),
                        "logit_scale": method.log_scale.exp().item(),
                        "logit_bias": None if method.bias is None else method.bias.item(),
                        "trained": trained,
                        "random_init": random_init,
                    }
                )
                print(f"{variant} seed {seed}: {trained} ({seconds:.0f} CPU s)", file=sys.stderr, flush=True)
        saved = {
            "args": vars(args),
            "n_test": len(test_pairs),
            "n_train": len(train_pairs),
            "wall_seconds": round(time.time() - wall, 1),
            "results": results,
        }
        write_atomic(Path(args.out), json.dumps(saved, indent=1))
    saved = json.loads(Path(args.out).read_text())
    print(
        f"### Pair method options on builtin:spoken_words + captions (MiniLM locked), unseen test voices "
        f"({saved['n_test']} pairs), {saved['args']['seeds']} seeds, {saved['wall_seconds']:.0f} s wall, "
        f"{INTERVAL}\n\n{markdown(saved['results'], saved['n_test'])}"
    )


if __name__ == "__main__":
    main()
