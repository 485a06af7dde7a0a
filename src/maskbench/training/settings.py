"""Run settings: everything that determines a training run's numbers, as plain data (no torch import).

The dataclasses are the one declaration of every setting: the command line (:func:`add_arguments`,
:func:`from_arguments`, :func:`command_line`) and the workflow's run settings (:func:`run_config`) are generated
from their fields (name, type, default, and ``metadata``: ``help``, ``choices``, ``flag``, ``cli_default``,
``cli_required``). Adding a setting: one field here (or in :class:`MaskConfig`), plus its schema entry for the
workflow's ``training:`` section.

The workflow imports this module at planning time to tell whether a finished run on disk is the run it would
start now: a run's identity is its settings (:func:`run_identity`), not the age of its files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Mapping, Sequence

from maskbench.io.errors import ConfigError
from maskbench.training.layers import BLOCK_LINEARS, LAYER_GROUPS, parse_layers  # noqa: F401  (re-exported)
from maskbench.training.masking.config import MASK_FORMATS, PACKED_BITS, MaskConfig
from maskbench.training.method_registry import (  # noqa: F401  (the built-in methods' settings, re-exported)
    BitfitSettings,
    Ia3Settings,
    LoraSettings,
    method_info,
    registered,
)

#: the training methods, in table order: the names of the registry (:mod:`maskbench.training.method_registry`)
METHODS = tuple(registered())
#: methods that adapt the layers of the blocks chosen by ``MaskConfig.blocks``
BLOCK_METHODS = tuple(name for name, info in registered().items() if info.uses_blocks)
PRECISIONS = ("fp32", "bf16")
#: the splits a run's ``transfer`` tasks may be scored on
TRANSFER_SPLITS = ("dev", "test")

#: settings nested in :class:`TrainConfig` per method (the registry's ``MethodInfo.settings``), by field name (the
#: method's name); their keys are flat on the command line, in the workflow's ``training:`` and in a run's
#: identity (:func:`result_key`), as ``lora_r`` always was
METHOD_SETTINGS: dict[str, type] = {name: info.settings for name, info in registered().items() if info.settings}


@dataclass
class _RunSettings:
    """The fields of :class:`TrainConfig` that every method has (the methods' own settings are added after
    ``mask``, one field per method of :data:`METHOD_SETTINGS`)."""

    method: str = field(metadata={"choices": METHODS, "cli_required": True, "help": "the training method"})
    model: str = field(metadata={"cli_default": "minilm",
                                 "help": "hub id, local path, or 'minilm' (the offline model)"})
    task: str = field(metadata={"cli_required": True, "help": "the task, e.g. sst2, mrpc, conll2003 (README: Tasks)"})
    seed: int = field(default=1, metadata={"help": "random seed of the head, the mask scores and the batch order"})
    lr: float = field(default=5e-5, metadata={"cli_required": True, "help": "learning rate (Adam, constant)"})
    batch_size: int = field(default=32, metadata={"help": "training examples per step"})
    epochs: int = field(default=10, metadata={"help": "most epochs to train"})
    patience: int = field(default=2, metadata={"help": "stop after this many epochs without a better dev score"})
    max_length: int = field(default=128, metadata={"help": "wordpieces per example"})
    max_train_examples: int | None = field(default=None, metadata={
        "help": "train on a fixed subset (demos only; default: all)"})
    max_eval_examples: int | None = field(default=None, metadata={
        "help": "cap dev/test size (demos only; default: all)"})
    mask: MaskConfig = field(default_factory=MaskConfig)
    eval_batch_size: int = field(default=128, metadata={"help": "examples per forward pass when scoring"})
    #: training batches group examples of similar length inside random pools (``maskbench.training.batching``)
    group_by_length: bool = field(default=True, metadata={
        "help": "draw training batches at random instead of grouping similar lengths"})
    #: fp32, or bf16 autocast (mixed precision; CUDA GPUs with bf16 support, or CPU)
    precision: str = field(default="fp32", metadata={
        "choices": PRECISIONS, "help": "bf16: mixed precision (autocast), on GPUs that support it"})
    save_weights: bool = field(default=False, metadata={
        "help": f"also save the full weights ({', '.join(n for n, i in registered().items() if i.full_weights)})"})
    #: Table 3 (generalization): tasks with the same labels that the trained model is also scored on, recorded in
    #: ``metrics.json`` ("transfer"), so that the analysis needs no saved model, masks or adapter of the run
    transfer: str | None = field(default=None, metadata={
        "help": "comma-separated tasks with the same labels to score the trained model on, e.g. imdb,sst2 "
                "(default: none)"})
    transfer_split: str = field(default="dev", metadata={
        "choices": TRANSFER_SPLITS, "help": "the split of the transfer tasks that is scored"})
    transfer_prepared: str | None = field(default=None, metadata={
        "help": "folder holding each transfer task's prepared data as FOLDER/TASK (default: tokenise now)"})
    #: how a masking run stores its masks (``maskbench.training.masking.coding``): 1 bit per weight, or the lossless
    #: sub-bit coding
    mask_format: str = field(default=PACKED_BITS, metadata={
        "choices": MASK_FORMATS,
        "help": "how masks are stored: 1 bit per weight, or lossless Rice-coded gaps (~0.3 bit)"})
    allow_partial: bool = field(default=False, metadata={
        "flag": "--allow-partial-data",
        "help": "offline stand-ins for hub-only splits (QNLI train), for smoke tests only"})
    out: str = field(default="run", metadata={"cli_required": True, "help": "run directory"})
    data_dir: str | None = field(default=None, metadata={
        "help": "original task files (default: $MASKBENCH_DATA_DIR, else the hub)"})
    prepared: str | None = field(default=None, metadata={
        "help": "data written by 'maskbench prepare' (default: tokenise now)"})
    device: str | None = field(default=None, metadata={
        "help": "cpu, cuda, cuda:N (default: cuda when available, else cpu)"})
    #: experiment tracking (maskbench.training.tracking): where the run also logs its loss, dev scores and settings
    report_to: str | None = field(default=None, metadata={
        "help": "comma-separated trackers to log to: tensorboard, mlflow, wandb (or all); default none"})
    logging_steps: int = field(default=50, metadata={
        "help": "with --report-to: log the training loss and lr every this many steps"})


class _TrainConfigMethods:
    """The behaviour of :class:`TrainConfig` (its fields: :class:`_RunSettings` and :data:`METHOD_SETTINGS`)."""

    def __post_init__(self) -> None:
        if isinstance(self.mask, dict):
            self.mask = MaskConfig.from_dict(self.mask)
        self._check_report_to()
        for group, cls in METHOD_SETTINGS.items():
            value = getattr(self, group)
            if isinstance(value, Mapping):
                unknown = sorted(set(value) - {spec.name for spec in dataclasses.fields(cls)})
                if unknown:
                    raise ConfigError(f"{group}: unknown setting(s) {unknown}")
                setattr(self, group, cls(**value))
            elif not isinstance(value, cls):
                raise ConfigError(f"{group}: expected a mapping of {group} settings, got {value!r}")
        self._check_types()
        if self.method not in METHODS:
            raise ConfigError(f"method: expected one of {METHODS}, got {self.method!r}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed: expected a whole number in [0, 2**32), got {self.seed!r}")
        for key in ("lr",):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        checks = {"lr": self.lr > 0, "batch_size": self.batch_size >= 1, "epochs": self.epochs >= 1,
                  "patience": self.patience >= 1, "max_length": 8 <= self.max_length <= 512,
                  "eval_batch_size": self.eval_batch_size >= 1, "logging_steps": self.logging_steps >= 1}
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"{key}: invalid value {getattr(self, key)!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.group_by_length, bool):
            raise ConfigError(f"group_by_length: expected true/false, got {self.group_by_length!r}")
        if self.transfer_split not in TRANSFER_SPLITS:
            raise ConfigError(f"transfer_split: expected one of {TRANSFER_SPLITS}, got {self.transfer_split!r}")
        self.transfer_tasks()  # well-formed list (whether the tasks exist and share the labels: train checks)
        if self.mask_format not in MASK_FORMATS:
            raise ConfigError(f"mask_format: expected one of {MASK_FORMATS}, got {self.mask_format!r}")
        if self.save_weights and not method_info(self.method).full_weights:
            whole = ", ".join(name for name, info in registered().items() if info.full_weights)
            raise ConfigError(f"save_weights: only for {whole} (a {self.method} run saves its per-task artefact, "
                              f"which rebuilds the model)")
        for key in ("max_train_examples", "max_eval_examples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key}: expected a positive number or none, got {value!r}")

    def _check_types(self) -> None:
        """Every setting has its type (before any range check): a clear error, not a traceback, from the Python
        API and the workflow's config as from the command line."""
        if not isinstance(self.mask, MaskConfig):
            raise ConfigError(f"mask: expected a mapping of masking settings, got {self.mask!r}")
        for key in ("method", "model", "task", "precision", "mask_format", "transfer_split"):
            if not isinstance(getattr(self, key), str):
                raise ConfigError(f"{key}: expected a string, got {getattr(self, key)!r}")
        if not (self.transfer is None or isinstance(self.transfer, str)):
            raise ConfigError(f"transfer: expected comma-separated task names or none, got {self.transfer!r}")
        for key in ("out", "data_dir", "prepared", "device", "transfer_prepared"):
            value = getattr(self, key)
            if not (isinstance(value, (str, os.PathLike)) or (value is None and key != "out")):
                raise ConfigError(f"{key}: expected a path string{'' if key == 'out' else ' or none'}, got {value!r}")
        for key in ("seed", "batch_size", "epochs", "patience", "max_length", "eval_batch_size", "logging_steps",
                    "max_train_examples", "max_eval_examples"):
            value = getattr(self, key)
            optional = key.startswith("max_") and key.endswith("_examples")
            if not (isinstance(value, int) and not isinstance(value, bool)) and not (optional and value is None):
                raise ConfigError(f"{key}: expected a whole number{' or none' if optional else ''}, got {value!r}")
        for key in ("save_weights", "allow_partial", "group_by_length"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}: expected true/false, got {getattr(self, key)!r}")

    def _check_report_to(self) -> None:
        """``report_to`` as one comma-separated string of known trackers in a fixed order (a list, from the Python
        API or the workflow's YAML, is joined), or None for no tracking."""
        from maskbench.training.tracking import parse_report_to

        self.report_to = ",".join(parse_report_to(self.report_to)) or None

    def trackers(self) -> tuple[str, ...]:
        """The trackers of ``report_to`` (:mod:`maskbench.training.tracking`), in order; empty for none."""
        from maskbench.training.tracking import parse_report_to

        return parse_report_to(self.report_to)

    def transfer_tasks(self) -> list[str]:
        """The tasks of ``transfer``, in order (empty when none)."""
        if self.transfer is None:
            return []
        names = [name.strip() for name in str(self.transfer).split(",")]
        if not all(names) or len(set(names)) != len(names):
            raise ConfigError(f"transfer: expected comma-separated distinct task names, got {self.transfer!r}")
        return names

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mask": self.mask.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """A configuration from ``to_dict()``'s form, or a record's from before the method settings were nested
        (``lora_r``, ``lora_alpha`` at the top level)."""
        data = dict(data)
        for group, settings in METHOD_SETTINGS.items():
            flat = {spec.name: data.pop(spec.name) for spec in dataclasses.fields(settings) if spec.name in data}
            if flat:
                nested = data.get(group)
                data[group] = {**(dict(nested) if isinstance(nested, Mapping) else {}), **flat}
        return cls(**data)

    def result_key(self) -> dict[str, Any]:
        """The part of the configuration that determines results (hashed into ``config_hash``)."""
        return result_key(self.to_dict())


def _train_config_class() -> type:
    """:class:`_RunSettings`'s fields with one field per method of :data:`METHOD_SETTINGS` after ``mask``."""
    hints = typing.get_type_hints(_RunSettings)
    specs: list[tuple[str, Any, Any]] = []
    for spec in dataclasses.fields(_RunSettings):
        specs.append((spec.name, hints[spec.name], field(default=spec.default, default_factory=spec.default_factory,
                                                         metadata=spec.metadata)))
        if spec.name == "mask":
            specs += [(name, cls, field(default_factory=cls)) for name, cls in METHOD_SETTINGS.items()]
    return dataclasses.make_dataclass("TrainConfig", specs, bases=(_TrainConfigMethods,), namespace={
        "__module__": __name__,
        "__doc__": "Everything that determines a run's numbers (``out``, ``data_dir`` and ``device`` only say "
                   "where); each method's own settings are a field named after the method, and only that method "
                   "has them in its identity (:data:`METHOD_KEYS`)."})


TrainConfig = _train_config_class()

#: TrainConfig fields that say where or how fast a run is computed, not what it computes
NON_RESULT_KEYS = ("out", "data_dir", "prepared", "device", "save_weights", "eval_batch_size", "mask_format",
                   "transfer", "transfer_split", "transfer_prepared", "report_to", "logging_steps")

#: Settings added after runs were first recorded, with the value that reproduces the behaviour from before the
#: setting existed. A record without such a key means that value; a run whose setting equals it keeps its
#: identity. Adding a setting: a dataclass field, plus an entry here unless its default changes results.
LEGACY_DEFAULTS: dict[str, Any] = {key: value for info in registered().values()
                                   for key, value in info.legacy_defaults.items()}


#: result-determining settings that only some methods use; the other methods drop them from :func:`result_key`
#: (so that finetuning and masking runs keep the identity they had before the setting existed)
METHOD_KEYS: dict[str, tuple[str, ...]] = {"mask": BLOCK_METHODS, **{group: (group,) for group in METHOD_SETTINGS}}


def _method_setting_keys() -> dict[str, str]:
    """Each method setting's (flat) name -> its group in :data:`METHOD_SETTINGS`."""
    return {spec.name: group for group, cls in METHOD_SETTINGS.items() for spec in dataclasses.fields(cls)}


def result_key(config: Mapping[str, Any]) -> dict[str, Any]:
    """The result-determining part of a ``TrainConfig.to_dict()`` (as recorded in ``metrics.json``).

    Method settings are spelled flat, as the records from before they were nested spell them (``lora_r``, not
    ``lora.lora_r``), and only for the method that uses them; a setting at its :data:`LEGACY_DEFAULTS` value is
    left out: so every recorded run keeps its key, and runs made before and after a setting existed combine.
    """
    data = {key: value for key, value in config.items() if key not in NON_RESULT_KEYS}
    method = data.get("method")
    for group in METHOD_SETTINGS:
        nested = data.pop(group, None)
        if isinstance(nested, Mapping):
            data.update(nested)
    for key, group in _method_setting_keys().items():
        if method not in METHOD_KEYS[group]:
            data.pop(key, None)
        elif key in LEGACY_DEFAULTS and data.get(key, LEGACY_DEFAULTS[key]) == LEGACY_DEFAULTS[key]:
            data.pop(key, None)
    for key, methods in METHOD_KEYS.items():
        if method not in methods:
            data.pop(key, None)
    info = registered().get(method)
    if info is not None and info.mask_settings == "blocks" and isinstance(data.get("mask"), Mapping):
        data["mask"] = {"blocks": data["mask"].get("blocks")}  # methods that use only where
    for key in _float_setting_keys():
        if isinstance(data.get(key), int) and not isinstance(data[key], bool):
            data[key] = float(data[key])  # as the settings class stores it (a record may say 8 for 8.0)
    return data


@functools.lru_cache(maxsize=None)
def _float_setting_keys() -> tuple[str, ...]:
    """The method settings of type float (``lora_alpha``, ``lora_dropout``)."""
    return tuple(spec.name for cls in METHOD_SETTINGS.values() for spec in dataclasses.fields(cls)
                 if _hints(cls)[spec.name] is float)


def config_hash(config: Mapping[str, Any]) -> str:
    """Short stable hash of a JSON-serialisable configuration."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def run_identity(config: Mapping[str, Any]) -> str:
    """Hash of a run's settings that survives added settings (:data:`LEGACY_DEFAULTS`) and code changes."""
    key = result_key(config)
    for name, legacy in LEGACY_DEFAULTS.items():
        if key.get(name, legacy) == legacy:
            key.pop(name, None)
    key["lr"] = float(key["lr"])
    return config_hash(key)


def recorded_transfer(record: Mapping[str, Any], target: str, split: str, max_length: int,
                      limit: int | None) -> dict[str, Any] | None:
    """A run record's own score on ``target`` (:func:`maskbench.training.train.run_transfer`) when it was
    made as asked (split, max length, subset), else None (also for a malformed entry)."""
    transfer = record.get("transfer") if isinstance(record, Mapping) else None
    entry = transfer.get(target) if isinstance(transfer, Mapping) else None
    if isinstance(entry, Mapping) and (entry.get("split"), entry.get("max_length"), entry.get("limit")) == (
            split, max_length, limit) and {"accuracy", "majority_baseline", "examples"} <= entry.keys():
        return entry
    return None


# --- the command line and the workflow's run settings, generated from the fields -----------------------------


@dataclass(frozen=True)
class Option:
    """One setting as a command-line option: a field of a settings dataclass, or (``group``) of a nested one."""

    name: str
    group: str | None
    kind: type
    default: Any
    required: bool
    flag: str
    help: str | None
    choices: tuple[Any, ...] | None


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.lru_cache(maxsize=None)
def _options(cls: type) -> tuple[Option, ...]:
    return tuple(_field_options(cls))


def options(cls: type | None = None) -> tuple[Option, ...]:
    """The options of ``cls``'s fields (default :class:`TrainConfig`; cached per class, see
    :func:`_field_options`)."""
    return _options(cls or TrainConfig)


def _field_options(cls: type) -> list[Option]:
    """The options of ``cls``'s fields in declaration order; a field holding a settings dataclass (``mask``)
    contributes that class's fields, grouped under the field's name. Booleans become switches that set the
    opposite of the default (``--train-classifier``, ``--no-mask-pooler``)."""
    hints = _hints(cls)
    found: list[Option] = []
    for spec in dataclasses.fields(cls):
        hint = hints[spec.name]
        if dataclasses.is_dataclass(hint):
            found += [dataclasses.replace(option, group=spec.name) for option in options(hint)]
            continue
        kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)] or [hint]
        meta = spec.metadata
        default = meta.get("cli_default", None if spec.default is MISSING else spec.default)
        required = bool(meta.get("cli_required", spec.default is MISSING and "cli_default" not in meta))
        dashed = spec.name.replace("_", "-")
        flag = meta.get("flag") or (f"--no-{dashed}" if kinds[0] is bool and default else f"--{dashed}")
        choices = tuple(meta["choices"]) if "choices" in meta else None
        found.append(Option(spec.name, None, kinds[0], default, required, flag, meta.get("help"), choices))
    names = [option.name for option in found]
    if len(names) != len(set(names)):
        raise TypeError(f"{cls.__name__}: a nested settings field repeats a name: {sorted(names)}")
    return found


def add_arguments(parser: Any, cls: type | None = None) -> None:
    """Add one ``argparse`` option per setting of ``cls`` (see :func:`options`)."""
    for option in options(cls):
        if option.kind is bool:
            parser.add_argument(option.flag, dest=option.name, default=option.default,
                                action="store_false" if option.default else "store_true", help=option.help)
        else:
            parser.add_argument(option.flag, dest=option.name, type=option.kind, required=option.required,
                                default=None if option.required else option.default, choices=option.choices,
                                help=option.help)


def _grouped(cls: type, flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split settings by option name into ``cls``'s own fields and those of its nested settings (by group)."""
    group_of = {option.name: option.group for option in options(cls)}
    values: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        (groups.setdefault(group_of[name], {}) if group_of[name] else values)[name] = value
    return values, groups


def _assembled(cls: type, values: Mapping[str, Any], groups: Mapping[str, Mapping[str, Any]]) -> Any:
    """``cls`` built from its own fields and the fields of each nested settings object."""
    hints = _hints(cls)
    return cls(**values, **{group: hints[group](**group_values) for group, group_values in groups.items()})


def from_arguments(namespace: Any, cls: type | None = None) -> Any:
    """The settings object (``cls``) of parsed arguments made by :func:`add_arguments`."""
    cls = cls or TrainConfig
    return _assembled(cls, *_grouped(cls, {option.name: getattr(namespace, option.name) for option in options(cls)}))


def _text(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def command_line(config: Any, exclude: Sequence[str] = ()) -> list[str]:
    """The options that make :func:`from_arguments` rebuild ``config``: every required setting and every one
    that differs from its default, except the names in ``exclude``."""
    arguments: list[str] = []
    for option in options(type(config)):
        if option.name in exclude:
            continue
        value = getattr(getattr(config, option.group) if option.group else config, option.name)
        if option.kind is bool:
            if value != option.default:
                arguments.append(option.flag)
        elif value is not None and (option.required or value != option.default):
            arguments += [option.flag, _text(value)]
        elif value is None and option.default is not None:
            raise ConfigError(f"{option.name}: none cannot be given on the command line (default "
                              f"{option.default!r})")
    return arguments


def run_config(settings: Mapping[str, Any], *, method: str, model: str, task: str, seed: int, lr: float,
               blocks: str | None = None, mask_overrides: Mapping[str, Any] | None = None,
               save_weights: bool = False, transfer: Mapping[str, Any] | None = None,
               cls: type | None = None) -> Any:
    """The settings of one run of the workflow: its ``training:`` keys (``settings``, task overrides applied),
    the model's ``blocks`` for the methods that use them, and ``mask_overrides`` (analysis variants, whose
    values may come from paths as text). Keys that the run's method does not use are left at their defaults.
    ``transfer`` holds the ``transfer*`` settings of a run that Table 3 scores on other tasks.
    """
    cls = cls or TrainConfig
    known = {option.name: option for option in options(cls)}
    overrides = dict(mask_overrides or {})
    unknown = sorted(set(settings) - set(known)) + sorted(set(overrides) - set(known))
    if unknown:
        raise ConfigError(f"training: unknown setting(s) {unknown}; expected some of {sorted(known)}")
    given = {}
    for name, value in {**settings, **overrides}.items():
        if isinstance(value, str) and known[name].kind in (int, float):
            value = known[name].kind(value)
        if value is not None:
            given[name] = value
    values, groups = _grouped(cls, given)
    for key, users in METHOD_KEYS.items():
        if method not in users:
            values.pop(key, None)
            groups.pop(key, None)
    mask_settings = method_info(method).mask_settings
    if mask_settings == "all":
        groups["mask"] = {"blocks": blocks, **groups.get("mask", {})}
    elif mask_settings == "blocks":
        groups["mask"] = {"blocks": blocks}
    groups["mask"] = {name: value for name, value in groups.get("mask", {}).items() if value is not None}
    return _assembled(cls, {**values, "method": method, "model": model, "task": task, "seed": seed, "lr": lr,
                            "save_weights": save_weights, **(transfer or {})}, groups)
