"""SLA, self-supervised label augmentation (Lee et al. 2020, "Self-supervised Label Augmentation via Input
Transformations"), as a supervised fine-tuning option.

With ``N`` classes and ``M`` input transformations ``t_0 .. t_{M-1}`` (``t_0`` the identity), the head predicts one of
``N * M`` *joint* labels: sample ``x`` of class ``y`` seen through ``t_j`` has label ``(y, j)``, index ``y * M + j``,
and every batch is trained on all ``M`` views with plain cross-entropy (one task over the joint distribution, not a
classification loss plus a separate transformation loss). At test time the prediction is SLA's *aggregation*:
``z(x)_c = (1/M) sum_j z_{(c, j)}(t_j(x))``, the class logits averaged over the transformations.

The transformations are the four rotations by multiples of 90 degrees (the paper's choice for images); they need
square images, and other modalities are refused. Simplification: SLA's self-distillation head (SLA+SD, one N-way head
trained towards the aggregated prediction for a single forward pass) is not trained; inference runs the M views.

SLA's own control is **DA**: the same transformations as plain data augmentation, with the ordinary class label
(Lee et al. 2020, Table 1), also a fine-tuning option here (``augment``): ``"rotation"`` turns each training image by
a random multiple of 90 degrees each time it is drawn (as many views per step as without augmentation), and
``"all-rotations"`` trains every batch on all four turns of each image (SLA's views per step, SLA's compute). The test
prediction is the plain one, on the unturned image.
"""

from __future__ import annotations

import torch
from torch import nn

from selfsup.errors import SelfsupError

TRANSFORMATIONS = {"rotation": 4}  # name -> number of transformations M (identity included)


def check(name: str | None) -> int:
    """M for the option ``name`` (1 without label augmentation); a one-line error for an unknown name."""
    if name is None:
        return 1
    if name not in TRANSFORMATIONS:
        raise SelfsupError(
            f"unknown label augmentation '{name}'; known: {', '.join(TRANSFORMATIONS)} (SLA's four image rotations)."
        )
    return TRANSFORMATIONS[name]


def check_input(name: str, modality: str, x: torch.Tensor, option: str = "label augmentation") -> None:
    """Refuse data the transformations do not apply to: rotations need square images ``(N, C, H, H)``. ``option``
    names the option in the message (SLA's ``label augmentation`` or DA's ``augmentation``)."""
    if modality != "image" or x.ndim != 4:
        raise SelfsupError(
            f"{option} '{name}' rotates images, but the encoder reads {modality} data; fine-tune without it."
        )
    if x.shape[-1] != x.shape[-2]:
        raise SelfsupError(
            f"{option} '{name}' needs square images (a rotation keeps their shape), got "
            f"{x.shape[-2]}x{x.shape[-1]}; set --image-size."
        )


def transform(x: torch.Tensor, j: int) -> torch.Tensor:
    """``t_j(x)``: ``x`` (``(N, C, H, H)``) rotated by ``j`` quarter turns."""
    return torch.rot90(x, j, dims=(-2, -1))


def joint_batch(x: torch.Tensor, targets: torch.Tensor, classes: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``M`` views of a batch, stacked view by view (``t_0(x), t_1(x), ...``), and their joint targets: class
    index ``y * M + j``, or, for class probabilities ``q`` ``(N, classes)``, probability ``q_c`` on ``(c, j)``."""
    views = torch.cat([transform(x, j) for j in range(m)])
    if targets.ndim == 1:
        joint = torch.cat([targets * m + j for j in range(m)])
    else:
        joint = torch.zeros(m * len(targets), classes, m, dtype=targets.dtype)
        for j in range(m):
            joint[j * len(targets) : (j + 1) * len(targets), :, j] = targets
        joint = joint.flatten(1)
    return views, joint


def aggregate(joint_logits: torch.Tensor, m: int) -> torch.Tensor:
    """SLA's aggregation: ``joint_logits`` ``(M, N, classes * M)``, view ``j``'s logits for ``t_j(x)``, to the class
    logits ``(N, classes)``: ``(1/M) sum_j z_{(c, j)}(t_j(x))``."""
    if joint_logits.ndim != 3 or joint_logits.shape[0] != m or joint_logits.shape[2] % m:
        raise ValueError(f"expected (M={m}, N, classes * M) joint logits, got {tuple(joint_logits.shape)}")
    per_view = joint_logits.unflatten(2, (-1, m))  # (M views, N, classes, M transformations)
    return torch.stack([per_view[j, :, :, j] for j in range(m)]).mean(0)


class Aggregated(nn.Sequential):
    """An encoder and its joint (classes x transformations) head; called, it returns the aggregated class logits."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, m: int) -> None:
        super().__init__(backbone, head)
        self.m = m

    def joint(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = torch.cat([transform(x, j) for j in range(self.m)])
        return aggregate(self.joint(views).unflatten(0, (self.m, len(x))), self.m)


AUGMENTATIONS = ("rotation", "all-rotations")  # DA: a random quarter turn per image, or all four turns of each


def check_augment(name: str | None) -> None:
    """A one-line error for an unknown plain augmentation ``name`` (None: no augmentation)."""
    if name is not None and name not in AUGMENTATIONS:
        raise SelfsupError(
            f"unknown fine-tuning augmentation '{name}'; known: {', '.join(AUGMENTATIONS)} (a random quarter turn "
            "per image, or all four turns of every image, each with its own label)."
        )


def random_transform(x: torch.Tensor, generator: torch.Generator, m: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image of ``x`` through its own ``t_j``, ``j`` drawn uniformly from ``0 .. m-1`` by ``generator``;
    returns the turned images and the ``j`` drawn."""
    drawn = torch.randint(m, (len(x),), generator=generator)
    out = x.clone()
    for j in range(1, m):
        chosen = drawn == j
        if chosen.any():
            out[chosen] = transform(x[chosen], j)
    return out, drawn


def augmented_batch(
    name: str, x: torch.Tensor, targets: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """DA's batch for ``augment=name``: the images turned (randomly, or all four turns stacked view by view as in
    ``joint_batch``) with their own, unchanged targets (class indices or probabilities)."""
    m = TRANSFORMATIONS["rotation"]
    if name == "rotation":
        return random_transform(x, generator, m)[0], targets
    return torch.cat([transform(x, j) for j in range(m)]), torch.cat([targets] * m)
