"""maskbench: masking pretrained language models as an alternative to finetuning (Zhao et al., EMNLP 2020).

``import maskbench`` is light (no torch): the bookkeeping modules (settings, lr selection, aggregation, tables)
work without it, and the names below load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MaskConfig": "maskbench.training.masking.config",
    "MaskedLinear": "maskbench.training.masking.layer",
    "mask_model": "maskbench.training.masking.apply",
    "mask_sparsity": "maskbench.training.masking.apply",
    "masked_layers": "maskbench.training.masking.apply",
    "merge_masks": "maskbench.training.masking.apply",
    "load_masked_model": "maskbench.training.masking.serialization",
    "save_masks": "maskbench.training.masking.serialization",
    "MultiTaskModel": "maskbench.serving.multitask",
}

__all__ = [*sorted(_LAZY), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maskbench' has no attribute {name!r}")
