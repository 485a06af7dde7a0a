"""Finetuning: every weight trains; the per-task artefact is the whole model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

from maskbench.data.models import WEIGHTS_DTYPE
from maskbench.io.errors import MaskFileError
from maskbench.io.fileio import atomic_directory
from maskbench.io.output_dirs import MODEL_FILES
from maskbench.training.methods.base import Method
from maskbench.training.settings import TrainConfig

WEIGHTS_FILE = "model.safetensors"


class Finetuning(Method):
    """All parameters train. A run saves its weights only with ``save_weights`` (as ``model/``, with the tokenizer)."""

    name = "finetuning"
    artefact = None
    weights_folder = "model"
    tensor_files = (WEIGHTS_FILE,)

    def prepare(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        return model

    def save(self, model: nn.Module, directory: str | Path, base: str | None = None,
             extra: dict[str, Any] | None = None, config: TrainConfig | None = None) -> Path:
        with atomic_directory(directory, "model", MODEL_FILES) as tmp:
            model.save_pretrained(tmp)
        return Path(directory)

    def load(self, directory: str | Path, base: str | None = None,
             device: str | torch.device | None = None) -> nn.Module:
        directory = Path(directory)
        if not (directory / WEIGHTS_FILE).is_file():
            raise MaskFileError(f"{directory}: {WEIGHTS_FILE} is missing; not a finetuned model saved by maskbench")
        config = transformers.AutoConfig.from_pretrained(directory)
        architectures = config.architectures or []
        model_class = getattr(transformers, architectures[0], None) if architectures else None
        if model_class is None:
            raise MaskFileError(f"{directory}: config.json names no known model class ({architectures})")
        model = model_class.from_pretrained(directory, dtype=WEIGHTS_DTYPE)
        model.eval()
        return model.to(device) if device is not None else model

    def recognises(self, directory: Path) -> bool:
        return (directory / WEIGHTS_FILE).is_file() and (directory / "config.json").is_file()


METHOD = Finetuning()
