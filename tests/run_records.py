"""Run records for tests that need one without training: what ``maskbench train`` writes, with the scores (and
stored predictions) a test chooses. :mod:`maskbench.records` refuses anything less than a complete, consistent
record, so hand-made partial records are completed here."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from maskbench.data import tasks
from maskbench.data.metrics import score_logits
from maskbench.training.settings import TrainConfig, config_hash, result_key


def complete_record(partial: dict[str, Any]) -> dict[str, Any]:
    """``partial`` (at least task, method, seed, lr, dev_score) with every key a finished run records: the
    config filled in from :class:`TrainConfig`'s defaults, a one-epoch history ending at ``dev_score``."""
    record = copy.deepcopy(partial)
    spec = tasks.get_task(record["task"])
    given = record.get("config") or {}
    base = TrainConfig(method=record["method"], model=record.get("model", "m"), task=record["task"],
                       seed=record["seed"], lr=record["lr"], out=str(given.get("out", "run"))).to_dict()
    mask = {**base["mask"], **given.get("mask", {})}
    config = {**base, **given, "mask": mask}
    record.setdefault("model", config["model"])
    dev = record["dev_score"]
    history = [{"epoch": 1, "dev_score": dev, "train_loss": 0.5}]
    defaults = {"metric": spec.metric, "kind": spec.kind, "best_epoch": 1, "epochs_run": 1, "history": history,
                "dev_scores": [dev], "test_score": None, "sizes": {"train": 10, "dev": 10}, "word_counts": None,
                "train_time_s": 1.0, "train_examples_per_s": 10.0, "trainable_parameters": 10, "sparsity": None,
                "versions": {"maskbench": "0.1.0"}, "device": "cpu", "precision": "fp32",
                "optimizer": "Adam (fused)", "tf32": False}
    for key, value in defaults.items():
        record.setdefault(key, value)
    record["config"] = config
    record["config_hash"] = config_hash(result_key(config))
    return record


def accuracy_predictions(score: float, examples: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of a two-label task whose accuracy is exactly ``score`` (a multiple of 1/examples)."""
    right = round(score * examples)
    assert right / examples == score, f"{score} is not a multiple of 1/{examples}"
    labels = np.zeros(examples, dtype=np.int64)
    logits = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (examples, 1))
    logits[right:] = [0.0, 1.0]
    return logits, labels


def write_run(directory: str | Path, partial: dict[str, Any], dev_logits: np.ndarray | None = None,
              dev_labels: np.ndarray | None = None, lengths: Any = None,
              extra_tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A finished run in ``directory``: predictions (dev logits and labels; by default those of an accuracy equal
    to ``partial["dev_score"]``) and its complete record, whose dev score is what the predictions give."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if dev_logits is None:
        dev_logits, dev_labels = accuracy_predictions(partial["dev_score"])
    spec = tasks.get_task(partial["task"])
    dev_score = score_logits(spec.metric, dev_logits, dev_labels, spec.label_names, lengths)
    tensors = {"dev_logits": np.asarray(dev_logits, dtype=np.float32), "dev_labels": np.asarray(dev_labels)}
    if lengths is not None:
        tensors["dev_lengths"] = np.asarray(lengths)
    tensors.update(extra_tensors or {})
    save_file(tensors, str(directory / "predictions.safetensors"))
    record = complete_record({**partial, "dev_score": dev_score})
    (directory / "metrics.json").write_text(json.dumps(record, indent=2))
    return directory / "metrics.json"
