"""LoRA (Hu et al., ICLR 2022) through peft, on the six linear layers of the blocks that masking uses."""

from __future__ import annotations

from torch import nn

from maskbench.methods.adapters import PeftMethod
from maskbench.methods.base import block_layers
from maskbench.settings import TrainConfig


class Lora(PeftMethod):
    """Rank-``lora_r`` updates ``lora_alpha / lora_r * B A`` of W_Q, W_K, W_V, W_AO, W_I, W_O of the chosen blocks."""

    name = "lora"
    artefact = "lora"

    def peft_config(self, model: nn.Module, config: TrainConfig, modules_to_save: list[str]):
        from peft import LoraConfig

        return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, bias="none",
                          target_modules=block_layers(model, config.mask.blocks), modules_to_save=modules_to_save)


METHOD = Lora()
