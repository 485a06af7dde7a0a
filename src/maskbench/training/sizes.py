"""Artefact sizes: bytes and values of saved tensor files, of a run's masks (in every mask format) and of a LoRA,
IA3 or BitFit artefact, and the reference sizes of a pretrained and a finetuned model (Tables 2, 5, 8, 9, Fig. 3).

Files are measured from their safetensors headers; nothing is loaded that the measurement does not need.
"""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.io.errors import DataError
from maskbench.io.fileio import write_json

BYTES_PER_MB = 1_000_000  # the paper's units: KB = 1,000 bytes, MB = 1,000,000 bytes


def safetensors_summary(path: str | Path) -> dict[str, int]:
    """Bytes on disk and number of stored values of a safetensors file, read from its header (no tensors loaded)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable safetensors file ({error})") from None
    values = sum(int(np.prod(entry["shape"])) for name, entry in header.items() if name != "__metadata__")
    return {"bytes": path.stat().st_size, "values": values, "tensors": len(header) - ("__metadata__" in header)}


def mask_artefact_sizes(mask_dir: str | Path) -> dict[str, int]:
    """Sizes of a saved mask directory: mask bits (one per masked weight), their file, and the head's file."""
    from maskbench.training.artefact import description_path as description_file

    mask_dir = Path(mask_dir)
    description_path = description_file(mask_dir)
    if not description_path.is_file():
        raise DataError(f"{description_path}: missing; expected the masks saved by a masking run")
    description = json.loads(description_path.read_text())
    mask_bits = sum(int(np.prod(shape)) for shape in description["layers"].values())
    masks = safetensors_summary(mask_dir / "masks.safetensors")
    head = safetensors_summary(mask_dir / "head.safetensors")
    return {"mask_bits": mask_bits, "mask_bytes": masks["bytes"], "head_parameters": head["values"],
            "head_bytes": head["bytes"],
            "config_bytes": description_path.stat().st_size}


def mask_bytes_by_format(mask_dir: str | Path) -> dict[str, int]:
    """Bytes of the masks file in every mask format (the run's file, and the others written to a scratch file)."""
    from safetensors.torch import save_file

    from maskbench.training.masking.coding import MASK_FORMATS, to_stored
    from maskbench.training.masking.serialization import MASKS_FILE, read_mask_description, read_masks

    mask_dir = Path(mask_dir)
    description = read_mask_description(mask_dir)
    stored_format = description.get("mask_format", MASK_FORMATS[0])
    sizes = {stored_format: (mask_dir / MASKS_FILE).stat().st_size}
    masks = None
    for mask_format in MASK_FORMATS:
        if mask_format in sizes:
            continue
        masks = masks if masks is not None else read_masks(mask_dir, description)[0]
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / MASKS_FILE
            save_file({name: to_stored(mask, mask_format) for name, mask in masks.items()}, path,
                      metadata={"format": mask_format})
            sizes[mask_format] = path.stat().st_size
    return {mask_format: sizes[mask_format] for mask_format in MASK_FORMATS}


def method_artefact_sizes(run_dir: str | Path, method: Any) -> dict[str, int]:
    """Values and bytes of the tensor files of a run's artefact (a peft adapter includes the head); ``method``: the
    run's :class:`~maskbench.training.methods.base.Method` (its ``artefact`` folder and ``tensor_files``)."""
    directory = Path(run_dir) / method.artefact
    summaries = []
    for name in method.tensor_files:
        if not (directory / name).is_file():
            raise DataError(f"{directory / name}: missing; expected the artefact saved by a {method.name} run")
        summaries.append(safetensors_summary(directory / name))
    return {"task_parameters": sum(s["values"] for s in summaries), "task_bytes": sum(s["bytes"] for s in summaries)}


def reference_model_sizes(model: str, task: str, scratch: str | Path) -> dict[str, Any]:
    """Save ``model`` with ``task``'s head as finetuning does (``save_pretrained``) and its encoder alone (the copy
    that masking shares across tasks) under ``scratch``, measure both files, and delete them again.

    A finetuned model has exactly these tensors (only their values differ), so the file sizes are those of the
    finetuned artefacts without keeping a full model per run.
    """
    from maskbench.data import tasks
    from maskbench.data.models import load_model

    spec = tasks.get_task(task)
    network = load_model(model, spec.kind, spec.label_names)
    prefix = network.base_model_prefix + "."
    parameters = dict(network.named_parameters())
    encoder = sum(p.numel() for name, p in parameters.items() if name.startswith(prefix))
    Path(scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".reference.", dir=scratch) as tmp:
        network.save_pretrained(Path(tmp) / "finetuned")
        network.base_model.save_pretrained(Path(tmp) / "pretrained")
        finetuned = safetensors_summary(Path(tmp) / "finetuned" / "model.safetensors")
        pretrained = safetensors_summary(Path(tmp) / "pretrained" / "model.safetensors")
    return {"model": model, "task": task, "kind": spec.kind, "num_labels": len(spec.label_names),
            "pretrained_parameters": encoder, "pretrained_bytes": pretrained["bytes"],
            "head_parameters": sum(p.numel() for p in parameters.values()) - encoder,
            "finetuned_parameters": finetuned["values"], "finetuned_bytes": finetuned["bytes"]}


def write_reference_sizes(model: str, task: str, out: str | Path) -> dict[str, Any]:
    """Workflow step: :func:`reference_model_sizes` to ``out`` (JSON); the model files are removed again."""
    out = Path(out)
    sizes = reference_model_sizes(model, task, out.parent)
    write_json(out, sizes)
    return sizes
