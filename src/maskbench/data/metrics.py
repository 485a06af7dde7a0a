"""Task metrics (scikit-learn / seqeval) computed from a run's saved logits and labels.

Entity F1 comes in two flavours. ``seqeval_f1`` is seqeval's strict IOB2 mode: an entity is a B- tag followed by
its I- tags, and an I- tag that does not continue an entity of its type starts none. It is what a run records
(``dev_score``, ``test_score``) and what chose each run's best epoch and each cell's lr. ``conlleval_f1`` is
seqeval's default mode, the semantics of the CoNLL shared task's ``conlleval`` script (an I- tag after O or after
another type starts an entity): the figure that CoNLL-2003 results are reported in (the paper's, BERT's,
Hugging Face's ``run_ner``). The tables report ``conlleval_f1`` (:data:`REPORTED_METRICS`), recomputed from the
runs' stored predictions, with the strict figure beside it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, matthews_corrcoef

from maskbench.io.errors import ConfigError

METRICS = ("accuracy", "matthews", "seqeval_f1", "word_accuracy", "conlleval_f1")
METRIC_LABELS = {"accuracy": "acc.", "matthews": "MCC", "seqeval_f1": "micro-F1", "word_accuracy": "acc.",
                 "conlleval_f1": "micro-F1"}
#: a run's recorded metric -> the metric the tables report for it, recomputed from the stored predictions
REPORTED_METRICS = {"seqeval_f1": "conlleval_f1"}


def reported_metric(metric: str) -> str:
    """The metric the tables report for runs that recorded ``metric`` (itself unless :data:`REPORTED_METRICS`)."""
    return REPORTED_METRICS.get(metric, metric)


def split_sentences(values: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Cut a flat per-word array into sentences of the given lengths."""
    return np.split(np.asarray(values), np.cumsum(lengths)[:-1]) if len(lengths) else []


def score_predictions(metric: str, predictions: np.ndarray, labels: np.ndarray,
                      label_names: Sequence[str] = (), lengths: Sequence[int] | None = None) -> float:
    """Score predicted label ids against gold ids.

    For ``seqeval_f1`` and ``conlleval_f1`` the flat per-word arrays are cut into sentences by ``lengths`` and
    mapped to tag names (entity-level micro-F1: strict IOB2, or conlleval semantics; see the module docstring).
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} differ in shape")
    if metric in ("accuracy", "word_accuracy"):
        return float(accuracy_score(labels, predictions))
    if metric == "matthews":
        return float(matthews_corrcoef(labels, predictions))
    if metric in ("seqeval_f1", "conlleval_f1"):
        if lengths is None:
            raise ValueError(f"{metric} needs sentence lengths")
        names = np.asarray(label_names)
        gold = [list(names[s]) for s in split_sentences(labels, lengths)]
        pred = [list(names[s]) for s in split_sentences(predictions, lengths)]
        if metric == "conlleval_f1":
            return float(seqeval_f1(gold, pred, average="micro", zero_division=0))
        return float(seqeval_f1(gold, pred, mode="strict", scheme=IOB2, average="micro", zero_division=0))
    raise ConfigError(f"unknown metric {metric!r}; expected one of {METRICS}")


def score_logits(metric: str, logits: np.ndarray, labels: np.ndarray, label_names: Sequence[str] = (),
                 lengths: Sequence[int] | None = None) -> float:
    return score_predictions(metric, np.asarray(logits).argmax(-1), labels, label_names, lengths)
