"""Per-epoch checkpoints of a training run, so that a killed job resumes where it stopped.

A checkpoint is a directory (written atomically) holding safetensors and JSON only — no pickle:
``tensors.safetensors`` (current and best trainable parameters, Adam's state, RNG states) and ``state.json``
(epoch, history, best score, counters, the run's config hash, the fingerprint of the data it reads
(:mod:`maskbench.data.fingerprint`), Adam's hyper-parameters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from maskbench.data.fingerprint import DATA_KEY, check_recorded
from maskbench.io.errors import ConfigError
from maskbench.io.fileio import atomic_directory, recover_directory, remove_directory
from maskbench.io.output_dirs import CHECKPOINT_FILES

CHECKPOINT_DIR = "checkpoint"
# the keys of state.json every checkpoint has (the last one is the optimizer's, not TrainingState's)
_STATE_KEYS = ("epoch", "history", "best_score", "best_epoch", "bad_epochs", "stopped", "train_time", "examples_seen",
               "optimizer_param_groups")
# run costs recorded since issue 32: optional in a checkpoint
_COST_KEYS = ("train_cpu_time", "machine_cpu_time")


@dataclass
class TrainingState:
    """Loop state carried across epochs (and across a restart)."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    train_time: float = 0.0
    examples_seen: int = 0
    # CPU seconds (user + system) of the training phases: this process's, and the whole machine's busy time
    # (maskbench.training.tracking.cpu_clocks); None once an epoch did not record them (a checkpoint of an older
    # maskbench)
    train_cpu_time: float | None = 0.0
    machine_cpu_time: float | None = 0.0
    best_state: dict[str, torch.Tensor] | None = None


def save_checkpoint(run_dir: Path, config_hash: str, state: TrainingState, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, generator: torch.Generator,
                    data: dict[str, str] | None = None) -> None:
    """Write the checkpoint of ``state`` (``data``: the fingerprint of the data the run reads)."""
    tensors = {f"current.{name}": p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}
    tensors.update({f"best.{name}": value.cpu().clone() for name, value in (state.best_state or {}).items()})
    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).cpu().clone()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.loader"] = generator.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {key: getattr(state, key) for key in _STATE_KEYS[:-1] + _COST_KEYS}
    meta.update({DATA_KEY: data}, config_hash=config_hash, optimizer_param_groups=optimizer_state["param_groups"])
    with atomic_directory(run_dir / CHECKPOINT_DIR, "checkpoint", CHECKPOINT_FILES) as tmp:
        save_file(tensors, tmp / "tensors.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))


def load_checkpoint(run_dir: Path, config_hash: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, data: dict[str, str] | None = None) -> TrainingState | None:
    """Restore model, optimizer and RNGs from ``run_dir``'s checkpoint; None when there is none.

    ``data`` (the fingerprint of the data this run reads): a checkpoint made from other data, or one that does not
    say (an older maskbench), is refused, so that a resumed run never mixes two data sets across its epochs."""
    directory = run_dir / CHECKPOINT_DIR
    recover_directory(directory)  # a save killed between its two renames leaves the previous checkpoint aside
    if not (directory / "state.json").is_file():
        return None
    try:
        meta = json.loads((directory / "state.json").read_text())
        tensors = load_file(directory / "tensors.safetensors")
    except (json.JSONDecodeError, SafetensorError, OSError) as error:
        raise ConfigError(f"{directory}: unreadable checkpoint ({error}); delete it to start the run afresh") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{directory / 'state.json'}: expected a JSON object; delete the checkpoint to start afresh")
    if meta.get("config_hash") != config_hash:
        raise ConfigError(f"{directory}: checkpoint of another configuration (config_hash {meta.get('config_hash')} "
                          f"!= {config_hash}); delete it or use another --out")
    parameters = dict(model.named_parameters())
    _check_complete(directory, meta, tensors, parameters)
    if data is not None:
        check_recorded(directory, "the checkpoint", meta.get(DATA_KEY), data,
                       "delete it to start the run afresh, or use the data it was made from")
    with torch.no_grad():
        for name, parameter in parameters.items():
            if parameter.requires_grad:
                parameter.copy_(tensors[f"current.{name}"])
    optimizer_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            optimizer_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": optimizer_state, "param_groups": meta["optimizer_param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.loader"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    best = {key[len("best."):]: value for key, value in tensors.items() if key.startswith("best.")}
    costs = {key: meta.get(key) for key in _COST_KEYS}  # absent (an older checkpoint): unknown, not zero
    return TrainingState(**{key: meta[key] for key in _STATE_KEYS[:-1]}, **costs, best_state=best or None)




def _check_complete(directory: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                    parameters: dict[str, torch.nn.Parameter]) -> None:
    """Refuse a checkpoint that lacks a state key, an RNG state or a trainable parameter of this model's shape."""
    missing = [key for key in _STATE_KEYS if key not in meta]
    missing += [key for key in ("rng.torch", "rng.loader") if key not in tensors]
    for name, parameter in parameters.items():
        stored = tensors.get(f"current.{name}")
        if parameter.requires_grad and (stored is None or stored.shape != parameter.shape):
            missing.append(f"current.{name}")
    if missing:
        raise ConfigError(f"{directory}: incomplete checkpoint or one of another model (missing or misshapen: "
                          f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); delete it to start the "
                          f"run afresh")


def remove_checkpoint(run_dir: Path) -> None:
    """Remove the run's checkpoint and any leftovers of killed checkpoint writes."""
    remove_directory(run_dir / CHECKPOINT_DIR)
