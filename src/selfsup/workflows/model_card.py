"""The model card (README.md) of a Hub folder export (``hf``, ``timm``): YAML front matter (library, license,
tags) then what the encoder is, how to load it, its recipe, data and evaluation, and what it is for (Mitchell et al.
2019, "Model Cards for Model Reporting"; https://huggingface.co/docs/hub/model-cards)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from selfsup import __version__
from selfsup.encoders import Encoder
from selfsup.outputs import is_evaluation_results
from selfsup.workflows.formats import ONNX_FILE, TORCHSCRIPT_FILE, text_encoder, transformers_folder


def usage(fmt: str, encoder: Encoder, out: str = "OUT") -> str:
    """The lines that load the export and embed a batch ``x`` (its input: :func:`input_note`)."""
    text = text_encoder(encoder)
    if fmt == "hf" and transformers_folder(encoder):
        pool = (
            "hidden[:, 0]"
            if text.pooling == "cls"
            else "(hidden * mask).sum(1) / mask.sum(1)  # mean over the text's tokens"
        )
        return (
            "from transformers import AutoModel, AutoTokenizer\n"
            f'tokenizer, model = AutoTokenizer.from_pretrained("{out}"), AutoModel.from_pretrained("{out}")\n'
            f"batch = tokenizer(texts, padding=True, truncation=True, max_length={text.config['max_length']}, "
            'return_tensors="pt")\n'
            "hidden = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state\n"
            "mask = batch.attention_mask.unsqueeze(-1)\n"
            f"embeddings = {pool}"
        )
    return {
        "hf": f'from selfsup.encoders.hub import HubEncoder\nencoder = HubEncoder.from_pretrained("{out}")\n'
        "embeddings = encoder(x)",
        "timm": f'import timm\nmodel = timm.create_model("local-dir:{out}", pretrained=True).eval()\n'
        "cfg = timm.data.resolve_model_data_config(model)  # input_size, mean, std\n"
        'embeddings = model((x - torch.tensor(cfg["mean"]).view(1, -1, 1, 1)) / '
        'torch.tensor(cfg["std"]).view(1, -1, 1, 1))',
        "onnx": f'import onnxruntime\nsession = onnxruntime.InferenceSession("{out}/{ONNX_FILE}")\n'
        "embeddings = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]",
        "torchscript": f'import torch\nencoder = torch.jit.load("{out}/{TORCHSCRIPT_FILE}")\nembeddings = encoder(x)',
    }[fmt]


def input_note(fmt: str, encoder: Encoder) -> str:
    """What ``x`` is for the export."""
    config, text = encoder.config, text_encoder(encoder)
    if text is not None:
        if fmt == "hf" and transformers_folder(encoder):
            return "texts (a list of strings), tokenized by the tokenizer in this folder."
        return (
            f"int64 token ids (batch, {config['max_length']}) from the tokenizer in this folder, truncated and "
            f"right-padded with its pad id ({config['pad_id']})."
        )
    modality = config["modality"]
    if modality == "image":
        size = f"{config['in_chans']} x {config['image_size']} x {config['image_size']}"
        if fmt == "timm":
            return (
                f"float32 images (batch, {size}) in [0, 1] (resized bilinearly, no crop), normalised with the "
                f"config's mean {config['mean']} and std {config['std']}."
            )
        return f"float32 images (batch, {size}) with values in [0, 1]; the model normalises them itself."
    return {
        "tabular": "float32 rows (batch, features) laid out by the table schema in preprocessing.json: "
        "standardised numeric columns, missing-value indicators, then one category code per categorical column.",
        "timeseries": f"float32 series (batch, {config.get('in_chans')}, {config.get('length')}), NaN for missing "
        "steps (a shorter series is padded with NaN at its end).",
        "audio": "float32 waveforms (batch, samples) at the rate and clip length in preprocessing.json.",
    }.get(modality, "samples as selfsup reads them (preprocessing.json).")


def evaluation_reports(run: Path) -> list[dict[str, Any]]:
    """The evaluation reports (``results.json``) in the run folder: ``RUN/eval``, ``RUN/report`` and the like."""
    reports = []
    for path in sorted(run.glob("*/results.json")) + sorted(run.glob("*/*/results.json")):
        if is_evaluation_results(path):
            reports.append(json.loads(path.read_text()))
    return reports


def _evaluation_lines(run: Path, checkpoint: str | Path | None) -> list[str]:
    rows = [
        (report["meta"].get("data", "?"), row)
        for report in evaluation_reports(run)
        for row in report["rows"]
        if isinstance(row, dict) and isinstance(row.get("accuracy"), (int, float))
    ]
    if not rows:
        return [
            "The run holds no evaluation report. Score the encoder with "
            "`selfsup evaluate --encoder RUN --data LABELED_DATA` before relying on it."
        ]
    lines = [
        "Accuracy of probes on frozen embeddings (selfsup's evaluation report in the run folder; `random-init` and "
        "`raw-input` are the baselines that show what pre-training adds)"
        + (": scores of the run's encoder, not of this checkpoint." if checkpoint else "."),
        "",
        "| data | encoder | protocol | accuracy | 95% CI | train / test |",
        "|---|---|---|---|---|---|",
    ]
    for data, r in rows:
        interval = f"{r['ci_low']:.1%}–{r['ci_high']:.1%}" if "ci_low" in r and "ci_high" in r else ""
        lines.append(
            f"| {data} | {r.get('encoder', '')} | {r.get('protocol', '')} | {r['accuracy']:.1%} | {interval} "
            f"| {r.get('n_train', '')} / {r.get('n_test', '')} |"
        )
    return lines


def _data_lines(recipe: dict[str, Any], encoder: Encoder) -> list[str]:
    source = str(recipe.get("data", "unknown"))
    lines = [f"Pre-trained without labels on `{source}`."]
    if source.startswith("builtin:"):
        from selfsup.datasets import builtin_datasets

        dataset = builtin_datasets().get(source.split(":", 1)[1])
        if dataset is not None:
            lines[0] += f" {dataset.description.rstrip('.')}."
    if recipe.get("pair_data"):
        lines.append(f"Paired with `{recipe['pair_data']}`.")
    settings = encoder.preprocessing.settings if encoder.preprocessing is not None else {}
    scalars = {k: v for k, v in settings.items() if isinstance(v, (int, float, str, bool))}
    if scalars:
        lines += ["", "Read as: " + ", ".join(f"{k} {v}" for k, v in scalars.items()) + "."]
    return lines


def model_card(
    fmt: str, encoder: Encoder, meta: dict[str, Any], run: Path, checkpoint: str | Path | None = None
) -> str:
    """README.md for a Hub folder: YAML front matter (library, license, tags) then what the encoder is, how to
    load it, its recipe, data and evaluation, and what it is for (Mitchell et al. 2019, "Model Cards for Model
    Reporting"; the Hub's model card fields)."""
    recipe = meta.get("recipe") or {}
    # the recipe as set, without its empty fields and the run's local path
    shown = {k: v for k, v in recipe.items() if v is not None and v != [] and v != {} and k != "out"}
    config, modality = encoder.config, encoder.config["modality"]
    method, name = recipe.get("method", "a self-supervised method"), config.get("name", "encoder")
    transformers = fmt == "hf" and transformers_folder(encoder)
    library = "transformers" if transformers else ("timm" if fmt == "timm" else "selfsup")
    front: dict[str, Any] = {
        "library_name": library,
        "license": "other",
        "tags": sorted({"selfsup", "self-supervised", modality, str(method)} | ({"timm"} if fmt == "timm" else set())),
        "pipeline_tag": "image-feature-extraction" if modality == "image" else "feature-extraction",
    }
    if fmt == "hf" and not transformers:
        front["tags"] = sorted(set(front["tags"]) | {"model_hub_mixin", "pytorch_model_hub_mixin"})
    source = f"checkpoint `{Path(checkpoint).name}` of the run" if checkpoint else "the run"
    article = "An" if modality[0] in "aeiou" else "A"
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {name} {modality} encoder, pre-trained with {method} (selfsup)",
        "",
        f"{article} {modality} encoder that maps a sample to a {int(encoder.embed_dim)}-dimensional embedding, pre-trained "
        f"with self-supervision ({method}) by selfsup and exported from {source} "
        f"`{run.name}` as `--format {fmt}`.",
        "",
        "## How to use",
        "",
        "```python",
        usage(fmt, encoder),
        "```",
        "",
        f"Input `x`: {input_note(fmt, encoder)}",
        "",
        "## Training recipe",
        "",
        "```yaml",
        yaml.safe_dump(shown, sort_keys=False).strip() or "{}",
        "```",
        "",
        "## Training data",
        "",
        *_data_lines(recipe, encoder),
        "",
        "## Evaluation",
        "",
        *_evaluation_lines(run, checkpoint),
        "",
        "## Intended use",
        "",
        "Embeddings for downstream tasks on data like the training data: nearest-neighbour search, clustering, "
        "linear or small probes, or fine-tuning with labels.",
        "",
        "## Limitations",
        "",
        "- Trained without labels on the data above only: it carries that data's biases and gaps, and embeddings "
        "of data unlike it (another domain, sensor, language or resolution) may be poor.",
        "- Scored only as the evaluation section says; evaluate it on your own labeled data before use.",
        "- Not a classifier and not meant for decisions about people.",
        "- License `other`: set the license that the training data and your use allow before sharing.",
        "",
        f"Exported by selfsup {__version__}.",
    ]
    return "\n".join(lines) + "\n"
