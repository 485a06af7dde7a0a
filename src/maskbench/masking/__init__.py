"""Masking pretrained weights: config, the masked layer, and applying it to a model (torch loads on first use)."""

from __future__ import annotations

import importlib
from typing import Any

from maskbench.masking.config import MaskConfig

_LAZY = {
    "ARCHITECTURES": "maskbench.masking.apply",
    "head_layer_names": "maskbench.masking.apply",
    "mask_model": "maskbench.masking.apply",
    "mask_sparsity": "maskbench.masking.apply",
    "masked_layers": "maskbench.masking.apply",
    "merge_masks": "maskbench.masking.apply",
    "target_layer_names": "maskbench.masking.apply",
    "MaskedLinear": "maskbench.masking.layer",
}

__all__ = [*sorted(_LAZY), "MaskConfig"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maskbench.masking' has no attribute {name!r}")
