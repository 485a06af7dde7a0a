"""Ensembles of a (model, task, method)'s seeds: majority vote, mean logits, mean probabilities (paper §5.3).

The three ways of combining are scored on dev; the best one (ties: the order of :data:`ENSEMBLE_METHODS`) is the
ensemble, and only that one is evaluated on test (:func:`maskbench.results.evaluate.evaluate_test`). For tagging
tasks every scored word is one prediction. A majority vote tie (e.g. 2 against 2 of four seeds) goes to the tied
label with the highest mean probability over the seeds.

A run's ``predictions.safetensors`` (written and read by :mod:`maskbench.records`) holds, per split, the gold
``{split}_labels``, for tagging tasks the words per sentence (``{split}_lengths``) and the model's scores. Sentence
tasks keep every logit (``{split}_logits``, float32). Tagging tasks score one row per word — about 100,000 rows on
CoNLL-2003, 45 tags on POS — and keep, per word, the :data:`~maskbench.records.TOP_K` most probable tags
(``{split}_top_labels``) with their log-probabilities (``{split}_top_log_probs``, float16) and the number of tags
(``{split}_num_labels``): a tenth of the size of float32 logits on POS. Loading spreads the remaining probability
evenly over the other tags. Log-probabilities differ from logits by a constant per row, to which the three ensembles
(majority vote, mean logits, mean probabilities) and every metric are blind; the top tag is always kept, so
single-run scores are exact (computed from the stored top tag, :func:`~maskbench.records.split_predictions`, since
two top tags may tie after float16 rounding), majority votes too except on vote ties (decided by mean
probabilities), and mean probabilities and mean logits change only where a tag outside some member's top
:data:`~maskbench.records.TOP_K` decides the ensemble, or where two tags tie within float16 rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.data.metrics import score_predictions
from maskbench.io.errors import ConfigError, DataError
from maskbench.io.fileio import write_json
from maskbench.records import load_runs, load_split
from maskbench.results.aggregate import check_same_setting, mean_std

ENSEMBLE_METHODS = ("majority_vote", "mean_logits", "mean_probabilities")

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
