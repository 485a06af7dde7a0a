"""maskbench: masking pretrained language models as an alternative to finetuning (Zhao et al., EMNLP 2020).

``import maskbench`` is light (no torch): the bookkeeping modules (settings, lr selection, aggregation, tables)
work without it, and the names below load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MaskConfig": "maskbench.masking.config",
    "MaskedLinear": "maskbench.masking.layer",
    "mask_model": "maskbench.masking.apply",
    "mask_sparsity": "maskbench.masking.apply",
    "masked_layers": "maskbench.masking.apply",
    "merge_masks": "maskbench.masking.apply",
    "load_masked_model": "maskbench.masking.serialization",
    "save_masks": "maskbench.masking.serialization",
    "MultiTaskModel": "maskbench.multitask",
}

__all__ = [*sorted(_LAZY), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maskbench' has no attribute {name!r}")
