"""The interface every training method implements, and the parts the parameter-efficient methods share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskbench.io.errors import ConfigError, MaskFileError
from maskbench.training import artefact
from maskbench.training.artefact import DESCRIPTION_FILE, artefact_method, head_config_kwargs, model_class_of
from maskbench.training.masking.apply import target_layer_names
from maskbench.training.masking.config import MaskConfig
from maskbench.training.settings import TrainConfig


class Method:
    """A training method: prepare a model, name its trainable parameters, save/load its per-task artefact.

    ``artefact`` is the folder of a run directory that holds the artefact (None: the method saves nothing per
    run; finetuning saves its full weights only with ``save_weights``, in ``weights_folder``); ``tensor_files``
    are the files of that folder whose bytes :meth:`artefact_bytes` counts (the tensors; JSON descriptions and
    model cards are not counted). ``serving`` says how :class:`maskbench.serving.multitask.MultiTaskModel` serves the
    artefact on a shared backbone: ``"masks"``, ``"adapter"`` (a peft adapter), ``"overrides"`` (tensors that
    replace the backbone's and the head, as BitFit's), or None (not served).
    """

    name: str = ""
    artefact: str | None = None
    weights_folder: str | None = None
    tensor_files: tuple[str, ...] = ()
    serving: str | None = None

    @property
    def label(self) -> str:
        """The method's label in tables and figures (:mod:`maskbench.training.method_registry`)."""
        from maskbench.training.method_registry import method_label

        return method_label(self.name)

    @property
    def run_folder(self) -> str | None:
        """The name of the folder in a run directory that :meth:`load` reads: the artefact, or the saved weights."""
        return self.artefact or self.weights_folder

    def run_artefact(self, run_dir: str | Path) -> Path:
        """The folder of run directory ``run_dir`` that :meth:`load` rebuilds the trained model from."""
        folder = self.run_folder
        if folder is None:
            raise MaskFileError(f"{run_dir}: a {self.name} run keeps no artefact to rebuild its model from")
        path = Path(run_dir) / folder
        if not path.is_dir():
            hint = " (saved only with maskbench train --save-weights)" if folder == self.weights_folder else ""
            raise MaskFileError(f"{path}: missing; the {self.name} run's artefact is needed{hint}")
        return path

    def artefact_sizes(self, run_dir: str | Path) -> dict[str, Any] | None:
        """What a run records of its artefact's size (``artefact_sizes`` in ``metrics.json``): the values and bytes
        of its tensor files; None when the method keeps no per-task artefact (finetuning's copy is measured once
        per task, :func:`maskbench.training.sizes.reference_model_sizes`)."""
        if self.artefact is None:
            return None
        from maskbench.training.sizes import method_artefact_sizes

        return method_artefact_sizes(run_dir, self)

    def check(self, config: TrainConfig) -> None:
        """Refuse settings that cannot work with ``config.model`` (cheap: reads no weights and no data)."""

    def prepare(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        """The model to train (``model`` is changed in place; the result may wrap it)."""
        raise NotImplementedError

    def trainable_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The parameters the optimizer updates (in module order)."""
        return [p for p in model.parameters() if p.requires_grad]

    def save(self, model: nn.Module, directory: str | Path, base: str | None = None,
             extra: dict[str, Any] | None = None, config: TrainConfig | None = None) -> Path:
        """Write the per-task artefact of a trained ``model`` to ``directory`` atomically."""
        raise NotImplementedError

    def load(self, directory: str | Path, base: str | None = None,
             device: str | torch.device | None = None) -> nn.Module:
        """Rebuild the trained model for inference from its artefact (``base`` overrides the recorded base model)."""
        raise NotImplementedError

    def recognises(self, directory: Path) -> bool:
        """True when ``directory`` is this method's artefact: its ``maskbench.json`` names this method (a folder
        without one, written before descriptions existed: when it holds the method's tensor files)."""
        method = artefact_method(directory)
        if (directory / DESCRIPTION_FILE).is_file():
            return method == self.name
        return bool(self.tensor_files) and all((directory / name).is_file() for name in self.tensor_files)

    def artefact_bytes(self, directory: str | Path) -> int:
        """Bytes of the artefact's tensor files (what storing one more task costs)."""
        directory = Path(directory)
        missing = [name for name in self.tensor_files if not (directory / name).is_file()]
        if missing:
            raise MaskFileError(f"{directory}: {missing[0]} is missing; not a {self.name} artefact")
        return sum((directory / name).stat().st_size for name in self.tensor_files)

    def sparsity(self, model: nn.Module) -> float | None:
        """The mask's fraction of zeros (masking only)."""
        return None


# --- shared by LoRA, IA3 and BitFit ---------------------------------------------------------------------------


def num_blocks(model_name: str) -> int:
    """The number of transformer blocks of a model, from its configuration only."""
    from maskbench.data.models import model_config

    return model_config(model_name).num_hidden_layers


def block_layers(model: nn.Module, blocks: str | None) -> list[str]:
    """The six linear layers (W_Q, W_K, W_V, W_AO, W_I, W_O) of each block chosen by ``blocks``, block by block."""
    return target_layer_names(model, MaskConfig(blocks=blocks, mask_pooler=False, mask_classifier=False))


def chosen_block_layers(model: nn.Module, blocks: str | None, layers: str) -> list[str]:
    """Of the six linear layers of each block chosen by ``blocks``, those that ``layers`` names
    (:func:`maskbench.training.layers.parse_layers`), block by block."""
    from maskbench.training.layers import BLOCK_LINEARS, parse_layers

    wanted = {BLOCK_LINEARS.index(name) for name in parse_layers("layers", layers)}
    return [name for index, name in enumerate(block_layers(model, blocks)) if index % len(BLOCK_LINEARS) in wanted]


def fingerprint_layers(model: nn.Module) -> list[str]:
    """The layers whose frozen weights identify a base model: the six linear layers of every block."""
    return block_layers(model, "all")


def head_modules(model: nn.Module) -> list[str]:
    """Modules a task trains from scratch: the head outside the encoder, and encoder modules the checkpoint lacks."""
    prefix = model.base_model_prefix
    names = [name for name, child in model.named_children()
             if name != prefix and any(True for _ in child.parameters())]
    for parameter in getattr(model, "maskbench_new_parameters", ()):
        if parameter.startswith(prefix + "."):
            module = parameter.rpartition(".")[0]
            if module not in names:
                names.append(module)
    return names


def load_base(description: dict[str, Any], directory: str | Path, base: str | None,
              fingerprints: dict[tuple[str, ...], str] | None = None) -> nn.Module:
    """The base model with the saved head's class and labels, refused unless it is the model trained on."""
    from maskbench.data.models import WEIGHTS_DTYPE
    from maskbench.io.locations import resolve_model

    base_name = base or description["base_model"]
    model_class = model_class_of(description, directory)
    model = model_class.from_pretrained(resolve_model(base_name), dtype=WEIGHTS_DTYPE,
                                         **head_config_kwargs(description))
    check_base(model, description, directory, base_name, fingerprints)
    return model


def check_base(model: nn.Module, description: dict[str, Any], directory: str | Path, base_name: str,
               fingerprints: dict[tuple[str, ...], str] | None = None) -> None:
    """Refuse a base model whose frozen block weights differ from those the artefact was trained on
    (:func:`maskbench.training.artefact.check_base`, told the model's own blocks: another number is another model)."""
    try:
        found: tuple[str, ...] = tuple(fingerprint_layers(model))
    except (ConfigError, AttributeError):
        found = ()
    artefact.check_base(model, description, directory, base_name, fingerprints, layers=found)


def finish_loading(model: nn.Module, description: dict[str, Any], device: str | torch.device | None) -> nn.Module:
    model.maskbench_description = description
    model.eval()
    return model.to(device) if device is not None else model
