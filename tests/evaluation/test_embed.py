from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.data import ArrayDataset
from selfsup.evaluation.embed import embed


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))


def test_tensor_input_matches_direct_forward_and_restores_train_mode():
    enc = _encoder().train()
    x = torch.randn(37, 3, 4)
    out = embed(enc, x, batch_size=8)
    assert out.dtype == np.float32 and out.shape == (37, 5)
    with torch.no_grad():
        np.testing.assert_allclose(out, enc(x).numpy(), rtol=1e-5, atol=1e-6)
    assert enc.training


def test_eval_mode_is_used_during_embedding_and_mode_restored():
    torch.manual_seed(1)
    enc = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(p=0.9)).train()
    x = torch.randn(64, 4)
    a, b = embed(enc, x), embed(enc, x)
    with torch.no_grad():
        expected = enc[0](x).numpy()  # dropout is the identity in eval mode
    np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a, b)
    assert enc.training and enc[1].training
    enc.eval()
    embed(enc, x)
    assert not enc.training


def test_dataset_input_matches_tensor_input():
    enc = _encoder()
    raw = torch.randint(0, 256, (20, 3, 4), dtype=torch.uint8)
    ds = ArrayDataset(raw, torch.zeros(20, dtype=torch.long), [str(i) for i in range(20)], ["a"])
    from_ds = embed(enc, ds, batch_size=6, progress=True)
    from_tensor = embed(enc, ds.float_samples(), batch_size=50)
    np.testing.assert_allclose(from_ds, from_tensor, rtol=1e-6)
    assert from_ds.shape == (20, 5)


def test_token_ids_are_embedded_shortest_first_and_returned_in_order():
    from selfsup.encoders import build_encoder
    from selfsup.encoders.text import text_encoder_config, tokenize

    config = text_encoder_config("small_bert", embed_dim=32, depth=1, heads=2, mlp_dim=64, max_length=40)
    torch.manual_seed(0)
    encoder = build_encoder(config).eval()
    texts = [" ".join(["word"] * n) for n in (30, 1, 12, 3, 25, 2, 7, 30, 1, 5, 18, 4)]
    x = tokenize(texts, config)
    widths: list[int] = []
    encoder.model.register_forward_pre_hook(
        lambda _, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    out = embed(encoder, x, batch_size=4)
    real = (x != config["pad_id"]).sum(dim=1)
    assert widths == sorted(real.tolist())[3::4]  # each batch cut after its own longest text
    with torch.no_grad():  # each text alone (no padding at all): the same embedding, in the caller's order
        alone = torch.cat([encoder(x[i : i + 1]) for i in range(len(x))]).numpy()
    np.testing.assert_allclose(out, alone, rtol=1e-4, atol=1e-5)
    widths.clear()
    floats = embed(encoder, x.float(), batch_size=4)  # float ids, as float_samples() gives them: the same
    assert widths == sorted(real.tolist())[3::4]
    np.testing.assert_allclose(floats, out, rtol=1e-4, atol=1e-5)


def test_batch_norms_after_convolutions_are_folded_into_a_copy_with_the_same_embeddings() -> None:
    from torch import nn

    from selfsup.encoders.small_cnn import SmallCNN
    from selfsup.evaluation.embed import folded_batch_norms

    torch.manual_seed(0)
    cnn = SmallCNN(3, width=8)
    for norm in (m for m in cnn.modules() if isinstance(m, nn.BatchNorm2d)):  # statistics far from the identity
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(6, 3, 16, 16)
    with torch.no_grad():
        expected = cnn.eval()(x)
    folded = folded_batch_norms(cnn)
    assert folded is not cnn and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in cnn.modules()) == 6  # the encoder itself is untouched
    np.testing.assert_allclose(embed(cnn, x), expected.numpy(), atol=1e-5)
    linear = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    assert folded_batch_norms(linear) is linear  # nothing to fold: no copy
    transposed = nn.Sequential(nn.ConvTranspose2d(4, 6, 3), nn.BatchNorm2d(6)).eval()
    assert folded_batch_norms(transposed) is transposed  # another kernel layout: left as it is


def test_ragged_series_are_embedded_shortest_first_in_trimmed_batches_with_the_same_embeddings() -> None:
    from selfsup.encoders.series import build, series_encoder_config
    from selfsup.evaluation.embed import _by_length, _trimmed

    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(12, 2, 64)), dtype=torch.float32)
    for i, length in enumerate(rng.integers(5, 40, size=12)):
        x[i, :, length:] = float("nan")  # every series ends well before the longest length the tensor holds
    x[3, 0, 2] = float("nan")  # a gap inside a series stays as it is
    for name in ("dilated_conv", "patch_transformer"):
        torch.manual_seed(0)
        encoder = build(series_encoder_config(name, 2, 64, [0.0, 0.0], [1.0, 1.0])).eval()
        with torch.no_grad():
            one_by_one = torch.cat([encoder(x[i : i + 1]) for i in range(len(x))]).numpy()
        np.testing.assert_allclose(embed(encoder, x, batch_size=4), one_by_one, atol=1e-5)
        order = _by_length(encoder, x)
        assert order is not None and _trimmed(encoder, x[order[:4]]).shape[-1] < 40  # the four shortest: short


def _lazy_digits(n: int = 90):
    """A LazyDataset over the built-in digits (its samples decoded one at a time from a tensor, as a reader's
    ``decode`` does from files), and the same samples in memory."""
    import functools

    from selfsup.data import LazyDataset
    from selfsup.datasets import load_builtin

    data = load_builtin("digits").train.subset(list(range(n)))
    lazy = LazyDataset(
        functools.partial(torch.select, data.x, 0),  # picklable: DataLoader workers decode
        list(range(n)),
        data.y,
        data.ids,
        data.sample_shape,
        data.stored_dtype,
        "digits",
        data.classes,
    )
    return lazy, data


def test_blocks_of_a_lazy_dataset_decoded_by_workers_equal_the_in_memory_embeddings() -> None:
    from selfsup.encoders import build_encoder
    from selfsup.encoders.image import image_encoder_config
    from selfsup.evaluation.embed import embed_chunks

    lazy, data = _lazy_digits()
    torch.manual_seed(0)
    encoder = build_encoder(image_encoder_config("small_cnn", 1, 8, [0.3], [0.4]))
    whole = embed(encoder, data.float_samples(), batch_size=16)
    blocks = list(embed_chunks(encoder, lazy, chunk_rows=25, batch_size=16, workers=2))
    assert [len(b) for b in blocks] == [25, 25, 25, 15]  # batches of 16 regrouped into blocks of 25
    np.testing.assert_allclose(np.concatenate(blocks), whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embed(encoder, lazy, batch_size=16), whole, rtol=1e-5, atol=1e-6)  # default workers
    for in_memory in (data.float_samples(), data):  # a tensor, or uint8 samples made float a block at a time
        tensor_blocks = list(embed_chunks(encoder, in_memory, chunk_rows=40, batch_size=16))
        assert [len(b) for b in tensor_blocks] == [40, 40, 10]
        np.testing.assert_allclose(np.concatenate(tensor_blocks), whole, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_embeds_close_to_float32_and_bad_precision_is_refused() -> None:
    from selfsup.errors import SelfsupError

    _, data = _lazy_digits(64)
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32))
    x = data.float_samples()
    full, half = embed(enc, x), embed(enc, x, precision="bf16-mixed")
    assert half.dtype == np.float32 and not np.array_equal(half, full)  # it did run in bfloat16
    np.testing.assert_allclose(half, full, rtol=0.05, atol=0.05)
    with pytest.raises(SelfsupError, match="precision"):
        embed(enc, x, precision="8-bit")


@pytest.mark.gpu
def test_embedding_on_a_gpu_matches_the_cpu_and_leaves_the_encoder_where_it_was() -> None:
    from selfsup.distributed import inference_device
    from selfsup.encoders import build_encoder
    from selfsup.encoders.image import image_encoder_config

    _, data = _lazy_digits(64)
    torch.manual_seed(0)
    encoder = build_encoder(image_encoder_config("small_cnn", 1, 8, [0.3], [0.4]))
    x = data.float_samples()
    on_cpu = embed(encoder, x)
    on_gpu = embed(encoder, x, device=inference_device("gpu", 1))
    assert next(encoder.parameters()).device.type == "cpu"  # a copy embedded on the GPU
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-2, atol=1e-2)  # TF32 convolutions
    half = embed(encoder, x, device="cuda", precision="bf16-mixed")
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, on_cpu, rtol=0.1, atol=0.1)
