"""Batched, on-device views of table rows: SCARF corruption, VIME masking, Gaussian noise.

``TableViews`` turns a batch of schema-transformed rows ``(B, F)`` (docs/modalities.md: standardised
numeric columns first, then missing-value indicators, then categorical codes) into the views a method
asks for. Each augmented view is made independently, in this order:

1. **corruption** (SCARF, Bahri et al. 2022): each entry is replaced, independently with probability
   ``corrupt_rate``, by the same feature's value in a uniformly random row of the marginal buffer
   (training rows), i.e. a draw from that feature's empirical marginal. SCARF corrupts a fixed count
   ``round(rate * F)`` of features per row; an independent mask per entry (as in VIME's mask
   generator) gives the same rate in expectation and keeps rows independent. A draw can equal the
   original value, so the share of entries that *change* is slightly below the rate.
2. **masking** (VIME, Yoon et al. 2020): each entry is set, with probability ``mask_rate``, to 0: the
   mean of a standardised numeric column, "not missing" for an indicator, the missing/unknown code
   for a categorical column.
3. **noise**: Gaussian noise with std ``noise_std`` on the ``numeric_columns`` leading (standardised
   numeric) columns only; indicators and categorical codes stay discrete.

Every random draw covers all views and rows at once (``(V, B, F)`` tensors, no Python loop over
rows), uses ``generator`` when given (on ``x``'s device) and happens on ``x``'s device.
"""

from __future__ import annotations

import torch

from selfsup.views import ViewSpec


class TableViews(torch.nn.Module):
    """Random views of a batch of table rows for a method's :class:`ViewSpec` (see the module docstring).

    ``forward(x, generator=None)`` takes float ``(B, F)`` rows and returns ``[x]`` first when
    ``spec.original`` (SCARF and VIME compare a row with its corrupted copy), then
    ``spec.n_global + spec.n_local`` augmented views of the same shape (tables have no local crops, so
    local views are further views of the same kind; ``spec.asymmetric`` is ignored).
    """

    marginal: torch.Tensor

    def __init__(
        self,
        spec: ViewSpec,
        numeric_columns: int,
        marginal_rows: torch.Tensor,
        corrupt_rate: float = 0.6,
        mask_rate: float = 0.0,
        noise_std: float = 0.0,
    ) -> None:
        super().__init__()
        if marginal_rows.dim() != 2 or len(marginal_rows) == 0:
            raise ValueError(f"marginal_rows must be a non-empty (M, F) tensor, got shape {tuple(marginal_rows.shape)}")
        if not 0 <= numeric_columns <= marginal_rows.shape[1]:
            raise ValueError(f"numeric_columns must be in [0, {marginal_rows.shape[1]}], got {numeric_columns}")
        for key, rate in (("corrupt_rate", corrupt_rate), ("mask_rate", mask_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {rate}")
        if not noise_std >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if spec.n_global < 0 or spec.n_local < 0:
            raise ValueError(f"view counts must be non-negative, got {spec}")
        self.spec = spec
        self.numeric_columns = int(numeric_columns)
        self.corrupt_rate = float(corrupt_rate)
        self.mask_rate = float(mask_rate)
        self.noise_std = float(noise_std)
        self.register_buffer("marginal", marginal_rows.detach().float().clone(), persistent=False)

    @property
    def features(self) -> int:
        return int(self.marginal.shape[1])

    def extra_repr(self) -> str:
        return (
            f"spec={self.spec}, features={self.features}, numeric_columns={self.numeric_columns}, "
            f"marginal_rows={len(self.marginal)}, corrupt_rate={self.corrupt_rate}, mask_rate={self.mask_rate}, "
            f"noise_std={self.noise_std}"
        )

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"expected rows (B, {self.features}), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float rows, got dtype {x.dtype}")
        views = [x] if self.spec.original else []
        count = self.spec.n_global + self.spec.n_local
        if count == 0:
            return views
        batch, features = x.shape
        device = x.device
        out = x.unsqueeze(0).expand(count, batch, features).clone()
        if batch and self.corrupt_rate > 0:
            marginal = self.marginal.to(device=device, dtype=x.dtype)
            corrupt = torch.rand(out.shape, generator=generator, device=device) < self.corrupt_rate
            donor = torch.randint(len(marginal), out.shape, generator=generator, device=device)
            # marginal[donor[v, b, f], f] for every entry, as one gather on the flattened buffer
            flat = donor * features + torch.arange(features, device=device)
            out = torch.where(corrupt, marginal.reshape(-1)[flat], out)
        if batch and self.mask_rate > 0:
            masked = torch.rand(out.shape, generator=generator, device=device) < self.mask_rate
            out = out.masked_fill(masked, 0.0)
        if batch and self.noise_std > 0 and self.numeric_columns:
            noise = torch.randn((count, batch, self.numeric_columns), generator=generator, device=device, dtype=x.dtype)
            out[..., : self.numeric_columns] += noise * self.noise_std
        return views + list(out.unbind(0))
