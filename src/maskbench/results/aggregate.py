"""Combining training runs: mean ± std over seeds, and a check that the runs share one setting.

A run's ``config_hash`` covers everything that determines its numbers, seed and lr included, so runs that belong
together (the seeds of one lr, the lrs of one grid) have different hashes. :func:`setting_hash` hashes the same
configuration without the keys that are meant to vary; runs that are combined must agree on it, otherwise the
combination is refused with a message naming the runs (e.g. a stale run left from an earlier configuration).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.data.metrics import reported_metric
from maskbench.io.errors import ConfigError, RecordError
from maskbench.io.fileio import write_json
from maskbench.records import load_runs, recomputed_score
from maskbench.training.methods import run_artefact_sizes
from maskbench.training.settings import NON_RESULT_KEYS, config_hash, result_key


def setting_hash(metrics: Mapping[str, Any], vary: Sequence[str] = ("seed",)) -> str:
    """Hash of a run's result-determining configuration without the keys in ``vary``."""
    config = result_key(metrics["config"])
    for key in vary:
        config.pop(key, None)
    return config_hash(config)


def check_same_setting(records: Sequence[Mapping[str, Any]], vary: Sequence[str],
                       paths: Sequence[str | Path] | None = None) -> str:
    """The common :func:`setting_hash` of ``records``; raises :class:`ConfigError` naming the odd runs out."""
    if not records:
        raise ConfigError("no runs to combine")
    names = [str(p) for p in paths] if paths is not None else [f"run {i}" for i in range(len(records))]
    hashes = [setting_hash(r, vary) for r in records]
    if len(set(hashes)) > 1:
        groups: dict[str, list[str]] = {}
        for name, value in zip(names, hashes):
            groups.setdefault(value, []).append(name)
        detail = "; ".join(f"{value}: {', '.join(members)}" for value, members in groups.items())
        raise ConfigError(f"refusing to combine runs of different configurations (only {', '.join(vary)} may "
                          f"differ); configuration hashes: {detail}")
    return hashes[0]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (numpy's default, ddof=0) of the seeds' scores."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std())


# --- artefact sizes ---------------------------------------------------------------------------------------


# --- aggregation over seeds -------------------------------------------------------------------------------


def _same(records: Sequence[Mapping[str, Any]], key: str, paths: Sequence[str]) -> Any:
    values = [json.dumps(r.get(key), sort_keys=True) for r in records]
    if len(set(values)) > 1:
        raise ConfigError(f"runs disagree on {key!r}: " + "; ".join(f"{p}: {v}" for p, v in zip(paths, values)))
    return records[0].get(key)


def aggregate_runs(records: Sequence[Mapping[str, Any]], paths: Sequence[str | Path]) -> dict[str, Any]:
    """Mean ± std over the seeds of one (model, task, method, lr): dev and, where labelled, test scores.

    Refuses runs of different settings (see :func:`check_same_setting`) and runs that disagree on data sizes.
    """
    paths = [str(p) for p in paths]
    setting = check_same_setting(records, vary=("seed",), paths=paths)
    seeds = [int(r["seed"]) for r in records]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"the same seed appears twice among {paths}")
    order = np.argsort(seeds)
    records = [records[i] for i in order]
    paths = [paths[i] for i in order]
    dev_mean, dev_std = mean_std([r["dev_score"] for r in records])
    tests = [r["test_score"] for r in records]
    if any(t is None for t in tests) and not all(t is None for t in tests):
        raise ConfigError(f"only some runs have a test score: {paths}")
    test = None
    if tests and tests[0] is not None:
        mean, std = mean_std(tests)
        test = {"scores": tests, "mean": mean, "std": std}
    artefacts = {}
    for path, record in zip(paths, records):
        # recorded by the run (its artefact need not be here), else measured from the artefact on disk
        sizes = record["artefact_sizes"] if "artefact_sizes" in record else run_artefact_sizes(
            Path(path).parent, record["method"])
        if sizes is not None:
            artefacts[str(record["seed"])] = sizes
    first = records[0]
    reported = reported_scores(records, paths)
    return {
        "task": first["task"], "method": first["method"], "model": first["model"], "metric": first["metric"],
        "kind": first["kind"], "lr": first["lr"], "seeds": sorted(seeds),
        "dev": {"scores": [r["dev_score"] for r in records], "mean": dev_mean, "std": dev_std},
        "test": test,
        "best_epochs": [r["best_epoch"] for r in records], "epochs_run": [r["epochs_run"] for r in records],
        "train_time_s": [r["train_time_s"] for r in records],
        "trainable_parameters": _same(records, "trainable_parameters", paths),
        "sizes": _same(records, "sizes", paths), "word_counts": _same(records, "word_counts", paths),
        "sparsity": [r["sparsity"] for r in records],
        "artefacts": artefacts or None,
        "setting_hash": setting, "config_hashes": [r["config_hash"] for r in records],
        "config": {k: v for k, v in first["config"].items() if k not in (*NON_RESULT_KEYS, "seed")},
        "versions": first["versions"], "devices": sorted({r["device"] for r in records}), "runs": paths,
        **({"reported": reported} if reported else {}),
    }


def reported_scores(records: Sequence[Mapping[str, Any]], paths: Sequence[str | Path]) -> dict[str, Any] | None:
    """Where the tables report another metric than the runs recorded (:data:`maskbench.data.metrics.REPORTED_METRICS`:
    CoNLL-2003's entity F1 with conlleval semantics instead of strict IOB2), that metric's dev and test summaries,
    recomputed from each run's stored predictions (the epoch the recorded metric chose); None otherwise."""
    metric = reported_metric(records[0]["metric"])
    if metric == records[0]["metric"]:
        return None
    result: dict[str, Any] = {"metric": metric}
    for split in ("dev", "test"):
        scores = [recomputed_score(Path(path).parent, record, split, metric) for path, record in zip(paths, records)]
        if split == "dev" and None in scores:
            missing = [str(path) for path, score in zip(paths, scores) if score is None]
            raise RecordError(f"{missing[0]}: the run stored no dev predictions to score with {metric}")
        if None in scores:
            result[split] = None
            continue
        mean, std = mean_std(scores)
        result[split] = {"scores": scores, "mean": mean, "std": std}
    return result


def write_aggregate(metrics_paths: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Workflow step: :func:`aggregate_runs` of the given ``metrics.json`` files to ``out`` (JSON); each record is
    checked and its dev score recomputed from the run's stored predictions first (a disagreement is refused)."""
    result = aggregate_runs(load_runs(metrics_paths, check_scores=True), metrics_paths)
    write_json(out, result)
    return result
