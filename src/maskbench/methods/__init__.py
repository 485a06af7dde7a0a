"""Training methods as a registry: one module per method, each a small :class:`~maskbench.methods.base.Method`.

A method says how it prepares a pretrained model for training, which parameters train, how it saves and loads its
per-task artefact, and the artefact's size in bytes. Modules load on first use (LoRA and IA3 import ``peft``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from maskbench.errors import ConfigError

if TYPE_CHECKING:
    from maskbench.methods.base import Method

#: method name -> module holding its class ``METHOD``; the names are :data:`maskbench.settings.METHODS`
MODULES = {
    "masking": "maskbench.methods.masking",
    "finetuning": "maskbench.methods.finetuning",
    "lora": "maskbench.methods.lora",
    "bitfit": "maskbench.methods.bitfit",
    "ia3": "maskbench.methods.ia3",
}

__all__ = ["MODULES", "get_method", "method_of_artefact"]


def get_method(name: str) -> "Method":
    """The registered method ``name`` (ConfigError for an unknown name)."""
    if name not in MODULES:
        raise ConfigError(f"method: expected one of {tuple(MODULES)}, got {name!r}")
    return importlib.import_module(MODULES[name]).METHOD


def method_of_artefact(directory) -> "Method":
    """The method whose artefact ``directory`` is (by the files in it)."""
    from pathlib import Path

    from maskbench.errors import MaskFileError

    directory = Path(directory)
    for name in MODULES:
        method = get_method(name)
        if method.recognises(directory):
            return method
    raise MaskFileError(f"{directory}: not a per-task artefact written by maskbench (masks, LoRA, IA3 or BitFit)")
