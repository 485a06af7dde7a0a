"""Masking pretrained weights: config, the masked layer, and applying it to a model (torch loads on first use)."""

from __future__ import annotations

import importlib
from typing import Any

from maskbench.training.masking.config import MaskConfig

_LAZY = {
    "ARCHITECTURES": "maskbench.training.masking.apply",
    "head_layer_names": "maskbench.training.masking.apply",
    "mask_model": "maskbench.training.masking.apply",
    "mask_sparsity": "maskbench.training.masking.apply",
    "masked_layers": "maskbench.training.masking.apply",
    "merge_masks": "maskbench.training.masking.apply",
    "target_layer_names": "maskbench.training.masking.apply",
    "MaskedLinear": "maskbench.training.masking.layer",
}

__all__ = [*sorted(_LAZY), "MaskConfig"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maskbench.training.masking' has no attribute {name!r}")
