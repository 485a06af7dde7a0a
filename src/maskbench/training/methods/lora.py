"""LoRA (Hu et al., ICLR 2022) through peft, on the linear layers (``lora_targets``; default all six) of the blocks
that masking uses."""

from __future__ import annotations

from torch import nn

from maskbench.training.methods.adapters import PeftMethod
from maskbench.training.methods.base import chosen_block_layers
from maskbench.training.settings import TrainConfig


class Lora(PeftMethod):
    """Rank-``lora_r`` updates ``lora_alpha / lora_r * B A`` of the ``lora_targets`` layers (W_Q, W_K, W_V, W_AO,
    W_I, W_O by default) of the chosen blocks, with dropout ``lora_dropout`` on their input."""

    name = "lora"
    artefact = "lora"

    def peft_config(self, model: nn.Module, config: TrainConfig, modules_to_save: list[str]):
        from peft import LoraConfig

        settings = config.lora
        targets = chosen_block_layers(model, config.mask.blocks, settings.lora_targets)
        return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                          bias="none", target_modules=targets, modules_to_save=modules_to_save)


METHOD = Lora()
