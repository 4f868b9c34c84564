"""mlm and simcse: BERT's masking by its numbers, whole-word masking, the masked-LM head, and a few steps of
each on real English prose (scikit-learn's dataset descriptions) that lower the loss and move the encoder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sklearn
import torch

from selfsup.encoders import build_encoder
from selfsup.encoders.text import load_pretrained, load_tokenizer, text_encoder_config, tokenize
from selfsup.errors import SelfsupError
from selfsup.methods import build_method
from selfsup.methods.mlm import IGNORE, word_starts

SMALL = {"embed_dim": 64, "depth": 2, "heads": 2, "mlp_dim": 128, "max_length": 32}


@pytest.fixture(scope="module")
def snippets() -> list[str]:
    """16 sentences of prose from the dataset descriptions installed with scikit-learn."""
    folder = Path(sklearn.__file__).parent / "datasets" / "descr"
    text = re.sub(
        r"\s+",
        " ",
        " ".join(
            (folder / f"{name}.rst").read_text()
            for name in (
                "iris",
                "breast_cancer",
                "wine_data",
                "digits",
                "twenty_newsgroups",
                "california_housing",
                "covtype",
            )
        ),
    )
    sentences = [
        s
        for s in re.split(r"(?<=[a-z])\. (?=[A-Z])", text)
        if 8 <= len(s.split()) <= 40 and not re.search(r"[:=|*`_\[\]]", s)
    ]
    assert len(sentences) >= 16
    return sentences[:16]


@pytest.fixture(scope="module")
def prose_ids() -> tuple[torch.Tensor, dict]:
    """Every usable sentence of the scikit-learn dataset descriptions as MiniLM token ids, padded to 64."""
    folder = Path(sklearn.__file__).parent / "datasets" / "descr"
    text = re.sub(r"\s+", " ", " ".join(path.read_text() for path in sorted(folder.glob("*.rst"))))
    sentences = [s for s in re.split(r"(?<=[a-z])\. (?=[A-Z])", text) if 4 <= len(s.split()) <= 80]
    config = text_encoder_config("small_bert", **(SMALL | {"max_length": 64}))
    return tokenize(sentences, config), config


def test_mlm_masks_15_percent_of_the_text_80_10_10_never_special_tokens_or_padding(prose_ids):
    ids, config = prose_ids
    method = build_method("mlm", build_encoder(config), {})
    tokenizer = load_tokenizer("minilm")
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids + [tokenizer.pad_token_id]))
    assert (ids[:, 0] == tokenizer.cls_token_id).all() and (ids == tokenizer.pad_token_id).float().mean() > 0.2
    text = ~special
    generator = torch.Generator().manual_seed(0)
    chosen_total = masked = swapped = kept = 0
    draws = max(1, 60_000 // int(text.sum()))
    for _ in range(draws):
        inputs, targets = method.mask(ids, generator)
        chosen = targets != IGNORE
        assert not (chosen & special).any()  # never [CLS], [SEP], [PAD] (or [UNK], [MASK])
        assert torch.equal(inputs[~chosen], ids[~chosen]) and torch.equal(targets[chosen], ids[chosen])
        chosen_total += int(chosen.sum())
        masked += int((inputs[chosen] == tokenizer.mask_token_id).sum())
        swapped += int(((inputs != ids) & (inputs != tokenizer.mask_token_id) & chosen).sum())
        kept += int((inputs[chosen] == ids[chosen]).sum())
        random = inputs[chosen & (inputs != ids) & (inputs != tokenizer.mask_token_id)]
        assert not torch.isin(random, torch.tensor(tokenizer.all_special_ids)).any()  # a random token is a word piece
    total = draws * int(text.sum())
    assert total > 50_000
    # binomial standard deviations: sqrt(0.15 * 0.85 / 50k) = 0.0016; sqrt(0.1 * 0.9 / 7.5k) = 0.0035
    assert abs(chosen_total / total - 0.15) < 0.008
    assert abs(masked / chosen_total - 0.8) < 0.02
    assert abs(swapped / chosen_total - 0.1) < 0.015
    assert abs(kept / chosen_total - 0.1) < 0.015  # a swap drawing the same token counts here: 1 in 30k


def test_whole_word_masking_chooses_every_piece_of_a_word():
    tokenizer = load_tokenizer("minilm")
    starts_table = word_starts(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
    assert (
        starts_table[tokenizer.convert_tokens_to_ids("the")]
        and not starts_table[tokenizer.convert_tokens_to_ids("##s")]
    )
    config = text_encoder_config("small_bert", **(SMALL | {"max_length": 64}))
    method = build_method("mlm", build_encoder(config), {"whole_word": True, "mask_rate": 0.3})
    ids = tokenize(["unbelievably overwrought melodramatics everywhere", "tokenization splits words"] * 32, config)
    maskable = ~torch.isin(ids, torch.tensor(config["special_ids"] + [config["pad_id"]]))
    starts = starts_table[ids]
    _, targets = method.mask(ids, torch.Generator().manual_seed(1))
    chosen = targets != IGNORE
    word = torch.cumsum(starts | ~maskable, dim=1)
    some = 0
    for row in range(len(ids)):
        for w in word[row][maskable[row]].unique():
            pieces = chosen[row][(word[row] == w) & maskable[row]]
            assert pieces.all() or not pieces.any()  # a word is chosen whole or not at all
            some += int(pieces.all() and len(pieces) > 1)
    assert some > 0 and not (chosen & ~maskable).any()


def test_word_starts_of_other_tokenizers():
    assert word_starts(["<s>", "Ġthe", "re", "Ġcat"]).tolist() == [False, True, False, True]
    assert word_starts(["▁the", "re"]).tolist() == [True, False]
    with pytest.raises(SelfsupError, match="whole_word"):
        word_starts(["a", "b"])


def _steps(method, x: torch.Tensor, views: int, steps: int, lr: float) -> list[float]:
    """``steps`` AdamW steps on the batch ``x``; the RNG is reseeded every step, so masks and dropout repeat."""
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)
        out = method.training_loss([x] * views)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert out.embedding.shape == (len(x), method.encoder.embed_dim) and torch.isfinite(out.embedding).all()
    return losses


@pytest.mark.slow
def test_mlm_continues_minilm_on_real_prose(snippets, one_thread):
    config = text_encoder_config("minilm", max_length=32)
    encoder = build_encoder(config)
    load_pretrained(encoder)
    method = build_method("mlm", encoder, {})
    assert method.head.predictions.decoder.weight is encoder.model.get_input_embeddings().weight  # tied
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    losses = _steps(method, tokenize(snippets[:8], config), 1, steps=5, lr=1e-4)
    assert losses[-1] < 0.6 * losses[0]
    changed = [k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "model.embeddings.word_embeddings.weight" in changed and len(changed) > 0.9 * len(before)


def test_mlm_reads_the_head_of_a_folder_that_has_one(tmp_path):
    from transformers import AutoModelForMaskedLM

    small = build_encoder(text_encoder_config("small_bert", **SMALL))
    source = AutoModelForMaskedLM.from_config(small.model.config)
    source.save_pretrained(tmp_path)
    load_tokenizer("minilm").save_pretrained(tmp_path)
    encoder = build_encoder(text_encoder_config(str(tmp_path), max_length=32))
    load_pretrained(encoder)
    method = build_method("mlm", encoder, {"whole_word": True})
    saved = source.cls.predictions.transform.dense.weight
    assert torch.equal(method.head.predictions.transform.dense.weight, saved)
    assert method.head.predictions.decoder.weight is encoder.model.get_input_embeddings().weight


def test_simcse_trains_a_small_bert_on_real_prose(snippets, one_thread):
    config = text_encoder_config("small_bert", **SMALL)
    torch.manual_seed(0)
    encoder = build_encoder(config)
    method = build_method("simcse", encoder, {})
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    losses = _steps(method, tokenize(snippets, config), 2, steps=6, lr=1e-3)
    assert losses[0] > 0.1 and losses[-1] < 0.5 * losses[0]
    assert sum(not torch.equal(v, before[k]) for k, v in encoder.state_dict().items()) > 0.9 * len(before)


def test_text_methods_refuse_other_encoders(small_encoder_config):
    with pytest.raises(SelfsupError, match="mlm needs a text encoder"):
        build_method("mlm", build_encoder(small_encoder_config))
    for name in ("mlm", "simcse"):
        from selfsup.methods import method_class

        assert method_class(name).modalities == ("text",)
