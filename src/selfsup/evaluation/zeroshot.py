"""Zero-shot classification with label prompts (Radford et al. 2021, CLIP, sections 3.1.2 and 3.1.4).

Each class name is written into one or more templates (e.g. ``"the word {}"``), the prompts are embedded by the
text side of a paired run, and each test sample goes to the class whose prompt embedding is nearest by cosine
similarity. With several templates a class is the mean of its prompts' L2-normalised embeddings (CLIP's prompt
ensembling, done in embedding space). Default templates: for images, the 7 that CLIP's authors recommend for
ImageNet (their notebook's selection of the 80); for other modalities ``"{}"``, the bare class name (no ensemble
is established for audio, text or tables). No label of the data is used: the training split is not read.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selfsup.checkpoint import META, load_encoder, read_meta
from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.embed import embed
from selfsup.evaluation.fewshot import normalise

DEFAULT_PROMPT = "{}"
# CLIP's recommended subset of its 80 ImageNet templates (Radford et al. 2021, the Prompt_Engineering notebook)
TEMPLATE_SET = "imagenet"  # --prompt imagenet: the templates below
IMAGE_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


def partner_path(encoder_path: str | Path, modality: str | None = None) -> Path | None:
    """The other side of a paired run's side export (its ``paired_with``); None for an ordinary encoder, or
    when the partner is not of ``modality``."""
    folder = Path(encoder_path)
    folder = folder if folder.is_dir() else folder.parent
    partner = read_meta(folder).get("paired_with")
    if not partner:
        return None
    path = (folder / partner).resolve()
    if not (path / META).is_file():
        warnings.warn(
            f"'{folder}' was trained with '{path}', which is gone: no zero-shot rows; pass --partner.", stacklevel=2
        )
        return None
    return path if modality is None or read_meta(path)["modality"] == modality else None


def load_partner(path: str | Path) -> Encoder:
    """The text encoder that embeds the prompts; another modality is refused."""
    partner = load_encoder(path)
    if partner.config["modality"] != "text":
        raise SelfsupError(
            f"zero-shot classification embeds label prompts with a text encoder, but '{path}' is a "
            f"{partner.config['modality']} encoder; pair the encoder with text to use it."
        )
    return partner


def class_prompts(classes: list[str], template: str = DEFAULT_PROMPT) -> list[str]:
    """Each class name written into ``template`` at its ``{}``."""
    if template.count("{}") != 1:
        raise SelfsupError(
            f"--prompt must hold '{{}}' once, where the class name goes (e.g. 'the word {{}}'); got {template!r}."
        )
    return [template.replace("{}", name.replace("_", " ")) for name in classes]


def templates_of(prompt: str | Sequence[str] | None, modality: str | None = None) -> tuple[str, ...]:
    """The templates to use: ``prompt`` (one or several; ``"imagenet"`` names CLIP's 7 ImageNet templates), or
    ``"{}"`` when None (the bare class name, whatever ``modality``: an ensemble is asked for, never a silent
    default); each must hold ``{}`` once."""
    if prompt is None:
        templates: tuple[str, ...] = (DEFAULT_PROMPT,)
    else:
        templates = (prompt,) if isinstance(prompt, str) else tuple(prompt)
    templates = tuple(t for name in templates for t in (IMAGE_TEMPLATES if name == TEMPLATE_SET else (name,)))
    if not templates:
        raise SelfsupError("--prompt needs at least one template, '{}' standing for the class name.")
    for template in templates:
        class_prompts(["class"], template)
    return templates


def class_embeddings(text_encoder: Encoder, classes: list[str], templates: Sequence[str]) -> np.ndarray:
    """``(classes, D)``: per class, the mean of its prompts' L2-normalised embeddings over ``templates`` (CLIP's
    prompt ensembling; ``nearest_prompt`` normalises the mean again)."""
    per_template = [normalise(prompt_embeddings(text_encoder, class_prompts(classes, t))) for t in templates]
    return np.mean(per_template, axis=0)


def nearest_prompt(test_emb: np.ndarray, prompt_emb: np.ndarray) -> np.ndarray:
    """For each test embedding, the index of the prompt embedding with the highest cosine similarity (the
    prompts are class prototypes, as the class centroids are in few-shot)."""
    return (normalise(test_emb) @ normalise(prompt_emb).T).argmax(1)


def prompt_embeddings(text_encoder: Encoder, prompts: list[str]) -> np.ndarray:
    """The prompts embedded by ``text_encoder`` (tokenised its way)."""
    from selfsup.encoders.text import tokenize

    return embed(text_encoder, tokenize(prompts, text_encoder.config))


def zero_shot(
    test_emb: np.ndarray, text_encoder: Encoder, classes: list[str], template: str | Sequence[str] = DEFAULT_PROMPT
) -> tuple[np.ndarray, dict]:
    """Predicted class indices for the test embeddings (one template, or several ensembled), and the prompts
    used: ``prompt`` the templates joined by `` | ``, ``templates`` them, ``prompts`` every prompt, template by
    template."""
    templates = templates_of(template)
    pred = nearest_prompt(test_emb, class_embeddings(text_encoder, classes, templates))
    prompts = [p for t in templates for p in class_prompts(classes, t)]
    return pred, {"prompt": " | ".join(templates), "templates": list(templates), "prompts": prompts}
