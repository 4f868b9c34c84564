"""Text encoders: configs that rebuild from JSON, the shipped MiniLM's real weights (a known-answer semantic
check), padding and float ids, a local model folder, and saving through the checkpoint format."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from selfsup.checkpoint import load_encoder, save_encoder
from selfsup.encoders import build_encoder
from selfsup.encoders.text import (
    FOLDER,
    load_pretrained,
    load_tokenizer,
    minilm_folder,
    text_encoder_config,
    tokenize,
)
from selfsup.errors import SelfsupError

SMALL = {"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 24}


@pytest.fixture(scope="module")
def minilm():
    config = text_encoder_config("minilm", max_length=32)
    encoder = build_encoder(config)
    load_pretrained(encoder)
    return encoder.eval()


def _embed(encoder, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(encoder(tokenize(texts, encoder.config)), dim=1)


def test_minilm_puts_paraphrases_closest(minilm):
    queries = [
        "A man is playing a guitar.",
        "The stock market fell sharply today.",
        "How do I bake bread at home?",
        "The cat is sleeping on the sofa.",
    ]
    answers = [
        "Shares tumbled on Wall Street this afternoon.",
        "Someone strums an acoustic guitar.",
        "A kitten naps on the couch.",
        "A simple recipe for homemade bread.",
    ]
    similarity = _embed(minilm, queries) @ _embed(minilm, answers).T
    assert similarity.argmax(dim=1).tolist() == [1, 0, 3, 2]
    matched = similarity[[0, 1, 2, 3], [1, 0, 3, 2]]
    assert matched.min() > 0.45  # paraphrases
    others = similarity.clone()
    others[[0, 1, 2, 3], [1, 0, 3, 2]] = -1
    assert others.max() < 0.25  # unrelated sentences
    assert matched.min() - others.max() > 0.3


def test_random_init_minilm_does_not(minilm):
    encoder = build_encoder(minilm.config).eval()  # the same architecture, random weights (evaluate's baseline)
    loaded = dict(minilm.named_parameters())
    assert all(not torch.equal(p, loaded[n]) for n, p in encoder.named_parameters() if "LayerNorm" not in n)


def test_config_is_json_and_rebuilds(minilm):
    config = text_encoder_config("small_bert", **SMALL)
    assert config["name"] == "small_bert" and config["tokenizer"] == "minilm"
    assert config["pad_id"] == 0 and config["mask_id"] == 103 and config["vocab_size"] == 30522
    rebuilt = build_encoder(json.loads(json.dumps(config)))
    assert rebuilt.embed_dim == 32
    shapes = {k: v.shape for k, v in build_encoder(config).state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert not any(k.startswith("model.pooler") for k in minilm.state_dict())  # unused: dropped


def test_config_errors_are_one_line(tmp_path):
    for name, args, match in [
        ("minlm", {}, "unknown text encoder 'minlm'. Did you mean 'minilm'"),
        ("minilm", {"depth": 2}, "unknown encoder argument.*depth.*max_length, pooling"),
        ("minilm", {"pooling": "max"}, "pooling='max' must be one of mean, cls"),
        ("minilm", {"max_length": 1000}, "between 2 and 512"),
        ("small_bert", {"embed_dim": 30, "heads": 4}, "multiple of heads"),
        ("small_bert", {"depth": "deep"}, "depth='deep'.*must be a whole number"),
        (str(tmp_path), {}, "not a model folder"),
    ]:
        with pytest.raises(SelfsupError, match=match) as info:
            text_encoder_config(name, **args)
        assert "\n" not in str(info.value)


def test_padding_and_float_ids_do_not_change_an_embedding(minilm):
    texts = ["short one", "a much longer sentence with many more words than the first one has"]
    x = tokenize(texts, minilm.config)
    with torch.no_grad():
        together = minilm(x)
        alone = minilm(x[:1])
        as_float = minilm(x.float())  # evaluate hands encoders float32 samples
    assert torch.allclose(together[0], alone[0], atol=1e-5)
    assert torch.equal(as_float, together)


def test_cls_pooling_is_the_first_token(minilm):
    config = text_encoder_config("minilm", max_length=32, pooling="cls")
    encoder = build_encoder(config)
    encoder.load_state_dict(minilm.state_dict())
    x = tokenize(["pooling by the first token"], config)
    with torch.no_grad():
        hidden, valid = encoder.eval().forward_tokens(x)
        assert torch.equal(encoder(x), hidden[:, 0]) and valid.sum() == hidden.shape[1]


def test_a_local_model_folder_is_an_encoder(tmp_path):
    source = build_encoder(text_encoder_config("small_bert", **SMALL))
    source.model.save_pretrained(tmp_path)
    load_tokenizer("minilm").save_pretrained(tmp_path)
    config = text_encoder_config(str(tmp_path), max_length=24)
    assert config["name"] == FOLDER and config["model"] == str(tmp_path.resolve())
    encoder = build_encoder(config)
    load_pretrained(encoder)
    x = tokenize(["a folder of weights and tokenizer files"], config)
    with torch.no_grad():
        assert torch.allclose(encoder.eval()(x), source.eval()(x), atol=1e-6)


def test_a_tokenizer_with_more_tokens_than_the_model_has_rows_is_refused(tmp_path):
    build_encoder(text_encoder_config("small_bert", **SMALL)).model.save_pretrained(tmp_path)
    tokenizer = load_tokenizer("minilm").__class__.from_pretrained(minilm_folder())
    tokenizer.add_tokens(["selfsupword", "anotherselfsupword"])  # ids 30522, 30523: past the 30522 rows
    tokenizer.save_pretrained(tmp_path)
    config = text_encoder_config(str(tmp_path), max_length=24)
    assert config["vocab_size"] == 30524
    with pytest.raises(SelfsupError, match="has 30524 tokens but the model's embedding table only 30522 rows") as info:
        build_encoder(config)
    assert "\n" not in str(info.value)


def test_saved_and_loaded_through_the_checkpoint_format(tmp_path):
    encoder = build_encoder(text_encoder_config("small_bert", **SMALL)).eval()
    save_encoder(encoder, tmp_path)
    loaded = load_encoder(tmp_path)
    x = tokenize(["saved", "and loaded again"], encoder.config)
    with torch.no_grad():
        assert torch.equal(loaded(x), encoder(x))
    assert minilm_folder().is_dir()


def test_the_shipped_minilm_is_checked_against_its_digests_and_a_damaged_copy_is_refused(tmp_path):
    from selfsup.encoders.text import MINILM_SHA256, check_digests

    check_digests(minilm_folder(), MINILM_SHA256, "minilm")  # the installed copy is the published one
    for name in MINILM_SHA256:
        (tmp_path / name).write_bytes((minilm_folder() / name).read_bytes())
    vocab = (tmp_path / "vocab.txt").read_bytes()
    (tmp_path / "vocab.txt").write_bytes(vocab.replace(b"[UNK]", b"[UNX]", 1))  # one token renamed
    with pytest.raises(SelfsupError, match=r"vocab.txt' does not match its known sha256 digest"):
        check_digests(tmp_path, MINILM_SHA256, "minilm")
    (tmp_path / "config.json").unlink()
    with pytest.raises(SelfsupError, match=r"config.json' is missing"):
        check_digests(tmp_path, MINILM_SHA256, "minilm")


T5_TINY = {"embed_dim": 32, "depth": 1, "decoder_depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 24}


def test_t5_is_the_encoder_half_with_mode_and_sentinel_rows_past_the_tokenizer(tmp_path):
    from selfsup.encoders.text import extra_token_id
    from selfsup.workflows.formats import check_format, load_torchscript, write

    config = text_encoder_config("t5", **T5_TINY)
    assert config["vocab_size"] == 30522 and config["extra_tokens"][:4] == ["[NLU]", "[S2S]", "[NLG]", "<extra_id_0>"]
    assert extra_token_id(config, "[NLU]") == 30522 and extra_token_id(config, "<extra_id_99>") == 30522 + 102
    encoder = build_encoder(json.loads(json.dumps(config))).eval()
    assert type(encoder.model).__name__ == "T5EncoderModel" and encoder.embed_dim == 32
    assert encoder.model.encoder.embed_tokens.weight.shape == (30522 + 103, 32)
    assert not any("decoder" in k for k in encoder.state_dict())
    x = tokenize(["short one", "a much longer sentence with many more words than the first"], config)
    with torch.no_grad():
        hidden, valid = encoder.forward_tokens(x)
        mean = (hidden * valid.unsqueeze(-1)).sum(1) / valid.sum(1, keepdim=True)  # over the text, not the padding
        assert torch.allclose(encoder(x), mean, atol=1e-6)
        assert torch.allclose(encoder(x[:1])[0], encoder(x)[0], atol=1e-5)
        assert torch.equal(encoder(x.float()), encoder(x))
    save_encoder(encoder, tmp_path / "run")  # safetensors: no tied copies of the embeddings
    with torch.no_grad():
        assert torch.equal(load_encoder(tmp_path / "run")(x), encoder(x))
        (tmp_path / "ts").mkdir()
        write("torchscript", encoder, tmp_path / "ts", x)
        assert torch.allclose(load_torchscript(tmp_path / "ts", encoder)(x), encoder(x), atol=1e-5)
    for fmt in ("hf", "onnx"):
        with pytest.raises(SelfsupError, match="cannot hold the t5 encoder"):
            check_format(fmt, config, tmp_path)
    with pytest.raises(SelfsupError, match="decoder_depth must be at least 1"):
        text_encoder_config("t5", decoder_depth=0)
