"""(IA)^3 (Liu et al., NeurIPS 2022) through peft: learned rescaling of keys, values and the feed-forward output
(by default; ``ia3_targets`` and ``ia3_feedforward`` choose the layers)."""

from __future__ import annotations

from torch import nn

from maskbench.training.methods.adapters import PeftMethod
from maskbench.training.methods.base import chosen_block_layers
from maskbench.training.settings import TrainConfig


class IA3(PeftMethod):
    """Vectors that scale the outputs of the ``ia3_targets`` layers of each chosen block (default: key and value),
    and the inputs of those in ``ia3_feedforward`` (default: the feed-forward output layer)."""

    name = "ia3"
    artefact = "ia3"

    def peft_config(self, model: nn.Module, config: TrainConfig, modules_to_save: list[str]):
        from peft import IA3Config

        settings = config.ia3
        targets = chosen_block_layers(model, config.mask.blocks, settings.ia3_targets)
        feedforward = [] if settings.ia3_feedforward == "none" else \
            chosen_block_layers(model, config.mask.blocks, settings.ia3_feedforward)
        return IA3Config(target_modules=targets, feedforward_modules=feedforward, modules_to_save=modules_to_save)


METHOD = IA3()
