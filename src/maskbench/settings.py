"""Run settings: everything that determines a training run's numbers, as plain data (no torch import).

The workflow imports this module at planning time to tell whether a finished run on disk is the run it would
start now: a run's identity is its settings (:func:`run_identity`), not the age of its files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from maskbench.errors import ConfigError
from maskbench.masking.config import MaskConfig

PACKED_BITS = "packed-bits-v1"
COMPRESSED = "rice-gaps-v1"
MASK_FORMATS = (PACKED_BITS, COMPRESSED)

#: the training methods, in table order; the same names as the registry ``maskbench.methods`` (a test checks)
METHODS = ("masking", "finetuning", "lora", "bitfit", "ia3")
#: methods that adapt the layers of the blocks chosen by ``MaskConfig.blocks`` (of the mask settings, they use
#: only ``blocks``)
BLOCK_METHODS = ("masking", "lora", "ia3")
PRECISIONS = ("fp32", "bf16")
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.safetensors"


@dataclass
class TrainConfig:
    """Everything that determines a run's numbers (``out``, ``data_dir`` and ``device`` only say where)."""

    method: str
    model: str
    task: str
    seed: int = 1
    lr: float = 5e-5
    batch_size: int = 32
    epochs: int = 10
    patience: int = 2
    max_length: int = 128
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    mask: MaskConfig = field(default_factory=MaskConfig)
    #: LoRA's rank r and scaling alpha (the update is alpha / r * B A); only method ``lora`` uses them
    lora_r: int = 8
    lora_alpha: float = 8.0
    eval_batch_size: int = 128
    #: training batches group examples of similar length inside random pools (``maskbench.batching``)
    group_by_length: bool = True
    #: fp32, or bf16 autocast (mixed precision; CUDA GPUs with bf16 support, or CPU)
    precision: str = "fp32"
    save_weights: bool = False
    #: how a masking run stores its masks (``maskbench.storage``): 1 bit per weight, or the lossless sub-bit coding
    mask_format: str = PACKED_BITS
    allow_partial: bool = False
    out: str = "run"
    data_dir: str | None = None
    prepared: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.mask, dict):
            self.mask = MaskConfig.from_dict(self.mask)
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
                  "eval_batch_size": self.eval_batch_size >= 1}
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"{key}: invalid value {getattr(self, key)!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.group_by_length, bool):
            raise ConfigError(f"group_by_length: expected true/false, got {self.group_by_length!r}")
        if self.mask_format not in MASK_FORMATS:
            raise ConfigError(f"mask_format: expected one of {MASK_FORMATS}, got {self.mask_format!r}")
        if self.save_weights and self.method != "finetuning":
            raise ConfigError(f"save_weights: only for finetuning (a {self.method} run saves its per-task artefact, "
                              f"which rebuilds the model)")
        if isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int) or self.lora_r < 1:
            raise ConfigError(f"lora_r: expected a positive integer, got {self.lora_r!r}")
        if (isinstance(self.lora_alpha, bool) or not isinstance(self.lora_alpha, (int, float))
                or not math.isfinite(self.lora_alpha) or self.lora_alpha <= 0):
            raise ConfigError(f"lora_alpha: expected a positive number, got {self.lora_alpha!r}")
        for key in ("max_train_examples", "max_eval_examples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key}: expected a positive number or none, got {value!r}")

    def _check_types(self) -> None:
        """Every setting has its type (before any range check): a clear error, not a traceback, from the Python
        API and the workflow's config as from the command line."""
        if not isinstance(self.mask, MaskConfig):
            raise ConfigError(f"mask: expected a mapping of masking settings, got {self.mask!r}")
        for key in ("method", "model", "task", "precision", "mask_format"):
            if not isinstance(getattr(self, key), str):
                raise ConfigError(f"{key}: expected a string, got {getattr(self, key)!r}")
        for key in ("out", "data_dir", "prepared", "device"):
            value = getattr(self, key)
            if not (isinstance(value, (str, os.PathLike)) or (value is None and key != "out")):
                raise ConfigError(f"{key}: expected a path string{'' if key == 'out' else ' or none'}, got {value!r}")
        for key in ("seed", "batch_size", "epochs", "patience", "max_length", "eval_batch_size",
                    "max_train_examples", "max_eval_examples"):
            value = getattr(self, key)
            optional = key.startswith("max_") and key.endswith("_examples")
            if not (isinstance(value, int) and not isinstance(value, bool)) and not (optional and value is None):
                raise ConfigError(f"{key}: expected a whole number{' or none' if optional else ''}, got {value!r}")
        for key in ("save_weights", "allow_partial", "group_by_length"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}: expected true/false, got {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mask": self.mask.to_dict()}

    def result_key(self) -> dict[str, Any]:
        """The part of the configuration that determines results (hashed into ``config_hash``)."""
        return result_key(self.to_dict())




#: TrainConfig fields that say where or how fast a run is computed, not what it computes
NON_RESULT_KEYS = ("out", "data_dir", "prepared", "device", "save_weights", "eval_batch_size", "mask_format")

#: Settings added after runs were first recorded, with the value that reproduces the behaviour from before the
#: setting existed. A record without such a key means that value; a run whose setting equals it keeps its
#: identity. Adding a setting: a dataclass field, plus an entry here unless its default changes results.
LEGACY_DEFAULTS: dict[str, Any] = {}


def check_max_length(value: Any) -> int:
    """A tokenisation length limit: a whole number in [8, 512] (the position embeddings of the paper's models)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 512:
        raise ConfigError(f"max_length: expected a whole number in [8, 512], got {value!r}")
    return value


#: result-determining settings that only some methods use; the other methods drop them from :func:`result_key`
#: (so that finetuning and masking runs keep the identity they had before the setting existed)
METHOD_KEYS: dict[str, tuple[str, ...]] = {"mask": BLOCK_METHODS, "lora_r": ("lora",), "lora_alpha": ("lora",)}


def result_key(config: Mapping[str, Any]) -> dict[str, Any]:
    """The result-determining part of a ``TrainConfig.to_dict()`` (as recorded in ``metrics.json``)."""
    data = {key: value for key, value in config.items() if key not in NON_RESULT_KEYS}
    method = data.get("method")
    for key, methods in METHOD_KEYS.items():
        if method not in methods:
            data.pop(key, None)
    if method != "masking" and isinstance(data.get("mask"), Mapping):
        data["mask"] = {"blocks": data["mask"].get("blocks")}  # the other block methods use only where
    if "lora_alpha" in data:
        data["lora_alpha"] = float(data["lora_alpha"])
    return data


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
