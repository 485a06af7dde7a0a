"""The masked linear layer: frozen pretrained weight, trainable real-valued scores, binary mask in the forward."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _BinarizeSTE(torch.autograd.Function):
    """1[scores >= threshold] forward; identity (straight-through) backward."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, threshold: float) -> torch.Tensor:  # type: ignore[override]
        return (scores >= threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        return grad_output, None


def init_bounds(initial_sparsity: float, init_scale: float, threshold: float) -> tuple[float, float]:
    """The authors' score range ``(-c, (c + τ) / s - c)`` for initial sparsity s, scale c and threshold τ."""
    if not initial_sparsity > 0:
        raise ValueError(f"initial_sparsity must be > 0 for the authors' initialisation, got {initial_sparsity!r}")
    return -init_scale, (init_scale + threshold) / initial_sparsity - init_scale


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a learned binary mask.

    The weight and bias are the original module's (frozen) parameters; only ``mask_scores`` is trainable.
    Gradient of the scores = gradient of the binary mask = ``grad_W_hat * W`` (straight-through estimator),
    which autograd derives from ``W_hat = W * binarize(scores)``.
    """

    def __init__(self, base: nn.Linear, threshold: float) -> None:
        nn.Module.__init__(self)
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.threshold = float(threshold)
        self.mask_scores = nn.Parameter(torch.empty_like(self.weight, dtype=torch.float32))

    def init_scores(self, initial_sparsity: float, init_scale: float, generator: torch.Generator | None = None) -> None:
        """Draw scores as the authors' ``MaskedLinear1`` does (``get_init_scales`` in ptlmasking/maskbert).

        Uniform in ``[-init_scale, (init_scale + threshold) / initial_sparsity - init_scale]``: the fraction
        ``initial_sparsity`` of that span lies below the threshold (masked out), and the span is wide (0.6 for
        s = 5 %, c = 0.02, τ = 0.01), so that few entries sit right at the threshold.
        """
        low, high = init_bounds(initial_sparsity, init_scale, self.threshold)
        with torch.no_grad():
            self.mask_scores.uniform_(0.0, 1.0, generator=generator).mul_(high - low).add_(low)

    def binary_mask(self) -> torch.Tensor:
        """The current mask as a bool tensor (True = weight kept)."""
        return self.mask_scores.detach() >= self.threshold

    def set_binary_mask(self, mask: torch.Tensor) -> None:
        """Set scores so that the binary mask equals ``mask`` (used when loading a saved mask)."""
        if mask.shape != self.weight.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match weight shape {tuple(self.weight.shape)}")
        with torch.no_grad():
            self.mask_scores.copy_(torch.where(mask.to(self.mask_scores.device), 1.0, -1.0) + self.threshold)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * _BinarizeSTE.apply(self.mask_scores, self.threshold).to(self.weight.dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.linear(input, self.masked_weight(), self.bias)

    def to_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the mask merged into the weight (for fast inference)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.weight * self.binary_mask().to(self.weight.dtype))
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, threshold={self.threshold}"
