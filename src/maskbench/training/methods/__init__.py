"""Training methods as a registry: one module per method, each a small :class:`~maskbench.training.methods.base.Method`,
declared in :mod:`maskbench.training.method_registry` (name, labels, settings; methods of other packages through the
entry-point group ``maskbench.methods``).

A method says how it prepares a pretrained model for training, which parameters train, how it saves and loads its
per-task artefact, and the artefact's size in bytes. Modules load on first use (LoRA and IA3 import ``peft``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskbench.io.fileio import write_json
from maskbench.records import METRICS_FILE, read_run_record
from maskbench.training.method_registry import method_info, registered

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


def run_artefact_sizes(run_dir: str | Path, method: str) -> dict[str, Any] | None:
    """What the aggregate step reports of a run's per-task artefact (the method's
    :meth:`~maskbench.training.methods.base.Method.artefact_sizes`: for masking the mask bits, the file sizes and the
    masks' bytes in every mask format; for the others the values and bytes of the artefact's tensors; None for
    finetuning, whose copy is measured once per task, :func:`maskbench.training.sizes.reference_model_sizes`).

    A run records this in its ``metrics.json`` (``artefact_sizes``), so that its sizes are known also where the
    artefact itself is not kept (the committed reference results hold records, not masks or adapters).
    """
    return get_method(method).artefact_sizes(run_dir)


def record_artefact_sizes(run_dir: str | Path) -> dict[str, Any] | None:
    """Add ``artefact_sizes`` to the ``metrics.json`` of a run finished before runs recorded it, measured from the
    artefact on disk (which must still be there); a record that has them is left as it is."""
    path = Path(run_dir) / METRICS_FILE
    record = read_run_record(path)
    if "artefact_sizes" not in record:
        record["artefact_sizes"] = run_artefact_sizes(run_dir, record["method"])
        write_json(path, record, "metrics")
    return record["artefact_sizes"]
