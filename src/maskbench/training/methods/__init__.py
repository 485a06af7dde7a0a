"""Training methods as a registry: one module per method, each a small :class:`~maskbench.training.methods.base.Method`,
declared in :mod:`maskbench.training.methods.registry` (name, labels, settings; methods of other packages through the
entry-point group ``maskbench.methods``).

A method says how it prepares a pretrained model for training, which parameters train, how it saves and loads its
per-task artefact, and the artefact's size in bytes. Modules load on first use (LoRA and IA3 import ``peft``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from maskbench.training.methods.registry import method_info, registered

if TYPE_CHECKING:
    from maskbench.training.methods.base import Method

__all__ = ["get_method", "method_of_artefact", "methods"]


def get_method(name: str) -> "Method":
    """The registered method ``name`` (ConfigError for an unknown name)."""
    return method_info(name).load()


def methods() -> list["Method"]:
    """Every registered method, in table order (imports them all)."""
    return [info.load() for info in registered().values()]


def method_of_artefact(directory: str | Path) -> "Method":
    """The method whose artefact ``directory`` is (by the files in it)."""
    from maskbench.io.errors import MaskFileError

    directory = Path(directory)
    for method in methods():
        if method.recognises(directory):
            return method
    raise MaskFileError(f"{directory}: not a per-task artefact written by maskbench (of the methods "
                        f"{', '.join(registered())})")
