"""Ensembles of a (model, task, method)'s seeds: majority vote, mean logits, mean probabilities (paper §5.3).

The three ways of combining are scored on dev; the best one (ties: the order of :data:`ENSEMBLE_METHODS`) is the
ensemble, and only that one is evaluated on test (:func:`maskbench.results.evaluate.evaluate_test`). For tagging
tasks every scored word is one prediction. A majority vote tie (e.g. 2 against 2 of four seeds) goes to the tied
label with the highest mean probability over the seeds.

A run's ``predictions.safetensors`` holds, per split, the gold ``{split}_labels``, for tagging tasks the words per
sentence (``{split}_lengths``) and the model's scores. Sentence tasks keep every logit (``{split}_logits``, float32).
Tagging tasks score one row per word — about 100,000 rows on CoNLL-2003, 45 tags on POS — and keep, per word, the
:data:`TOP_K` most probable tags (``{split}_top_labels``) with their log-probabilities (``{split}_top_log_probs``,
float16) and the number of tags (``{split}_num_labels``): a tenth of the size of float32 logits on POS. Loading
spreads the remaining probability evenly over the other tags. Log-probabilities differ from logits by a constant
per row, to which the three ensembles (majority vote, mean logits, mean probabilities) and every metric are blind;
the top tag is always kept, so single-run scores are exact (computed from the stored top tag,
:func:`split_predictions`, since two top tags may tie after float16 rounding), majority votes too except on vote
ties (decided by mean probabilities), and mean probabilities and mean logits change only where a tag outside some
member's top :data:`TOP_K` decides the ensemble, or where two tags tie within float16 rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from maskbench.data.metrics import score_predictions
from maskbench.io.errors import ConfigError, DataError
from maskbench.io.fileio import write_json
from maskbench.results.aggregate import check_same_setting, load_runs, mean_std

ENSEMBLE_METHODS = ("majority_vote", "mean_logits", "mean_probabilities")
PREDICTIONS_FILE = "predictions.safetensors"
TOP_K = 3  # tags kept per word in tagging tasks' predictions


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def prediction_tensors(outputs: Mapping[str, Mapping[str, np.ndarray]], kind: str) -> dict[str, np.ndarray]:
    """The tensors of ``predictions.safetensors`` for ``outputs`` (split -> :func:`maskbench.training.train.predict`'s
    ``logits``/``labels``/``lengths``): tagging tasks keep each word's :data:`TOP_K` tags (module docstring)."""
    tensors = {}
    for split, output in outputs.items():
        for key, value in output.items():
            value = np.ascontiguousarray(value)
            if key == "logits" and kind == "tagging":
                num_labels = value.shape[-1]
                log_probs = _log_softmax(value.astype(np.float64))
                top = np.argsort(-log_probs, axis=-1, kind="stable")[:, :TOP_K]
                kept = np.take_along_axis(log_probs, top, axis=-1)
                tensors[f"{split}_top_labels"] = top.astype(np.uint8 if num_labels <= 256 else np.int32)
                tensors[f"{split}_top_log_probs"] = np.maximum(kept, np.finfo(np.float16).min).astype(np.float16)
                tensors[f"{split}_num_labels"] = np.array([num_labels], dtype=np.int64)
            elif key in ("labels", "lengths"):
                tensors[f"{split}_{key}"] = compact_integers(value)
            else:
                tensors[f"{split}_{key}"] = value
    return tensors


def compact_integers(values: np.ndarray) -> np.ndarray:
    """``values`` in the smallest unsigned integer dtype that holds them exactly when they are non-negative
    integers (gold labels and sentence lengths: a tagging split's labels are ~25× smaller as uint8 than int64);
    anything else (floats, negative sentinels) unchanged. :func:`load_split` returns them as int64 again."""
    if values.dtype.kind not in "iu" or values.size == 0 or values.min() < 0:
        return values
    for dtype in (np.uint8, np.uint16, np.uint32):
        if values.max() <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values


def _dense_log_probs(path: Path, split: str, tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-word log-probabilities over all tags from the saved top tags; the rest of the mass spread evenly."""
    top = tensors.get(f"{split}_top_labels", np.empty((0,), dtype=np.int64)).astype(np.int64)
    kept = tensors[f"{split}_top_log_probs"].astype(np.float64)
    num_labels = tensors.get(f"{split}_num_labels")
    if num_labels is None or num_labels.size != 1 or top.ndim != 2 or top.shape != kept.shape:
        raise DataError(f"{path}: {split}_top_labels and {split}_top_log_probs must be (words, k) arrays of the same "
                        f"shape, with {split}_num_labels holding the number of tags (shapes {top.shape}, "
                        f"{kept.shape})")
    num_labels, k = int(num_labels[0]), top.shape[1]
    ordered = np.sort(top, axis=-1)
    if not 0 < k <= num_labels or (top < 0).any() or (top >= num_labels).any() or (np.diff(ordered) == 0).any() \
            or not np.isfinite(kept).all() or (kept > 0).any():
        raise DataError(f"{path}: {split}_top_labels must hold distinct tags below {split}_num_labels = {num_labels} "
                        f"and {split}_top_log_probs finite log-probabilities (≤ 0)")
    dense = np.empty((len(top), num_labels))
    if k < num_labels:
        rest = np.clip(1.0 - np.exp(kept).sum(axis=-1), 1e-30, None) / (num_labels - k)
        dense[:] = np.minimum(np.log(rest), kept.min(axis=-1))[:, None]  # never above a kept tag
    np.put_along_axis(dense, top, kept, axis=-1)
    return dense


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def ensemble_predictions(method: str, logits: Sequence[np.ndarray]) -> np.ndarray:
    """Predicted label ids of the ensemble of ``logits`` (one array of shape (n, labels) per member)."""
    stacked = np.stack([np.asarray(x, dtype=np.float64) for x in logits])  # members × n × labels
    if method == "mean_logits":
        return stacked.mean(axis=0).argmax(-1)
    probabilities = softmax(stacked).mean(axis=0)
    if method == "mean_probabilities":
        return probabilities.argmax(-1)
    if method == "majority_vote":
        votes = np.zeros(stacked.shape[1:], dtype=np.float64)
        rows = np.arange(stacked.shape[1])
        for member in stacked.argmax(-1):
            votes[rows, member] += 1
        # ties in the vote count go to the higher mean probability (always < 1, so it never outweighs a vote)
        return (votes + probabilities * 0.5).argmax(-1)
    raise ConfigError(f"unknown ensemble method {method!r}; expected one of {ENSEMBLE_METHODS}")


def _load_predictions(run_dir: str | Path) -> tuple[Path, dict[str, np.ndarray]]:
    path = Path(run_dir) / PREDICTIONS_FILE
    try:
        return path, load_file(str(path))
    except (FileNotFoundError, SafetensorError, OSError) as error:
        raise DataError(f"{path}: cannot read predictions ({error})") from None


def load_split(run_dir: str | Path, split: str) -> dict[str, np.ndarray] | None:
    """A run's saved predictions of ``split``: ``logits`` (float64 logits, or for tagging log-probabilities —
    interchangeable for ensembles and metrics), ``labels`` and, for tagging, ``lengths``; None when the run has no
    such split."""
    return _split(*_load_predictions(run_dir), split)


def _split(path: Path, tensors: Mapping[str, np.ndarray], split: str) -> dict[str, np.ndarray] | None:
    found = [key for key in ("logits", "top_log_probs") if f"{split}_{key}" in tensors]
    if not found:
        return None
    if len(found) > 1 or f"{split}_labels" not in tensors:
        raise DataError(f"{path}: expected {split}_labels and either {split}_logits or {split}_top_labels/"
                        f"{split}_top_log_probs, found {sorted(tensors)}")
    if found == ["logits"]:
        scores = tensors[f"{split}_logits"].astype(np.float64)
    else:
        scores = _dense_log_probs(path, split, tensors)
    labels = tensors[f"{split}_labels"]
    if scores.ndim != 2 or len(scores) != len(labels) or not np.isfinite(scores).all():
        raise DataError(f"{path}: {split}_{found[0]} must be a finite (rows, labels) array with one row per label "
                        f"in {split}_labels (shapes {scores.shape}, {labels.shape})")
    split_tensors = {"logits": scores, "labels": _widened(labels)}
    if f"{split}_lengths" in tensors:
        split_tensors["lengths"] = _widened(tensors[f"{split}_lengths"])
    return split_tensors


def split_predictions(run_dir: str | Path, split: str) -> dict[str, np.ndarray] | None:
    """A single run's predicted label ids of ``split`` (``predictions``), with ``labels`` and (tagging)
    ``lengths``: exactly the predictions its recorded scores were computed from. None without such a split.

    For logits that is their argmax. For tagging it is each word's stored top tag (``{split}_top_labels[:, 0]``),
    not the argmax of the loaded log-probabilities: two top tags whose log-probabilities differ in float64 can
    round to the same float16 value, and the argmax of equal values is the lower tag id, not the run's prediction
    (two of the 23 committed tagging runs have one such word among ~50,000 dev words each).
    """
    path, tensors = _load_predictions(run_dir)
    loaded = _split(path, tensors, split)
    if loaded is None:
        return None
    result = {key: value for key, value in loaded.items() if key != "logits"}
    if f"{split}_top_labels" in tensors:
        result["predictions"] = tensors[f"{split}_top_labels"][:, 0].astype(np.int64)
    else:
        result["predictions"] = loaded["logits"].argmax(-1)
    return result


def _widened(values: np.ndarray) -> np.ndarray:
    """Integer arrays stored compactly (:func:`compact_integers`) back as int64; other dtypes unchanged."""
    return values.astype(np.int64) if values.dtype.kind in "iu" else values


def member_predictions(run_dirs: Sequence[str | Path], split: str) -> list[dict[str, np.ndarray]] | None:
    members = [load_split(d, split) for d in run_dirs]
    if all(m is None for m in members):
        return None
    if any(m is None for m in members):
        raise DataError(f"only some of the runs {list(map(str, run_dirs))} have {split} predictions")
    reference = members[0]
    for run_dir, member in zip(run_dirs, members):
        for key in ("labels", "lengths"):
            if key in reference and not np.array_equal(member.get(key), reference[key]):
                raise DataError(f"{run_dir}: {split} {key} differ from those of {run_dirs[0]}; the ensemble's "
                                f"members must be evaluated on the same examples")
    return members


def score_ensembles(members: Sequence[Mapping[str, np.ndarray]], metric: str, label_names: Sequence[str],
                    methods: Sequence[str] = ENSEMBLE_METHODS) -> dict[str, float]:
    labels, lengths = members[0]["labels"], members[0].get("lengths")
    logits = [m["logits"] for m in members]
    return {method: score_predictions(metric, ensemble_predictions(method, logits), labels, label_names, lengths)
            for method in methods}


def task_facts(records: Sequence[Mapping[str, Any]]) -> tuple[str, tuple[str, ...]]:
    from maskbench.data import tasks

    spec = tasks.get_task(records[0]["task"])
    return records[0]["metric"], spec.label_names


def choose_ensemble(metrics_paths: Sequence[str | Path]) -> dict[str, Any]:
    """Score the three ensembles of the runs (their ``metrics.json`` paths) on dev and choose the best."""
    records = load_runs(metrics_paths, check_scores=True)  # the single runs' mean is reported next to the ensembles
    setting = check_same_setting(records, vary=("seed",), paths=metrics_paths)
    run_dirs = [Path(p).parent for p in metrics_paths]
    metric, label_names = task_facts(records)
    members = member_predictions(run_dirs, "dev")
    if members is None:
        raise DataError(f"no dev predictions in {list(map(str, run_dirs))}")
    dev = score_ensembles(members, metric, label_names)
    chosen = max(ENSEMBLE_METHODS, key=lambda m: (dev[m], -ENSEMBLE_METHODS.index(m)))
    return {"task": records[0]["task"], "method": records[0]["method"], "model": records[0]["model"],
            "metric": metric, "lr": records[0]["lr"], "seeds": [r["seed"] for r in records],
            "members": len(records), "dev_scores": dev, "chosen": chosen, "chosen_dev_score": dev[chosen],
            "single_dev_mean": mean_std([r["dev_score"] for r in records])[0],
            "setting_hash": setting, "runs": [str(p) for p in metrics_paths]}


def write_ensemble(metrics_paths: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Workflow step: :func:`choose_ensemble` to ``out`` (JSON)."""
    result = choose_ensemble(metrics_paths)
    write_json(out, result)
    return result
