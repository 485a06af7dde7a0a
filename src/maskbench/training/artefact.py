"""The one artefact format of every method: a folder with the method's tensor files beside a JSON description,
``maskbench.json`` (:data:`DESCRIPTION_FILE`).

The description names the method that wrote the folder (``method``), the base model it was trained on, the head's
class and labels, a fingerprint of the base model's frozen weights (``base_fingerprint`` over
``fingerprint_layers``), the checksums of the tensor files (``files``) and the task's extras; a method adds its own
keys (masking: the mask format, the masked layers' shapes, the mask settings). :func:`check_base` refuses a base model
that is not the one trained on, for every method alike.

Mask directories written before masks used this format carry ``mask_config.json`` (:data:`LEGACY_MASK_DESCRIPTION`)
instead, with the same keys but ``method``; they are still read
(:func:`maskbench.training.masking.serialization.read_mask_description`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

from maskbench import __version__
from maskbench.io.errors import MaskFileError
from maskbench.io.fileio import read_json_file, sha256_file

#: the JSON description every artefact carries next to its tensors
DESCRIPTION_FILE = "maskbench.json"
DESCRIPTION_VERSION = 1
#: the description of a mask directory written before masks used :data:`DESCRIPTION_FILE` (read, never written)
LEGACY_MASK_DESCRIPTION = "mask_config.json"
#: the keys every description has
REQUIRED_KEYS = ("format_version", "method", "base_model", "model_class", "base_fingerprint", "fingerprint_layers",
                 "files")


def description_path(directory: str | Path) -> Path:
    """The description file of an artefact folder: :data:`DESCRIPTION_FILE`, or an old mask directory's
    :data:`LEGACY_MASK_DESCRIPTION` where only that exists."""
    directory = Path(directory)
    legacy = directory / LEGACY_MASK_DESCRIPTION
    return legacy if legacy.is_file() and not (directory / DESCRIPTION_FILE).is_file() else directory / DESCRIPTION_FILE


def artefact_method(directory: str | Path) -> str | None:
    """The method named by an artefact's :data:`DESCRIPTION_FILE` (None: no such file, or not one maskbench wrote)."""
    path = Path(directory) / DESCRIPTION_FILE
    if not path.is_file():
        return None
    try:
        method = json.loads(path.read_text()).get("method")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    return method if isinstance(method, str) else None


def base_fingerprint(model: nn.Module, layer_names: list[str]) -> str:
    """SHA-256 over the names, shapes and bytes of the frozen base weights of ``layer_names``."""
    digest = hashlib.sha256()
    for name in layer_names:
        weight = model.get_submodule(name).weight.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(weight.shape)}:{weight.dtype}".encode())
        digest.update(weight.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def base_description(model: nn.Module, method: str, base: str | None, extra: dict[str, Any] | None,
                     fingerprint: str, layers: list[str]) -> dict[str, Any]:
    """The JSON description of an artefact: base model, head class and labels, base fingerprint, task extras."""
    return {
        "format_version": DESCRIPTION_VERSION,
        "method": method,
        "maskbench_version": __version__,
        "base_model": base or model.config.name_or_path,
        "model_class": type(model).__name__,
        "model_config": {key: value for key, value in model.config.to_diff_dict().items()
                         if key in ("num_labels", "id2label", "label2id", "model_type", "architectures")},
        "base_fingerprint": fingerprint,
        "fingerprint_layers": layers,
        **(extra or {}),
    }


def write_description(directory: Path, description: dict[str, Any], files: tuple[str, ...]) -> None:
    """Write ``description`` with the checksums of ``files`` (inside an atomic directory)."""
    description = {**description, "files": {name: sha256_file(directory / name) for name in files}}
    (directory / DESCRIPTION_FILE).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")


def read_description(directory: str | Path, method: str) -> dict[str, Any]:
    """Read and check an artefact's description and file checksums (raises :class:`MaskFileError`)."""
    directory = Path(directory)
    path = directory / DESCRIPTION_FILE
    description = read_json_file(path, MaskFileError, f"a {method} artefact written by maskbench")
    if not isinstance(description, dict):
        raise MaskFileError(f"{path}: expected a JSON object, got {type(description).__name__}")
    for key in REQUIRED_KEYS:
        if key not in description:
            raise MaskFileError(f"{path}: key {key!r} is missing")
    if description["format_version"] != DESCRIPTION_VERSION:
        raise MaskFileError(f"{path}: format_version {description['format_version']!r}; this maskbench reads "
                            f"{DESCRIPTION_VERSION}")
    if description["method"] != method:
        raise MaskFileError(f"{path}: a {description['method']} artefact, not {method}")
    check_files(directory, description, path)
    return description


def check_files(directory: Path, description: dict[str, Any], path: Path) -> None:
    """Refuse a description whose ``files`` is not an object of checksums, or a file missing or changed."""
    if not isinstance(description["files"], dict):
        raise MaskFileError(f"{path}: key 'files' must be a JSON object, got {description['files']!r:.60}")
    for name, checksum in description["files"].items():
        if not isinstance(checksum, str) or Path(name).name != name:
            raise MaskFileError(f"{path}: files.{name}: expected a file of the folder with a sha256 string")
        if not (directory / name).is_file():
            raise MaskFileError(f"{directory / name}: missing")
        if sha256_file(directory / name) != checksum:
            raise MaskFileError(f"{directory / name}: checksum mismatch (file truncated or corrupted)")


#: the heads maskbench saves artefacts of: class-name suffix -> the task kinds it serves
HEAD_SUFFIXES = {"ForSequenceClassification": ("single", "pair"), "ForTokenClassification": ("tagging",),
                 "ForMultipleChoice": ("multiple_choice",)}


def expected_model_classes(description: dict[str, Any]) -> list[str]:
    """The Hugging Face classes an artefact may name: the head classes (of its task kind, where recorded) of its
    recorded model type; of any model type when the description does not say (an older directory)."""
    from transformers.models.auto import modeling_auto

    kind = description.get("kind")
    suffixes = [suffix for suffix, kinds in HEAD_SUFFIXES.items() if kind is None or kind in kinds] or \
        list(HEAD_SUFFIXES)
    model_config = description.get("model_config")
    model_type = model_config.get("model_type") if isinstance(model_config, dict) else None
    mappings = {"ForSequenceClassification": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
                "ForTokenClassification": modeling_auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
                "ForMultipleChoice": modeling_auto.MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES}
    if isinstance(model_type, str):
        names = [mappings[suffix].get(model_type) for suffix in suffixes]
        if any(names):
            return [name for name in names if name]
    return [f"*{suffix}" for suffix in suffixes]


def model_class_of(description: dict[str, Any], directory: str | Path) -> type[nn.Module]:
    """The Hugging Face model class an artefact was saved from: one of :func:`expected_model_classes` (an edited
    ``model_class`` is refused naming the file and the classes expected)."""
    name = description["model_class"]
    expected = expected_model_classes(description)
    allowed = name in expected or any(pattern.startswith("*") and name.endswith(pattern[1:]) for pattern in expected)
    model_class = getattr(transformers, name, None) if allowed and name.isidentifier() else None
    if not (isinstance(model_class, type) and issubclass(model_class, transformers.PreTrainedModel)):
        kind = description.get("kind")
        what = "these masks" if "mask_config" in description else "this artefact"
        raise MaskFileError(f"{description_path(directory)}: model_class {name!r} is not a model {what} can be "
                            f"loaded into; expected {' or '.join(expected)}{f' (a {kind!r} task)' if kind else ''}")
    return model_class


def head_config_kwargs(description: dict[str, Any]) -> dict[str, Any]:
    """``from_pretrained``/config keyword arguments that rebuild the saved head (labels and their names)."""
    kwargs = {k: v for k, v in description.get("model_config", {}).items()
              if k in ("num_labels", "id2label", "label2id")}
    if "id2label" in kwargs:
        kwargs["id2label"] = {int(k): v for k, v in kwargs["id2label"].items()}
    return kwargs


def copy_parameters(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Copy an artefact's saved tensors (file ``path``) into ``model``'s parameters of the same names; a tensor
    without a parameter of its name and shape is a :class:`MaskFileError` naming the file."""
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            if name not in parameters or parameters[name].shape != tensor.shape:
                raise MaskFileError(f"{path}: parameter {name} does not fit the model")
            parameters[name].copy_(tensor)


def _linear(model: nn.Module, name: str) -> nn.Linear | None:
    try:
        layer = model.get_submodule(name)
    except AttributeError:
        return None
    layer = getattr(layer, "base_layer", layer)  # a layer that also carries peft adapters (MultiTaskModel)
    return layer if isinstance(layer, nn.Linear) else None


def check_base(model: nn.Module, description: dict[str, Any], directory: str | Path, base_name: str,
               fingerprints: dict[tuple[str, ...], str] | None = None,
               layers: list[str] | tuple[str, ...] | None = None) -> None:
    """Refuse a base model whose layers or frozen weights differ from those the artefact was trained on.

    ``model`` must still hold the unadapted base weights. Every layer the description records (the shapes of
    ``layers`` where it has them, as masks do; else its ``fingerprint_layers``) must be a linear layer of the model
    (of that shape); ``layers``, where given, are the model's own layers of the kind ``fingerprint_layers`` names
    (another number of blocks is another model). ``fingerprints`` caches :func:`base_fingerprint` by layer list, so
    that many artefacts checked against one model hash its weights (285 MB for bert-base) once.
    """
    masks = "mask_config" in description
    what = "these masks" if masks else "this artefact"
    recorded = tuple(description["fingerprint_layers"])
    shapes = description.get("layers") if isinstance(description.get("layers"), dict) else {}
    if layers is not None and tuple(layers) != recorded:
        raise MaskFileError(f"{directory}: base model {base_name!r} has other blocks than the model this artefact "
                            f"was trained on (another architecture or size)")
    for name in shapes or recorded:
        layer = _linear(model, name)
        if layer is None:
            raise MaskFileError(f"{directory}: base model {base_name!r} has no linear layer {name} ("
                                f"{'the masks belong' if masks else 'this artefact belongs'} to another architecture)")
        if shapes and list(layer.weight.shape) != shapes[name]:
            raise MaskFileError(f"{directory}: layer {name} has shape {list(layer.weight.shape)} in base model "
                                f"{base_name!r} but {shapes[name]} in the mask file (another base model)")
    fingerprints = {} if fingerprints is None else fingerprints
    if recorded not in fingerprints:
        fingerprints[recorded] = base_fingerprint(model, list(recorded))
    if fingerprints[recorded] != description["base_fingerprint"]:
        raise MaskFileError(f"{directory}: base model {base_name!r} is not the model {what} "
                            f"{'were' if masks else 'was'} trained on (fingerprint of its frozen weights differs)")
