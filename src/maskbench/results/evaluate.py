"""Test evaluation of a (model, task, method): single models (mean ± std over the seeds at the chosen lr) and the
ensemble chosen on dev (:mod:`maskbench.results.ensemble`), as scores and error rates (Table 2). A task without a
labelled test split records ``has_test: false``. Where the tables report another metric than the runs recorded
(:data:`maskbench.data.metrics.REPORTED_METRICS`: CoNLL-2003's conlleval entity F1), ``reported`` holds the same
scores in that metric, recomputed from the stored predictions (the ensemble is the one chosen on dev with the
recorded metric).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from maskbench.data.metrics import reported_metric
from maskbench.io.errors import ConfigError, DataError
from maskbench.io.fileio import write_json
from maskbench.records import load_runs, recomputed_score
from maskbench.results.aggregate import check_same_setting, mean_std
from maskbench.results.ensemble import member_predictions, score_ensembles, task_facts


def evaluate_test(metrics_paths: Sequence[str | Path], ensemble: Mapping[str, Any]) -> dict[str, Any]:
    """Test scores: single models (mean ± std over seeds) and the ensemble chosen on dev; error rates in %."""
    records = load_runs(metrics_paths)
    setting = check_same_setting(records, vary=("seed",), paths=metrics_paths)
    if setting != ensemble["setting_hash"] or sorted(map(str, metrics_paths)) != sorted(ensemble["runs"]):
        raise ConfigError("the ensemble choice was made on other runs than those given for test evaluation")
    result: dict[str, Any] = {"task": records[0]["task"], "method": records[0]["method"],
                              "model": records[0]["model"], "metric": records[0]["metric"], "lr": records[0]["lr"],
                              "seeds": [r["seed"] for r in records], "setting_hash": setting,
                              "has_test": records[0]["test_score"] is not None}
    if not result["has_test"]:
        return result
    metric, label_names = task_facts(records)
    members = member_predictions([Path(p).parent for p in metrics_paths], "test")
    if members is None:
        raise DataError(f"runs {list(map(str, metrics_paths))} report a test score but saved no test predictions")
    single = [float(r["test_score"]) for r in records]
    single_mean, single_std = mean_std(single)
    chosen = ensemble["chosen"]
    ensemble_score = score_ensembles(members, metric, label_names, [chosen])[chosen]
    result.update({
        "single": {"scores": single, "mean": single_mean, "std": single_std, "error_rate": 100 * (1 - single_mean)},
        "ensemble": {"method": chosen, "members": len(members), "score": ensemble_score,
                     "error_rate": 100 * (1 - ensemble_score)},
        "test_size": int(len(members[0]["labels"])),
    })
    reported = reported_metric(metric)
    if reported != metric:
        scores = [recomputed_score(Path(p).parent, r, "test", reported) for p, r in zip(metrics_paths, records)]
        mean, std = mean_std(scores)
        score = score_ensembles(members, reported, label_names, [chosen])[chosen]
        result["reported"] = {
            "metric": reported,
            "single": {"scores": scores, "mean": mean, "std": std, "error_rate": 100 * (1 - mean)},
            "ensemble": {"method": chosen, "members": len(members), "score": score, "error_rate": 100 * (1 - score)},
        }
    return result


def write_evaluation(metrics_paths: Sequence[str | Path], ensemble_path: str | Path, out: str | Path) -> dict:
    """Workflow step: :func:`evaluate_test` with the ensemble chosen in ``ensemble_path``, to ``out`` (JSON)."""
    result = evaluate_test(metrics_paths, json.loads(Path(ensemble_path).read_text()))
    write_json(out, result)
    return result
