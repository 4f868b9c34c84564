"""SLA: joint (class, rotation) labels and the aggregated prediction, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.finetune import FinetuneOptions, fine_tune, logits_of, train_classifier, validation_split
from selfsup.evaluation.label_augmentation import (
    Aggregated,
    aggregate,
    augmented_batch,
    joint_batch,
    random_transform,
    transform,
)


def test_joint_labels_are_class_times_m_plus_transformation_view_by_view() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[5.0, 6.0], [7.0, 8.0]]]])  # two 1x2x2 images
    views, joint = joint_batch(x, torch.tensor([1, 0]), classes=2, m=4)
    assert joint.tolist() == [4, 0, 5, 1, 6, 2, 7, 3]  # (y, j) -> y * 4 + j; view 0 of both, then view 1, ...
    assert views.shape == (8, 1, 2, 2) and torch.equal(views[:2], x)
    assert views[2, 0].tolist() == [[2.0, 4.0], [1.0, 3.0]]  # a quarter turn (counter-clockwise)
    assert views[4, 0].tolist() == [[4.0, 3.0], [2.0, 1.0]]  # half a turn
    assert views[6, 0].tolist() == [[3.0, 1.0], [4.0, 2.0]]  # three quarters
    # class probabilities: q_c on (c, j) for the view's own j, 0 elsewhere
    _, soft = joint_batch(x[:1], torch.tensor([[0.3, 0.7]]), classes=2, m=4)
    assert soft.shape == (4, 8)
    assert soft[1].tolist() == pytest.approx([0, 0.3, 0, 0, 0, 0.7, 0, 0])  # view j=1: indices 0*4+1 and 1*4+1
    assert torch.allclose(soft.sum(1), torch.ones(4))


def test_aggregation_averages_each_class_logit_over_its_own_transformation() -> None:
    # 2 classes, m = 2 transformations, one sample; joint index c * 2 + j
    view0 = [1.0, 9.0, 3.0, 9.0]  # t_0(x): z_(0,0) = 1, z_(1,0) = 3 (the 9s belong to j = 1: not this view's)
    view1 = [9.0, 5.0, 9.0, -1.0]  # t_1(x): z_(0,1) = 5, z_(1,1) = -1
    aggregated = aggregate(torch.tensor([[view0], [view1]]), m=2)
    assert aggregated.tolist() == [[(1 + 5) / 2, (3 - 1) / 2]]
    with pytest.raises(ValueError, match="joint logits"):
        aggregate(torch.zeros(3, 1, 4), m=2)


def test_fine_tuning_with_sla_trains_a_joint_head_and_predicts_the_aggregation(digits, one_thread) -> None:
    from selfsup.modalities.image import encoder_config

    torch.manual_seed(0)
    encoder = build_encoder(encoder_config("small_cnn", digits, 16))
    x, y = digits.train.float_samples()[:120], digits.train.y[:120]
    options = FinetuneOptions(epochs=2, label_augmentation="rotation", backbone_lr=1e-3, head_lr=1e-2)
    model, details = train_classifier(encoder, x, y, y.numpy(), 10, options=options, seed=0)
    assert isinstance(model, Aggregated) and model[1].out_features == 40  # 10 classes x 4 rotations
    assert details["label_augmentation"] == "rotation"
    got = logits_of(model, x[:5])
    with torch.inference_mode():
        joint = torch.stack([model.joint(transform(x[:5], j)) for j in range(4)])
    by_hand = torch.stack([joint[j].view(5, 10, 4)[:, :, j] for j in range(4)]).mean(0)
    assert got.shape == (5, 10) and torch.allclose(got, by_hand, atol=1e-5)
    one_epoch = FinetuneOptions(epochs=1, label_augmentation="rotation")
    pred, _ = fine_tune(encoder, x, y.numpy(), digits.test.float_samples()[:50], options=one_epoch)
    assert pred.shape == (50,) and set(np.unique(pred)) <= set(range(10))


def test_sla_refuses_other_modalities_unknown_names_and_non_square_images(digits) -> None:
    class TableEncoder(torch.nn.Sequential):  # no config: not an image encoder
        embed_dim = 8

    with pytest.raises(SelfsupError, match="unknown label augmentation 'flip'"):
        FinetuneOptions(label_augmentation="flip")
    x = torch.randn(40, 4)
    y = torch.arange(40) % 2
    options = FinetuneOptions(epochs=1, label_augmentation="rotation")
    with pytest.raises(SelfsupError, match="rotates images"):
        train_classifier(TableEncoder(torch.nn.Linear(4, 8)), x, y, y.numpy(), 2, options=options)
    from selfsup.modalities.image import encoder_config

    encoder = build_encoder(encoder_config("small_cnn", digits, 16))
    with pytest.raises(SelfsupError, match="square images"):
        train_classifier(encoder, torch.zeros(40, 1, 16, 12), y, y.numpy(), 2, options=options)


def test_evaluate_refuses_sla_before_any_probe_runs(digits) -> None:
    """Without the finetune protocol, or on a table, SLA is refused before anything is embedded or probed."""
    from selfsup.datasets import load_builtin
    from selfsup.evaluation.evaluate import evaluate
    from selfsup.evaluation.options import EvaluationOptions
    from selfsup.modalities import get_modality
    from selfsup.modalities.image import encoder_config

    sla = FinetuneOptions(epochs=1, label_augmentation="rotation")
    image_encoder = build_encoder(encoder_config("small_cnn", digits, 16))
    with pytest.raises(SelfsupError, match="add finetune to --protocol"):
        evaluate(image_encoder, digits, EvaluationOptions(protocols=("knn",), finetune=sla, progress=False))
    table = load_builtin("iris")
    table_encoder = build_encoder(get_modality("tabular").encoder_config("mlp", table, None, None))
    with pytest.raises(SelfsupError, match="rotates images, but the encoder reads tabular data"):
        evaluate(table_encoder, table, EvaluationOptions(protocols=("finetune",), finetune=sla, progress=False))


# DA, SLA's control: the same rotations as plain augmentation with the ordinary labels

TURNS = [  # the hand-written quarter turns (counter-clockwise) of [[1, 2], [3, 4]]
    [[1.0, 2.0], [3.0, 4.0]],
    [[2.0, 4.0], [1.0, 3.0]],
    [[4.0, 3.0], [2.0, 1.0]],
    [[3.0, 1.0], [4.0, 2.0]],
]


def test_random_rotation_draws_each_of_the_four_turns_and_keeps_the_labels() -> None:
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]).repeat(16, 1, 1, 1)  # 16 copies of one 1x2x2 image
    labels = torch.arange(16)
    turned, drawn = random_transform(x, torch.Generator().manual_seed(0))
    assert sorted(set(drawn.tolist())) == [0, 1, 2, 3]  # each turn is drawn (16 draws, this generator)
    for image, j in zip(turned, drawn.tolist()):
        assert image[0].tolist() == TURNS[j]
    inputs, targets = augmented_batch("rotation", x, labels, torch.Generator().manual_seed(0))
    assert torch.equal(inputs, turned) and torch.equal(targets, labels)  # same draws; labels untouched
    assert torch.equal(x[:, 0], torch.tensor(TURNS[0]).expand(16, 2, 2))  # the input is not turned in place
    every, repeated = augmented_batch("all-rotations", x[:2], labels[:2], torch.Generator())
    assert [v[0].tolist() for v in every[::2]] == TURNS and repeated.tolist() == [0, 1] * 4  # view by view


def test_rotation_augmentation_is_refused_by_name_with_sla_on_tables_and_non_square_images(digits) -> None:
    from selfsup.modalities.image import encoder_config

    with pytest.raises(SelfsupError, match="unknown fine-tuning augmentation 'flip'; known: rotation, all-rotations"):
        FinetuneOptions(augment="flip")
    with pytest.raises(SelfsupError, match="SLA already trains on every rotation"):
        FinetuneOptions(augment="rotation", label_augmentation="rotation")
    y = torch.arange(40) % 2
    options = FinetuneOptions(epochs=1, augment="rotation")
    table_encoder = torch.nn.Sequential(torch.nn.Linear(4, 8))
    table_encoder.embed_dim = 8  # type: ignore[assignment]
    with pytest.raises(SelfsupError, match="^augmentation 'rotation' rotates images"):
        train_classifier(table_encoder, torch.randn(40, 4), y, y.numpy(), 2, options=options)  # type: ignore[arg-type]
    encoder = build_encoder(encoder_config("small_cnn", digits, 16))
    with pytest.raises(SelfsupError, match="^augmentation 'rotation' needs square images"):
        train_classifier(encoder, torch.zeros(40, 1, 16, 12), y, y.numpy(), 2, options=options)


def test_cli_refuses_rotation_augmentation_without_finetune_or_on_a_table(iris_run, capsys) -> None:
    from selfsup.cli import main

    base = ["evaluate", "--encoder", str(iris_run), "--data", "builtin:iris", "--finetune-augment", "rotation"]
    assert main([*base, "--protocol", "knn"]) == 2
    assert "--finetune-augment is an option of the finetune protocol" in capsys.readouterr().err
    assert main([*base, "--protocol", "finetune"]) == 2
    err = capsys.readouterr().err.strip()
    assert "augmentation 'rotation' rotates images, but the encoder reads tabular data" in err
    assert len(err.splitlines()) == 1


def test_fine_tuning_with_rotation_augmentation_turns_training_images_only(digits, one_thread) -> None:
    from selfsup.modalities.image import encoder_config

    torch.manual_seed(0)
    encoder = build_encoder(encoder_config("small_cnn", digits, 16))
    x, y = digits.train.float_samples()[:120], digits.train.y[:120]
    fits = {}
    for augment in (None, "rotation", "all-rotations"):
        options = FinetuneOptions(epochs=1, augment=augment, backbone_lr=1e-3, head_lr=1e-2)
        model, details = train_classifier(encoder, x, y, y.numpy(), 10, options=options, seed=0)
        assert not isinstance(model, Aggregated) and model[1].out_features == 10  # ordinary labels, ordinary head
        assert details["augment"] == augment and details["epochs_run"] == 1
        fits[augment] = (model, details)
    plain, turned = fits[None][0], fits["rotation"][0]
    assert not torch.allclose(plain[1].weight, turned[1].weight)  # the augmentation changed what was learnt
    # validation scores the unturned images: the plain model's loss there, recomputed by hand
    _, val_idx = validation_split(y.numpy(), 0.1, 0)
    by_hand = torch.nn.functional.cross_entropy(logits_of(turned, x[val_idx]), y[val_idx])
    assert float(by_hand) == pytest.approx(fits["rotation"][1]["val_loss"], rel=1e-5)
    pred, _ = fine_tune(
        encoder, x, y.numpy(), digits.test.float_samples()[:50], options=FinetuneOptions(epochs=1, augment="rotation")
    )
    assert pred.shape == (50,) and set(np.unique(pred)) <= set(range(10))
