"""A self-describing mask directory: the masks (bit-packed or compressed), the head, and a JSON description.

The folder has the artefact format of every method (:mod:`maskbench.training.artefact`): a ``maskbench.json`` naming
the method, the base model and its fingerprint, plus masking's own keys (``mask_format``, ``mask_config``, the masked
``layers`` and their shapes, ``head_parameters``, ``sparsity``). Mask directories written before carry the same
description as ``mask_config.json`` (without ``method``); they are read as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from maskbench.data.models import WEIGHTS_DTYPE, weights_load_errors
from maskbench.io.errors import ConfigError, MaskFileError
from maskbench.io.fileio import atomic_directory, read_json_file, sha256_file
from maskbench.io.locations import resolve_model
from maskbench.io.output_dirs import MASK_FILES
from maskbench.training.artefact import (
    DESCRIPTION_FILE,
    LEGACY_MASK_DESCRIPTION,
    base_description,
    base_fingerprint,
    check_base,
    check_files,
    copy_parameters,
    description_path,
    head_config_kwargs,
    model_class_of,
)
from maskbench.training.masking.apply import mask_model, mask_sparsity, masked_layers, merge_masks
from maskbench.training.masking.coding import COMPRESSED, MASK_FORMATS, PACKED_BITS, encode_mask, from_stored, to_stored
from maskbench.training.masking.config import MaskConfig

#: the method a mask directory's description names (:mod:`maskbench.training.methods.masking`)
METHOD = "masking"
#: the description of a mask directory written before masks had the common format (read, never written)
CONFIG_FILE = LEGACY_MASK_DESCRIPTION
MASKS_FILE = "masks.safetensors"
HEAD_FILE = "head.safetensors"
FORMAT_VERSION = 1  # the description's format_version (that of every artefact)


def _head_parameter_names(model: nn.Module) -> list[str]:
    """Parameters a saved mask needs besides the base checkpoint: the head and anything newly initialised."""
    prefix = model.base_model_prefix + "."
    new = set(getattr(model, "maskbench_new_parameters", ()))
    return [name for name, _ in model.named_parameters()
            if (not name.startswith(prefix) or name in new) and not name.endswith("mask_scores")]


def save_masks(model: nn.Module, directory: str | Path, base: str | None = None,
               extra: dict[str, Any] | None = None, mask_format: str = PACKED_BITS) -> Path:
    """Write the model's binary masks, its head and a description to ``directory`` atomically.

    ``base`` is the base model's hub id or path (default: ``model.config.name_or_path``); ``extra`` is stored in
    the JSON description (e.g. task name and label names). ``mask_format`` is ``"packed-bits-v1"`` (1 bit per
    weight) or ``"rice-gaps-v1"`` (lossless, about 0.29 bit per weight at 5 % zeros; see
    :mod:`maskbench.training.masking.coding`).
    """
    if mask_format not in MASK_FORMATS:
        raise ConfigError(f"mask_format: expected one of {MASK_FORMATS}, got {mask_format!r}")
    layers = masked_layers(model)
    if not layers:
        raise MaskFileError("save_masks: the model has no masked layers")
    config: MaskConfig = model.maskbench_mask_config
    head_names = _head_parameter_names(model)
    base_layers = [name for name in layers if f"{name}.weight" not in head_names]
    parameters = dict(model.named_parameters())
    directory = Path(directory)
    with atomic_directory(directory, "masks", MASK_FILES) as tmp:
        save_file({name: to_stored(layer.binary_mask(), mask_format) for name, layer in layers.items()},
                  tmp / MASKS_FILE, metadata={"format": mask_format})
        save_file({name: parameters[name].detach().to("cpu").contiguous() for name in head_names}, tmp / HEAD_FILE)
        description = {
            **base_description(model, METHOD, base, None, base_fingerprint(model, base_layers), base_layers),
            "mask_format": mask_format,
            "mask_config": config.to_dict(),
            "layers": {name: list(layer.weight.shape) for name, layer in layers.items()},
            "head_parameters": head_names,
            "sparsity": mask_sparsity(model),
            "files": {MASKS_FILE: sha256_file(tmp / MASKS_FILE), HEAD_FILE: sha256_file(tmp / HEAD_FILE)},
            **(extra or {}),
        }
        (tmp / DESCRIPTION_FILE).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
    return directory


def read_mask_description(directory: str | Path) -> dict[str, Any]:
    """Read and check a mask directory's JSON and file checksums (raises :class:`MaskFileError`): its
    ``maskbench.json``, or the ``mask_config.json`` of a directory written before masks had the common format."""
    directory = Path(directory)
    config_path = description_path(directory)
    description = read_json_file(config_path, MaskFileError, "a mask directory written by maskbench save_masks")
    if not isinstance(description, dict):
        raise MaskFileError(f"{config_path}: expected a JSON object, got {type(description).__name__}")
    required = ("format_version", "base_model", "model_class", "mask_config", "layers", "files", "base_fingerprint")
    for key in (*required, "method") if config_path.name == DESCRIPTION_FILE else required:
        if key not in description:
            raise MaskFileError(f"{config_path}: key {key!r} is missing")
    if config_path.name == DESCRIPTION_FILE and description["method"] != METHOD:
        raise MaskFileError(f"{config_path}: a {description['method']} artefact, not {METHOD}")
    expected_types = {"layers": dict, "files": dict, "mask_config": dict, "base_model": str, "model_class": str,
                      "base_fingerprint": str}
    for key, kind in expected_types.items():
        if not isinstance(description[key], kind):
            raise MaskFileError(f"{config_path}: key {key!r} must be a JSON {'object' if kind is dict else 'string'}, "
                                f"got {description[key]!r:.60}")
    for name, shape in description["layers"].items():
        if not (isinstance(shape, list) and shape and all(type(n) is int and n > 0 for n in shape)):
            raise MaskFileError(f"{config_path}: layers.{name}: expected a shape (list of positive whole numbers), "
                                f"got {shape!r:.60}")
    try:
        MaskConfig.from_dict(description["mask_config"])
    except ConfigError as error:
        raise MaskFileError(f"{config_path}: mask_config: {error}") from None
    if description["format_version"] != FORMAT_VERSION:
        raise MaskFileError(f"{config_path}: format_version {description['format_version']!r}; "
                            f"this maskbench reads {FORMAT_VERSION}")
    for name, checksum in description["files"].items():
        if name not in (MASKS_FILE, HEAD_FILE) or not isinstance(checksum, str):
            raise MaskFileError(f"{config_path}: files.{name}: expected {MASKS_FILE} or {HEAD_FILE} with a "
                                f"sha256 string")
    check_files(directory, description, config_path)
    return description


def read_masks(directory: str | Path, description: dict[str, Any],
               encoded: bool = False) -> tuple[dict[str, torch.Tensor | bytes], dict[str, torch.Tensor]]:
    """Masks (by layer) and head tensors of a directory checked by :func:`read_mask_description`.

    Masks are bool tensors, or with ``encoded`` :func:`~maskbench.training.masking.coding.encode_mask` bytes (how
    :class:`~maskbench.MultiTaskModel` keeps many tasks in memory); either way every mask is decoded once, one layer
    at a time, so that bad data is refused here.
    """
    directory = Path(directory)
    mask_format = description.get("mask_format", PACKED_BITS)
    if mask_format not in MASK_FORMATS:
        raise MaskFileError(f"{description_path(directory)}: unknown mask_format {mask_format!r}; "
                            f"this maskbench reads {MASK_FORMATS}")
    try:
        stored = load_file(directory / MASKS_FILE)
        head = load_file(directory / HEAD_FILE)
    except (SafetensorError, OSError) as error:
        raise MaskFileError(f"{directory}: cannot read mask files ({error})") from None
    masks: dict[str, torch.Tensor | bytes] = {}
    for name, shape in description["layers"].items():
        if name not in stored:
            raise MaskFileError(f"{directory / MASKS_FILE}: mask of layer {name} is missing")
        try:
            mask = from_stored(stored[name], tuple(shape), mask_format)
        except ValueError as error:
            raise MaskFileError(f"{directory / MASKS_FILE}: layer {name}: {error}") from None
        if not encoded:
            masks[name] = mask
        elif mask_format == COMPRESSED:
            masks[name] = stored[name].numpy().tobytes()
        else:
            masks[name] = encode_mask(mask)
    return masks, head


def load_masked_model(directory: str | Path, base: str | None = None, merge: bool = True,
                      device: str | torch.device | None = None) -> nn.Module:
    """Rebuild a masked model for inference from its base model and a directory written by :func:`save_masks`.

    ``base`` overrides the recorded base model name/path. With ``merge`` (default) the masks are multiplied into
    the weights and a plain Hugging Face model is returned; otherwise the :class:`MaskedLinear` layers stay.
    """
    directory = Path(directory)
    description = read_mask_description(directory)
    base_name = base or description["base_model"]
    model_class = model_class_of(description, directory)
    path = resolve_model(base_name)
    with weights_load_errors(base_name, path, "base model"):
        model = model_class.from_pretrained(path, dtype=WEIGHTS_DTYPE, **head_config_kwargs(description))
    mask_model(model, MaskConfig.from_dict(description["mask_config"]))
    layers = masked_layers(model)
    if set(layers) != set(description["layers"]):
        raise MaskFileError(f"{directory}: the masked layers of base model {base_name!r} differ from the saved ones "
                            f"(the masks belong to another architecture)")
    check_base(model, description, directory, base_name)
    masks, head = read_masks(directory, description)
    copy_parameters(model, head, directory / HEAD_FILE)
    for name, layer in layers.items():
        layer.set_binary_mask(masks[name])
    if merge:
        merge_masks(model)
    model.maskbench_mask_description = model.maskbench_description = description
    model.eval()
    return model.to(device) if device is not None else model
