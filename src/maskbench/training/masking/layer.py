"""The masked linear layer: frozen pretrained weight, trainable real-valued scores, binary mask in the forward."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _MaskedWeight(torch.autograd.Function):
    """``W ⊙ 1[scores ≥ τ]`` in one pass (forward), straight-through backward: ``∂L/∂scores = ∂L/∂Ŵ ⊙ W``.

    ``compute`` is the weight the forward multiplies (``weight`` itself, or its copy in the autocast dtype: ``W ⊙ m``
    is exact in bf16, so the masked weight needs no cast); the gradient always uses the full-precision ``weight``
    and comes back in the scores' dtype — the same numbers as ``W * binarize(scores)`` under autograd (and autocast),
    with one kernel instead of four per layer and step.
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor, weight: torch.Tensor, compute: torch.Tensor,  # type: ignore[override]
                threshold: float) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.scores_dtype = scores.dtype
        return torch.where(scores >= threshold, compute, compute.new_zeros(()))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        return (grad_output.to(weight.dtype) * weight).to(ctx.scores_dtype), None, None, None


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
        self.register_buffer("weight_lowp", None, persistent=False)  # set_compute_dtype: the weight in bf16

    def set_compute_dtype(self, dtype: torch.dtype | None) -> None:
        """Keep a copy of the frozen weight in ``dtype`` (e.g. bf16) for forwards under autocast to that dtype, made
        once instead of a cast per step; None drops it. Not saved with the module's state."""
        self.weight_lowp = None if dtype is None or dtype == self.weight.dtype else self.weight.detach().to(dtype)

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
        """``W ⊙ mask`` (differentiable in the scores), in the autocast dtype when a copy in it is kept."""
        compute = self.weight
        low = self.weight_lowp
        if low is not None:
            device = low.device.type
            if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == low.dtype:
                compute = low
        return _MaskedWeight.apply(self.mask_scores, self.weight, compute, self.threshold)

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
