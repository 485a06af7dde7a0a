"""Methods that train peft adapters (LoRA, IA3): the saving, loading and checking they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskbench.io.errors import ConfigError, MaskFileError
from maskbench.io.fileio import atomic_directory
from maskbench.training.artefact import (
    DESCRIPTION_FILE,
    base_description,
    base_fingerprint,
    read_description,
    write_description,
)
from maskbench.training.methods.base import Method, fingerprint_layers, finish_loading, load_base, num_blocks
from maskbench.training.settings import TrainConfig

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class PeftMethod(Method):
    """A method whose per-task artefact is a peft adapter (``save_pretrained``/``PeftModel.from_pretrained``).

    The head (modules the checkpoint lacks) trains as peft's ``modules_to_save`` and is saved with the adapter;
    a ``maskbench.json`` next to peft's files records the base model and a fingerprint of its frozen weights.
    """

    tensor_files = (ADAPTER_WEIGHTS,)
    serving = "adapter"

    def peft_config(self, model: nn.Module, config: TrainConfig, modules_to_save: list[str]):
        """The peft config of this method for ``model``."""
        raise NotImplementedError

    def check(self, config: TrainConfig) -> None:
        if not config.mask.resolve_blocks(num_blocks(config.model)):
            raise ConfigError(f"blocks: {self.name} needs at least one block to adapt, got {config.mask.blocks!r}")

    def prepare(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        from peft import get_peft_model

        from maskbench.training.methods.base import head_modules

        layers = fingerprint_layers(model)
        fingerprint = base_fingerprint(model, layers)
        peft_model = get_peft_model(model, self.peft_config(model, config, head_modules(model)))
        peft_model.maskbench_base = (fingerprint, layers)
        return peft_model

    def save(self, model: nn.Module, directory: str | Path, base: str | None = None,
             extra: dict[str, Any] | None = None, config: TrainConfig | None = None) -> Path:
        from peft import PeftModel

        if not isinstance(model, PeftModel):
            raise MaskFileError(f"save: a {self.name} artefact needs a model prepared by the {self.name} method")
        fingerprint, layers = model.maskbench_base
        description = base_description(model.get_base_model(), self.name, base, extra, fingerprint, layers)
        with atomic_directory(directory, self.name, (ADAPTER_WEIGHTS, ADAPTER_CONFIG, DESCRIPTION_FILE)) as tmp:
            model.save_pretrained(str(tmp))
            write_description(tmp, description, (ADAPTER_WEIGHTS, ADAPTER_CONFIG))
        return Path(directory)

    def load(self, directory: str | Path, base: str | None = None,
             device: str | torch.device | None = None) -> nn.Module:
        from peft import PeftModel

        description = read_description(directory, self.name)
        model = load_base(description, directory, base)
        model = PeftModel.from_pretrained(model, str(directory))
        return finish_loading(model, description, device)
