"""Methods that train a subset of the model's own parameters (and the head), e.g. BitFit's biases: the artefact
holds exactly the trained tensors (one safetensors file) beside a ``maskbench.json``; loading copies them into the
base model, and :class:`maskbench.serving.multitask.MultiTaskModel` serves them as overrides of a shared backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from maskbench.io.errors import MaskFileError
from maskbench.io.fileio import atomic_directory
from maskbench.training.artefact import (
    DESCRIPTION_FILE,
    base_description,
    base_fingerprint,
    copy_parameters,
    read_description,
    write_description,
)
from maskbench.training.methods.base import Method, fingerprint_layers, finish_loading, head_modules, load_base
from maskbench.training.settings import TrainConfig


class SubsetMethod(Method):
    """The parameters :meth:`trains` names train, and every parameter of the head; a subclass sets ``name``,
    ``artefact`` and ``tensor_files`` (one file) and implements :meth:`trains`."""

    serving = "overrides"

    def trains(self, model: nn.Module, config: TrainConfig) -> Callable[[str], bool]:
        """Which parameters of the pretrained ``model`` the method trains: a test on a parameter's name."""
        raise NotImplementedError

    def prepare(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        heads = tuple(f"{name}." for name in head_modules(model))
        trains = self.trains(model, config)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith(heads) or trains(name))
        return model

    def save(self, model: nn.Module, directory: str | Path, base: str | None = None,
             extra: dict[str, Any] | None = None, config: TrainConfig | None = None) -> Path:
        (weights,) = self.tensor_files
        tensors = {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}
        if not tensors:
            raise MaskFileError(f"save: the model has no trainable parameters (prepare it with the {self.name} method)")
        layers = fingerprint_layers(model)
        description = base_description(model, self.name, base, extra, base_fingerprint(model, layers), layers)
        with atomic_directory(directory, self.name, (weights, DESCRIPTION_FILE)) as tmp:
            save_file(tensors, tmp / weights)
            write_description(tmp, description, (weights,))
        return Path(directory)

    def load(self, directory: str | Path, base: str | None = None,
             device: str | torch.device | None = None) -> nn.Module:
        (weights,) = self.tensor_files
        directory = Path(directory)
        description = read_description(directory, self.name)
        model = load_base(description, directory, base)
        try:
            tensors = load_file(directory / weights)
        except (SafetensorError, OSError) as error:
            raise MaskFileError(f"{directory}: cannot read {weights} ({error})") from None
        copy_parameters(model, tensors, directory / weights)
        return finish_loading(model, description, device)
