"""Masking pretrained weights: config, the masked layer, and applying it to a model."""

from maskbench.masking.apply import (
    ARCHITECTURES,
    head_layer_names,
    mask_model,
    mask_sparsity,
    masked_layers,
    merge_masks,
    target_layer_names,
)
from maskbench.masking.config import MaskConfig
from maskbench.masking.layer import MaskedLinear

__all__ = [
    "ARCHITECTURES", "MaskConfig", "MaskedLinear", "head_layer_names", "mask_model", "mask_sparsity",
    "masked_layers", "merge_masks", "target_layer_names",
]
