"""(IA)^3 (Liu et al., NeurIPS 2022) through peft: learned rescaling of keys, values and the feed-forward output."""

from __future__ import annotations

from torch import nn

from maskbench.methods.adapters import PeftMethod
from maskbench.methods.base import block_layers
from maskbench.settings import TrainConfig

# positions in Architecture.block_linears (W_Q, W_K, W_V, W_AO, W_I, W_O)
_KEY, _VALUE, _FEEDFORWARD_OUTPUT = 1, 2, 5


class IA3(PeftMethod):
    """Vectors that scale the key and value outputs and the input of the feed-forward output layer, per block."""

    name = "ia3"
    artefact = "ia3"

    def peft_config(self, model: nn.Module, config: TrainConfig, modules_to_save: list[str]):
        from peft import IA3Config

        layers = block_layers(model, config.mask.blocks)
        per_block = [layers[i:i + 6] for i in range(0, len(layers), 6)]
        targets = [block[j] for block in per_block for j in (_KEY, _VALUE, _FEEDFORWARD_OUTPUT)]
        feedforward = [block[_FEEDFORWARD_OUTPUT] for block in per_block]
        return IA3Config(target_modules=targets, feedforward_modules=feedforward, modules_to_save=modules_to_save)


METHOD = IA3()
