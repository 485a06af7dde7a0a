"""maskbench: masking pretrained language models as an alternative to finetuning (Zhao et al., EMNLP 2020)."""

__version__ = "0.1.0"

from maskbench.masking import (  # noqa: E402
    MaskConfig,
    MaskedLinear,
    mask_model,
    mask_sparsity,
    masked_layers,
    merge_masks,
)
from maskbench.masking.serialization import load_masked_model, save_masks  # noqa: E402
from maskbench.multitask import MultiTaskModel  # noqa: E402

__all__ = [
    "MaskConfig", "MaskedLinear", "MultiTaskModel", "__version__", "load_masked_model", "mask_model", "mask_sparsity",
    "masked_layers", "merge_masks", "save_masks",
]
