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
from selfsup.methods.mlm import IGNORE, mask_tokens, word_starts

SMALL = {"embed_dim": 64, "depth": 2, "heads": 2, "mlp_dim": 128, "max_length": 32}
PAD, CLS, SEP, MASK = 0, 101, 102, 103


@pytest.fixture(scope="module")
def snippets() -> list[str]:
    """16 sentences of prose from the dataset descriptions installed with scikit-learn."""
    folder = Path(sklearn.__file__).parent / "datasets" / "descr"
    text = re.sub(r"\s+", " ", " ".join((folder / f"{name}.rst").read_text() for name in (
        "iris", "breast_cancer", "wine_data", "digits", "twenty_newsgroups", "california_housing", "covtype")))
    sentences = [s for s in re.split(r"(?<=[a-z])\. (?=[A-Z])", text)
                 if 8 <= len(s.split()) <= 40 and not re.search(r"[:=|*`_\[\]]", s)]
    assert len(sentences) >= 16
    return sentences[:16]


def _batch(generator: torch.Generator, rows: int = 64, length: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Random BERT-like rows: [CLS] words [SEP] then padding; returns the ids and which positions may be masked."""
    ids = torch.randint(1000, 30000, (rows, length), generator=generator)
    lengths = torch.randint(3, length + 1, (rows,), generator=generator)
    position = torch.arange(length).expand(rows, -1)
    ids[:, 0] = CLS
    ids[position == (lengths - 1).unsqueeze(1)] = SEP
    ids[position >= lengths.unsqueeze(1)] = PAD
    return ids, ~torch.isin(ids, torch.tensor([PAD, CLS, SEP, MASK]))


def test_masking_chooses_15_percent_split_80_10_10_and_never_special_tokens():
    generator = torch.Generator().manual_seed(0)
    replacements = torch.arange(1000, 30522)
    chosen_total = maskable_total = masked = swapped = kept = 0
    for _ in range(20):
        ids, maskable = _batch(generator)
        inputs, targets = mask_tokens(ids, maskable, MASK, replacements, 0.15, generator=generator)
        chosen = targets != IGNORE
        assert not (chosen & ~maskable).any()  # never [CLS], [SEP] or padding
        assert torch.equal(inputs[~chosen], ids[~chosen]) and torch.equal(targets[chosen], ids[chosen])
        assert (targets[~chosen] == IGNORE).all()
        maskable_total += int(maskable.sum())
        chosen_total += int(chosen.sum())
        masked += int((inputs[chosen] == MASK).sum())
        swapped += int(((inputs != ids) & (inputs != MASK) & chosen).sum())
        kept += int((inputs[chosen] == ids[chosen]).sum())
        assert torch.isin(inputs[chosen & (inputs != MASK)], replacements).all()  # a random token is a word piece
    assert maskable_total > 50_000
    # binomial standard deviations: sqrt(0.15 * 0.85 / 50k) = 0.0016; sqrt(0.1 * 0.9 / 7.5k) = 0.0035
    assert abs(chosen_total / maskable_total - 0.15) < 0.008
    assert abs(masked / chosen_total - 0.8) < 0.02
    assert abs(swapped / chosen_total - 0.1) < 0.015
    assert abs(kept / chosen_total - 0.1) < 0.015  # a swap drawing the same token counts here: 1 in 29k


def test_whole_word_masking_chooses_every_piece_of_a_word():
    tokenizer = load_tokenizer("minilm")
    starts_table = word_starts(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
    assert starts_table[tokenizer.convert_tokens_to_ids("the")] and not starts_table[
        tokenizer.convert_tokens_to_ids("##s")]
    config = text_encoder_config("minilm", max_length=64)
    ids = tokenize(["unbelievably overwrought melodramatics everywhere", "tokenization splits words"] * 32, config)
    maskable = ~torch.isin(ids, torch.tensor(config["special_ids"]))
    starts = starts_table[ids]
    generator = torch.Generator().manual_seed(1)
    _, targets = mask_tokens(ids, maskable, MASK, torch.arange(1000, 30522), 0.3, starts, generator)
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
