"""Masking (Zhao et al. 2020): learn binary masks over the frozen weights of the chosen blocks and the head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskbench.training.masking.apply import mask_model, mask_sparsity
from maskbench.training.masking.serialization import CONFIG_FILE, HEAD_FILE, MASKS_FILE, load_masked_model, save_masks
from maskbench.training.methods.base import Method, num_blocks
from maskbench.training.settings import PACKED_BITS, TrainConfig


class Masking(Method):
    """Scores per weight of the masked layers train; the binary masks (packed or Rice-coded) and the head are saved."""

    name = "masking"
    artefact = "masks"
    tensor_files = (MASKS_FILE, HEAD_FILE)
    serving = "masks"

    def check(self, config: TrainConfig) -> None:
        config.mask.resolve_blocks(num_blocks(config.model))

    def prepare(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        return mask_model(model, config.mask, generator=torch.Generator().manual_seed(config.seed))

    def save(self, model: nn.Module, directory: str | Path, base: str | None = None,
             extra: dict[str, Any] | None = None, config: TrainConfig | None = None) -> Path:
        mask_format = config.mask_format if config is not None else PACKED_BITS
        return save_masks(model, directory, base=base, extra=extra, mask_format=mask_format)

    def load(self, directory: str | Path, base: str | None = None,
             device: str | torch.device | None = None) -> nn.Module:
        return load_masked_model(directory, base=base, device=device)

    def recognises(self, directory: Path) -> bool:
        """Its ``maskbench.json`` names masking, or a mask directory written before masks had the common format
        (``mask_config.json``)."""
        return super().recognises(directory) or (directory / CONFIG_FILE).is_file()

    def artefact_sizes(self, run_dir: str | Path) -> dict[str, Any] | None:
        """The mask bits, the file sizes, and the masks' bytes in every mask format."""
        from maskbench.training.sizes import mask_artefact_sizes, mask_bytes_by_format

        masks = Path(run_dir) / self.artefact
        return {**mask_artefact_sizes(masks), "mask_bytes_by_format": mask_bytes_by_format(masks)}

    def sparsity(self, model: nn.Module) -> float | None:
        return mask_sparsity(model)["overall"]


METHOD = Masking()
