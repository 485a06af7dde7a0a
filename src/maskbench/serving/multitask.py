"""Many tasks served from one backbone: one copy of the pretrained weights plus a small mask and head per task.

LoRA and IA3 tasks (artefacts of :mod:`maskbench.training.methods`) are served from the same backbone through peft's
adapter switching: each task's adapter is injected into the shared backbone under its own adapter name, and activating a
task enables its adapter in the layers that have it and disables the adapters elsewhere (all of them for a task
without adapter). Nothing is merged into the backbone's weights, so switching back and forth is exact, and a switch
touches only the wrapped layers whose state changes. One MultiTaskModel serves masks and adapters of one peft method
(LoRA or IA3), since peft wraps a layer for one adapter type. BitFit tasks are served like a head that overrides
backbone parameters: activating one copies its biases into the backbone, and the backbone's own values are put back
when another task is activated.

How the masks are applied was chosen by measurement (``benchmarks/multitask.py``): the backbone's weights are held
once and the active task's masks are applied to them in place. Switching tasks puts back the weights the previous
task zeroed (kept aside while it is active: their int32 positions and values, 8 bytes per masked-out weight) and
zeroes the new task's. Every task's masks stay compressed in memory
(:func:`maskbench.training.masking.coding.encode_mask`, about 0.3 bit per weight) and are decoded when switching.
Between switches the model is a plain Hugging Face model, so throughput equals that of a finetuned model; a merged copy
per task would cost one model of memory per task, and multiplying ``W * mask`` in every forward costs time and a dense
mask per task.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from torch import nn

from maskbench.data.models import WEIGHTS_DTYPE, load_tokenizer, weights_load_errors
from maskbench.io.errors import ConfigError, DataError, MaskFileError
from maskbench.io.locations import resolve_model
from maskbench.training import artefact
from maskbench.training.artefact import (
    DESCRIPTION_FILE,
    head_config_kwargs,
    model_class_of,
    read_description,
)
from maskbench.training.masking.coding import decode_mask, zero_positions
from maskbench.training.masking.serialization import HEAD_FILE, read_mask_description, read_masks
from maskbench.training.methods.base import Method, check_base

#: the task kinds :meth:`MultiTaskModel.predict` serves (sequence classification heads)
PREDICT_KINDS = ("single", "pair")
#: the state of the adapter layers before the first switch after an adapter was injected (unlike any adapter name)
_UNKNOWN = object()

Text = str | tuple[str, str]


@dataclass
class Prediction:
    """One input's predicted label and the probability of every label."""

    task: str
    label: str
    probabilities: dict[str, float]


@dataclass
class TaskInfo:
    """A loaded task: its kind (``"single"``, ``"pair"``, or None when its mask directory does not say) and labels."""

    name: str
    kind: str | None
    label_names: list[str]
    directory: Path


@dataclass
class _Task:
    info: TaskInfo
    model: nn.Module  # the task's Hugging Face model; its base module is the shared backbone
    shapes: dict[str, tuple[int, ...]]  # masked backbone layers
    masks: dict[str, bytes] = field(repr=False)  # encode_mask() of each masked backbone layer
    overrides: dict[str, torch.Tensor] = field(repr=False)  # tensors (head file, BitFit) that live in the backbone
    adapter: str | None = None  # the task's peft adapter name in the backbone (LoRA/IA3 tasks)


def _flat_bits(weight: torch.Tensor) -> torch.Tensor:
    # An integer view of the same width: numpy has no bfloat16, and integer 0 is +0.0 in every float format.
    return weight.detach().view(-1).view({1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[
        weight.element_size()])


def _gather_and_zero(weight: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
    """The values (as raw bits) of the flattened ``weight`` at ``positions``, which are then set to zero."""
    flat = _flat_bits(weight)
    if flat.device.type == "cpu":
        # numpy indexing runs on one thread; torch's parallel index ops cost ~10x more CPU on index sets this small
        array = flat.numpy()
        values = torch.from_numpy(array[positions])
        array[positions] = 0
        return values
    index = torch.from_numpy(positions).to(flat.device, torch.long)
    values = flat[index]
    flat[index] = 0
    return values


def _scatter(weight: torch.Tensor, positions: np.ndarray, values: torch.Tensor) -> None:
    """Inverse of :func:`_gather_and_zero`: put ``values`` back at ``positions``."""
    flat = _flat_bits(weight)
    if flat.device.type == "cpu":
        flat.numpy()[positions] = values.numpy()
    else:
        flat[torch.from_numpy(positions).to(flat.device, torch.long)] = values



def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an artefact's safetensors file; an unreadable file is a :class:`MaskFileError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise MaskFileError(f"{path.parent}: cannot read {path.name} ({error})") from None

class MultiTaskModel:
    """One pretrained backbone and any number of task masks with their heads; see the module docstring."""

    def __init__(self, base: str, device: str | torch.device | None = None, max_length: int = 128) -> None:
        self.base = base
        self.device = torch.device(device or "cpu")
        self.max_length = max_length
        self._path = resolve_model(base)
        with weights_load_errors(base, self._path, "base model"):
            backbone = transformers.AutoModel.from_pretrained(self._path, dtype=WEIGHTS_DTYPE)
            self.backbone = backbone.to(self.device).eval()
        self.tokenizer = load_tokenizer(base)
        self._tasks: dict[str, _Task] = {}
        self._fingerprints: dict[tuple[str, ...], str] = {}
        self._pristine: dict[str, torch.Tensor] = {}  # backbone values of parameters some task's head overrides
        self._active: str | None = None
        self._undo: dict[str, tuple[np.ndarray, torch.Tensor]] = {}  # zeroed positions and their values, by layer
        self._adapter_method: str | None = None  # the method of the adapters loaded (peft wraps a layer for one)
        self._parameters: dict[str, nn.Parameter] | None = None  # the backbone's, by unwrapped name; see _parameter_map
        self._tuner_layers: list[tuple[nn.Module, frozenset[str]]] = []  # peft layers and the adapters each holds
        self._enabled_adapter: object = None  # the adapter enabled in the peft layers (None: all disabled)

    @classmethod
    def from_masks(cls, base: str, directories: Sequence[str | Path], device: str | torch.device | None = None,
                   max_length: int = 128) -> "MultiTaskModel":
        """Load ``base`` once and every mask directory (written by ``save_masks``) onto it."""
        model = cls(base, device=device, max_length=max_length)
        for directory in directories:
            model.add_task(directory)
        return model

    @property
    def tasks(self) -> dict[str, TaskInfo]:
        return {name: task.info for name, task in self._tasks.items()}

    @property
    def active_task(self) -> str | None:
        return self._active

    def _check_task(self, description: dict, directory: Path) -> tuple[type[nn.Module], str | None, str]:
        """The model class, kind and name of a task to add (refused unless a new sequence classification task)."""
        model_class = model_class_of(description, directory)
        kind = description.get("kind")
        if not model_class.__name__.endswith("ForSequenceClassification") or kind not in (*PREDICT_KINDS, None):
            raise ConfigError(f"{directory}: a {kind or model_class.__name__} task; multi-task prediction serves "
                              f"sequence classification ({', '.join(PREDICT_KINDS)}) tasks")
        name = description.get("task") or directory.name
        if name in self._tasks:
            raise ConfigError(f"{directory}: task {name!r} is already loaded (from {self._tasks[name].info.directory})")
        return model_class, kind, name

    def add_task(self, directory: str | Path) -> str:
        """Load one mask directory or another method's artefact that it serves (``Method.serving``: LoRA/IA3
        adapters, BitFit); returns its task name (its ``task`` entry, else the directory's name)."""
        directory = Path(directory)
        if (directory / DESCRIPTION_FILE).is_file():
            return self._add_method_task(directory)
        return self._add_mask_task(directory)  # a mask directory written before masks had the common format

    def _add_mask_task(self, directory: Path) -> str:
        """Add a mask directory: the backbone's masked layers switch masks per task, the head is the task's own."""
        description = read_mask_description(directory)
        model_class, kind, name = self._check_task(description, directory)
        self._restore()  # the fingerprint is over the unmasked weights
        config = transformers.AutoConfig.from_pretrained(self._path, **head_config_kwargs(description))
        with torch.device("meta"):  # the head's shapes only; its values come from the head file
            model = model_class(config)
        setattr(model, model.base_model_prefix, self.backbone)
        artefact.check_base(model, description, directory, self.base, self._fingerprints)
        masks, head = read_masks(directory, description, encoded=True)
        overrides = self._load_head(model, head, directory / HEAD_FILE)

        prefix = model.base_model_prefix + "."
        shapes = {layer: tuple(shape) for layer, shape in description["layers"].items()}
        with torch.no_grad():
            for layer in [layer for layer in masks if not layer.startswith(prefix)]:
                # the head belongs to this task alone: merge its mask once
                model.get_submodule(layer).weight.mul_(decode_mask(masks.pop(layer), shapes[layer]).to(self.device))
        label_names = description.get("label_names") or [config.id2label[i] for i in range(config.num_labels)]
        info = TaskInfo(name=name, kind=kind, label_names=list(label_names), directory=directory)
        self._tasks[name] = _Task(info=info, model=model, shapes={layer: shapes[layer] for layer in masks},
                                  masks=masks, overrides=overrides)
        return name

    def _parameter_map(self) -> dict[str, nn.Parameter]:
        """The backbone's parameters by their names in the unwrapped model (peft moves a wrapped layer's own
        parameters under ``base_layer``); the adapters' parameters are left out."""
        if self._parameters is None:
            adapter_parameters = {id(parameter) for module, _ in self._tuner_layers
                                  for layer_name in module.adapter_layer_names
                                  for parameter in getattr(module, layer_name).parameters()}
            self._parameters = {name.replace(".base_layer.", "."): parameter
                                for name, parameter in self.backbone.named_parameters()
                                if id(parameter) not in adapter_parameters}
        return self._parameters

    def _load_head(self, model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
        """Load the task's own tensors (its head) into ``model``; returns those that live in the shared backbone
        (keys under the backbone's prefix), which :meth:`activate` copies in, by their name in the backbone."""
        prefix = model.base_model_prefix + "."
        backbone_parameters = self._parameter_map()
        overrides = {}
        for key, tensor in tensors.items():
            if not key.startswith(prefix):
                continue
            inner = key[len(prefix):]
            if inner not in backbone_parameters or backbone_parameters[inner].shape != tensor.shape:
                raise MaskFileError(f"{path}: parameter {key} does not fit the model")
            overrides[inner] = tensor.to(self.device, backbone_parameters[inner].dtype)
            self._pristine.setdefault(inner, backbone_parameters[inner].detach().clone())
        try:
            result = model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(prefix)},
                                           strict=False, assign=True)
        except RuntimeError as error:
            raise MaskFileError(f"{path}: does not fit the model ({error})") from None
        missing = [key for key in result.missing_keys if not key.startswith(prefix)]
        if missing or result.unexpected_keys:
            raise MaskFileError(f"{path}: missing {missing}, unexpected {result.unexpected_keys}")
        model.to(self.device).eval()
        return overrides

    def _add_method_task(self, directory: Path) -> str:
        """Add an artefact with a ``maskbench.json``, as its method serves it (``Method.serving``): masks, a peft
        adapter (LoRA, IA3) or overrides of the backbone's tensors (BitFit)."""
        try:
            method = json.loads((directory / DESCRIPTION_FILE).read_text()).get("method")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
            raise MaskFileError(f"{directory / DESCRIPTION_FILE}: not valid JSON ({error})") from None
        from maskbench.training.method_registry import registered
        from maskbench.training.methods import get_method, methods

        method_ = get_method(method) if isinstance(method, str) and method in registered() else None
        if method_ is not None and method_.serving == "masks":
            return self._add_mask_task(directory)
        if method_ is None or method_.serving not in ("adapter", "overrides"):
            served = [m.name for m in methods() if m.serving is not None]
            raise ConfigError(f"{directory}: a {method} artefact; multi-task prediction serves the artefacts of "
                              f"{', '.join(served)}")
        if method_.serving == "overrides":
            return self._add_override_task(directory, method_)
        return self._add_adapter_task(directory, method_)

    def _task_model(self, description: dict,
                    directory: Path) -> tuple[nn.Module, transformers.PretrainedConfig, str | None, str]:
        """A task's model around the shared backbone (its head still on the meta device), checked against the
        artefact's base model: (model, config, kind, task name)."""
        model_class, kind, name = self._check_task(description, directory)
        self._restore()
        config = transformers.AutoConfig.from_pretrained(self._path, **head_config_kwargs(description))
        with torch.device("meta"):
            model = model_class(config)
        setattr(model, model.base_model_prefix, self.backbone)
        check_base(model, description, directory, self.base, self._fingerprints)
        return model, config, kind, name

    def _add_override_task(self, directory: Path, method: Method) -> str:
        """Load an artefact of tensors that replace the backbone's (BitFit's biases) and the head: they become
        overrides of the backbone's parameters, the head the task's own."""
        description = read_description(directory, method.name)
        model, config, kind, name = self._task_model(description, directory)
        (weights,) = method.tensor_files
        tensors = _read_tensors(directory / weights)
        overrides = self._load_head(model, tensors, directory / weights)
        label_names = description.get("label_names") or [config.id2label[i] for i in range(config.num_labels)]
        info = TaskInfo(name=name, kind=kind, label_names=list(label_names), directory=directory)
        self._tasks[name] = _Task(info=info, model=model, shapes={}, masks={}, overrides=overrides)
        return name

    def _add_adapter_task(self, directory: Path, method_: Method) -> str:
        """Inject a LoRA or IA3 artefact's adapter into the shared backbone and load its head."""
        from peft import PeftConfig, inject_adapter_in_model, set_peft_model_state_dict

        method, (adapter_weights,) = method_.name, method_.tensor_files
        if self._adapter_method not in (None, method):
            raise ConfigError(f"{directory}: a {method} adapter, but this model already serves "
                              f"{self._adapter_method} adapters (peft wraps a layer for one method)")
        description = read_description(directory, method)
        model, config, kind, name = self._task_model(description, directory)
        state = _read_tensors(directory / adapter_weights)
        state = {key.removeprefix("base_model.model."): tensor for key, tensor in state.items()}
        prefix = model.base_model_prefix + "."
        head = {key: tensor for key, tensor in state.items() if not key.startswith(prefix)}
        adapter = {key: tensor for key, tensor in state.items() if key.startswith(prefix)}
        peft_config = PeftConfig.from_pretrained(str(directory))
        peft_config.modules_to_save, peft_config.inference_mode = None, True  # the head is the task's own
        adapter_name = f"task_{len(self._tasks)}"
        inject_adapter_in_model(peft_config, model, adapter_name=adapter_name)
        self._parameters, self._enabled_adapter = None, _UNKNOWN  # layers were wrapped and their adapters set
        self._tuner_layers = self._find_tuner_layers()
        result = set_peft_model_state_dict(model, adapter, adapter_name=adapter_name)
        if result.unexpected_keys:
            raise MaskFileError(f"{directory / adapter_weights}: tensors {result.unexpected_keys[:3]} do not fit the "
                                f"model")
        try:
            loaded = model.load_state_dict(head, strict=False, assign=True)
        except RuntimeError as error:
            raise MaskFileError(f"{directory / adapter_weights}: the head does not fit the model ({error})") from None
        missing = [key for key in loaded.missing_keys if not key.startswith(prefix)]
        if missing:
            raise MaskFileError(f"{directory / adapter_weights}: head parameters {missing} are missing")
        model.to(self.device).eval()
        self._adapter_method = method
        label_names = description.get("label_names") or [config.id2label[i] for i in range(config.num_labels)]
        info = TaskInfo(name=name, kind=kind, label_names=list(label_names), directory=directory)
        self._tasks[name] = _Task(info=info, model=model, shapes={}, masks={}, overrides={}, adapter=adapter_name)
        return name

    def _find_tuner_layers(self) -> list[tuple[nn.Module, frozenset[str]]]:
        from peft.tuners.tuners_utils import BaseTunerLayer

        return [(module, frozenset(getattr(module, module.adapter_layer_names[0])))
                for module in self.backbone.modules() if isinstance(module, BaseTunerLayer)]

    def _switch_adapters(self, adapter: str | None) -> None:
        """Enable ``adapter`` in every backbone layer that has it; disable all others (None: plain backbone).

        Only layers whose state changes are touched (peft's ``set_adapter`` and ``enable_adapters`` walk every
        adapter a layer holds): nothing at all between two tasks without adapters."""
        if adapter == self._enabled_adapter:
            return
        for module, adapters in self._tuner_layers:
            if adapter in adapters:
                if module.disable_adapters:
                    module.enable_adapters(True)
                module.set_adapter(adapter, inference_mode=True)
            elif self._enabled_adapter in adapters or self._enabled_adapter is _UNKNOWN:
                module.enable_adapters(False)
        self._enabled_adapter = adapter

    def _task(self, task: str) -> _Task:
        if task not in self._tasks:
            raise ConfigError(f"unknown task {task!r}; loaded tasks: {sorted(self._tasks)}")
        return self._tasks[task]

    def _restore(self) -> None:
        """Put back the weights the active task zeroed or overrode (the backbone is then unmasked)."""
        if self._active is None:
            return
        task = self._tasks[self._active]
        with torch.no_grad():
            for layer, (positions, values) in self._undo.items():
                _scatter(task.model.get_submodule(layer).weight, positions, values)
            if task.overrides:
                parameters = self._parameter_map()
                for name in task.overrides:
                    parameters[name].copy_(self._pristine[name])
        self._undo, self._active = {}, None

    def activate(self, task: str) -> nn.Module:
        """Apply ``task``'s masks and head to the backbone (nothing to do when it is active); returns its model."""
        entry = self._task(task)
        if self._active == task:
            return entry.model
        self._restore()
        self._switch_adapters(entry.adapter)
        with torch.no_grad():
            if entry.overrides:
                parameters = self._parameter_map()
                for name, value in entry.overrides.items():
                    parameters[name].copy_(value)
            for layer, data in entry.masks.items():
                weight = entry.model.get_submodule(layer).weight
                positions = zero_positions(data, entry.shapes[layer])
                if weight.numel() < 2**31:  # half the memory while the task is active
                    positions = positions.astype(np.int32)
                self._undo[layer] = (positions, _gather_and_zero(weight, positions))
        self._active = task
        return entry.model

    def _encode(self, entry: _Task, texts: Sequence[Text]) -> transformers.BatchEncoding:
        is_pair = [isinstance(t, (tuple, list)) and len(t) == 2 and all(isinstance(s, str) for s in t) for t in texts]
        name, kind = entry.info.name, entry.info.kind
        options = dict(padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        if kind == "pair" or (kind is None and all(is_pair)):
            if not all(is_pair):
                raise DataError(f"task {name!r} classifies sentence pairs; expected (text, text_pair) tuples")
            first, second = zip(*texts)
            return self.tokenizer(list(first), list(second), **options)
        if not all(isinstance(t, str) for t in texts):
            raise DataError(f"task {name!r} classifies single texts; expected strings")
        return self.tokenizer(list(texts), **options)

    def logits(self, task: str, texts: Sequence[Text]) -> torch.Tensor:
        """Logits of one batch (texts, or (text, text_pair) pairs for pair tasks), on the CPU."""
        entry = self._task(task)
        model = self.activate(task)
        if not texts:
            return torch.empty(0, len(entry.info.label_names))
        inputs = self._encode(entry, texts).to(self.device)
        with torch.inference_mode():
            return model(**inputs).logits.float().cpu()

    def predict(self, task: str, texts: Sequence[Text], batch_size: int = 32) -> list[Prediction]:
        """Label and per-label probabilities of every text (a pair task takes (text, text_pair) tuples)."""
        labels = self._task(task).info.label_names
        predictions = []
        for start in range(0, len(texts), batch_size):
            probabilities = self.logits(task, texts[start:start + batch_size]).softmax(dim=-1)
            for row in probabilities.tolist():
                predictions.append(Prediction(task=task, label=labels[int(np.argmax(row))],
                                              probabilities=dict(zip(labels, row))))
        return predictions


@dataclass
class Request:
    """One input line of a prediction file; ``id`` (any JSON scalar, when ``has_id``) goes back out with its
    prediction."""

    line: int
    task: str
    text: Text
    id: str | int | float | bool | None = None
    has_id: bool = False


#: ``--input -``: the requests are read from standard input
STDIN = "-"


def read_requests(path: str | Path) -> list[Request]:
    """Parse a JSONL file (``"-"``: standard input) with one ``{"task": ..., "text": ..., "text_pair": ...,
    "id": ...}`` object per line (pair and id optional; an id is any JSON scalar). Every line is checked before
    any prediction is made."""
    if str(path) == STDIN:
        import sys

        where, data = "<stdin>", sys.stdin.buffer.read()
    else:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: input file not found")
        where, data = str(path), path.read_bytes()
    requests = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{where}:{number}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}:{number}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}:{number}: expected a JSON object with keys 'task' and 'text'")
        for key in ("task", "text"):
            if not isinstance(record.get(key), str):
                raise DataError(f"{where}:{number}: key {key!r} is missing or not a string")
        pair = record.get("text_pair")
        if pair is not None and not isinstance(pair, str):
            raise DataError(f"{where}:{number}: key 'text_pair' is not a string")
        identifier = record.get("id")
        if not (identifier is None or isinstance(identifier, (str, int, bool))
                or (isinstance(identifier, float) and math.isfinite(identifier))):
            raise DataError(f"{where}:{number}: key 'id' must be a JSON string, number, boolean or null, got "
                            f"{json.dumps(identifier)[:60]}")
        text = record["text"] if pair is None else (record["text"], pair)
        requests.append(Request(line=number, task=record["task"], text=text, id=identifier, has_id="id" in record))
    if not requests:
        raise DataError(f"{where}: no input lines")
    return requests


def check_requests(model: MultiTaskModel, requests: Sequence[Request]) -> None:
    """Refuse a request for a task the model does not serve, or with/without a pair against the task's kind."""
    tasks = model.tasks
    for request in requests:
        info = tasks.get(request.task)
        if info is None:
            raise ConfigError(f"line {request.line}: unknown task {request.task!r}; loaded tasks: {sorted(tasks)}")
        is_pair = isinstance(request.text, tuple)
        if info.kind is not None and is_pair != (info.kind == "pair"):
            needs = "needs 'text_pair'" if info.kind == "pair" else "takes no 'text_pair'"
            raise DataError(f"line {request.line}: task {request.task!r} is a {info.kind} task and {needs}")


#: requests per chunk of :func:`iter_predictions`, in batches: a task is activated once per chunk
CHUNK_BATCHES = 16


def iter_predictions(model: MultiTaskModel, requests: Sequence[Request], batch_size: int = 32,
                     chunk_size: int | None = None) -> Iterator[list[tuple[Request, Prediction]]]:
    """Predictions in input order, one chunk of ``chunk_size`` requests (default ``CHUNK_BATCHES`` batches) at a
    time, so that a caller can write them as they come; within a chunk the inputs are grouped by task (each task
    is activated once per chunk). Every request is checked before the first prediction."""
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive number, got {batch_size}")
    check_requests(model, requests)
    chunk_size = chunk_size or batch_size * CHUNK_BATCHES
    for start in range(0, len(requests), chunk_size):
        chunk = requests[start:start + chunk_size]
        by_task: dict[str, list[int]] = {}
        for index, request in enumerate(chunk):
            by_task.setdefault(request.task, []).append(index)
        predictions: list[Prediction | None] = [None] * len(chunk)
        for task, indices in by_task.items():
            for index, prediction in zip(indices, model.predict(task, [chunk[i].text for i in indices], batch_size)):
                predictions[index] = prediction
        yield list(zip(chunk, predictions))


def predict_requests(model: MultiTaskModel, requests: Sequence[Request], batch_size: int = 32) -> list[Prediction]:
    """Predictions in input order; inputs are grouped by task so that each task is activated once."""
    return [prediction for chunk in iter_predictions(model, requests, batch_size, chunk_size=len(requests) or 1)
            for _, prediction in chunk]


def output_record(request: Request, prediction: Prediction) -> dict[str, Any]:
    """A prediction's output line: the request's ``id`` (when it had one), ``task``, ``label``, ``probabilities``."""
    record: dict[str, Any] = {"id": request.id} if request.has_id else {}
    record.update(task=prediction.task, label=prediction.label, probabilities=prediction.probabilities)
    return record
