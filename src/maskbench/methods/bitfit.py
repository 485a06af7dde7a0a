"""BitFit (Ben Zaken et al., ACL 2022): only the bias terms (and the new head) train; ``bitfit_biases`` chooses
which (every bias of the model, or those of some block layers, e.g. the paper's query and intermediate variant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from maskbench.errors import MaskFileError
from maskbench.fileio import atomic_directory
from maskbench.masking.serialization import base_fingerprint
from maskbench.methods.base import (
    DESCRIPTION_FILE,
    Method,
    base_description,
    chosen_block_layers,
    fingerprint_layers,
    finish_loading,
    head_modules,
    load_base,
    read_description,
    write_description,
)
from maskbench.settings import TrainConfig

PARAMETERS_FILE = "bitfit.safetensors"


class BitFit(Method):
    """The chosen biases train (default every bias of the model), and every parameter of the head; the artefact
    holds exactly those tensors."""

    name = "bitfit"
    artefact = "bitfit"
    serving = "overrides"
    tensor_files = (PARAMETERS_FILE,)

    def prepare(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        heads = tuple(f"{name}." for name in head_modules(model))
        layers = config.bitfit.layers()
        chosen = None if layers is None else \
            {f"{name}.bias" for name in chosen_block_layers(model, "all", ",".join(layers))}
        for name, parameter in model.named_parameters():
            bias = name.endswith(".bias") and (chosen is None or name in chosen)
            parameter.requires_grad_(bias or name.startswith(heads))
        return model

    def save(self, model: nn.Module, directory: str | Path, base: str | None = None,
             extra: dict[str, Any] | None = None, config: TrainConfig | None = None) -> Path:
        tensors = {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}
        if not tensors:
            raise MaskFileError(f"save: the model has no trainable parameters (prepare it with the {self.name} method)")
        layers = fingerprint_layers(model)
        description = base_description(model, self.name, base, extra, base_fingerprint(model, layers), layers)
        with atomic_directory(directory, self.name, (PARAMETERS_FILE, DESCRIPTION_FILE)) as tmp:
            save_file(tensors, tmp / PARAMETERS_FILE)
            write_description(tmp, description, (PARAMETERS_FILE,))
        return Path(directory)

    def load(self, directory: str | Path, base: str | None = None,
             device: str | torch.device | None = None) -> nn.Module:
        directory = Path(directory)
        description = read_description(directory, self.name)
        model = load_base(description, directory, base)
        try:
            tensors = load_file(directory / PARAMETERS_FILE)
        except (SafetensorError, OSError) as error:
            raise MaskFileError(f"{directory}: cannot read {PARAMETERS_FILE} ({error})") from None
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in tensors.items():
                if name not in parameters or parameters[name].shape != tensor.shape:
                    raise MaskFileError(f"{directory / PARAMETERS_FILE}: parameter {name} does not fit the model")
                parameters[name].copy_(tensor)
        return finish_loading(model, description, device)


METHOD = BitFit()
