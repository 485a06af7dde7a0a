"""BitFit (Ben Zaken et al., ACL 2022): only the bias terms (and the new head) train; ``bitfit_biases`` chooses
which (every bias of the model, or those of some block layers, e.g. the paper's query and intermediate variant)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from maskbench.training.methods.base import chosen_block_layers
from maskbench.training.methods.subset import SubsetMethod
from maskbench.training.settings import TrainConfig

PARAMETERS_FILE = "bitfit.safetensors"


class BitFit(SubsetMethod):
    """The chosen biases train (default every bias of the model), and every parameter of the head; the artefact
    holds exactly those tensors."""

    name = "bitfit"
    artefact = "bitfit"
    tensor_files = (PARAMETERS_FILE,)

    def trains(self, model: nn.Module, config: TrainConfig) -> Callable[[str], bool]:
        layers = config.bitfit.layers()
        chosen = None if layers is None else \
            {f"{name}.bias" for name in chosen_block_layers(model, "all", ",".join(layers))}
        return lambda name: name.endswith(".bias") and (chosen is None or name in chosen)


METHOD = BitFit()
