"""The paper's own numbers, and the side-by-side of this grid's masking − finetuning gap with the paper's.

``PAPER_TABLE1`` is Table 1 of Zhao et al. (EMNLP 2020): dev scores (%), mean ± std over 4 seeds, for BERT,
RoBERTa and DistilBERT (base). The comparison table puts, per task, the gap masking − finetuning measured here
(mean over seeds; ± the two methods' seed std combined) next to the paper's gaps, together with the majority-class
baseline of the same dev set, so that a reader can see where this model agrees with the paper and where not.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from maskbench.io.errors import DataError
from maskbench.results.tables import METRIC_NAMES, MISSING, Results, Table, load_results, short_count

# model -> method -> task -> (mean, std), in % (the paper's Table 1)
PAPER_TABLE1: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "BERT": {
        "finetuning": {"mrpc": (86.1, 0.8), "sst2": (93.3, 0.2), "cola": (59.6, 0.8), "rte": (69.2, 2.7),
                       "qnli": (91.0, 0.6), "sem": (86.6, 0.3), "trec": (96.4, 0.2), "ag_news": (94.4, 0.1),
                       "pos": (97.7, 0.0), "conll2003": (94.6, 0.2), "swag": (80.9, 1.7)},
        "masking": {"mrpc": (86.8, 1.1), "sst2": (93.2, 0.5), "cola": (59.5, 0.1), "rte": (69.5, 3.0),
                    "qnli": (91.3, 0.4), "sem": (85.9, 0.5), "trec": (96.0, 0.4), "ag_news": (94.2, 0.0),
                    "pos": (97.7, 0.0), "conll2003": (94.5, 0.1), "swag": (80.3, 0.1)},
    },
    "RoBERTa": {
        "finetuning": {"mrpc": (89.8, 0.5), "sst2": (95.0, 0.3), "cola": (62.1, 1.7), "rte": (78.2, 1.1),
                       "qnli": (92.9, 0.2), "sem": (90.2, 0.5), "trec": (96.2, 0.4), "ag_news": (94.7, 0.0),
                       "pos": (98.1, 0.0), "conll2003": (94.9, 0.1), "swag": (83.4, 0.8)},
        "masking": {"mrpc": (88.5, 1.1), "sst2": (94.5, 0.3), "cola": (60.3, 1.3), "rte": (69.2, 2.1),
                    "qnli": (92.4, 0.1), "sem": (90.1, 0.1), "trec": (95.9, 0.5), "ag_news": (94.5, 0.1),
                    "pos": (98.0, 0.0), "conll2003": (93.9, 0.1), "swag": (82.1, 0.2)},
    },
    "DistilBERT": {
        "finetuning": {"mrpc": (85.4, 0.5), "sst2": (91.6, 0.4), "cola": (55.1, 0.3), "rte": (62.2, 3.0),
                       "qnli": (89.0, 0.8), "sem": (85.9, 0.2), "trec": (95.7, 0.6), "ag_news": (94.2, 0.1),
                       "pos": (97.6, 0.0), "conll2003": (94.1, 0.1), "swag": (72.5, 0.2)},
        "masking": {"mrpc": (86.0, 0.3), "sst2": (91.3, 0.3), "cola": (53.1, 0.7), "rte": (61.6, 1.5),
                    "qnli": (89.2, 0.2), "sem": (86.6, 0.6), "trec": (95.9, 0.6), "ag_news": (94.2, 0.1),
                    "pos": (97.6, 0.0), "conll2003": (94.1, 0.2), "swag": (71.0, 0.0)},
    },
}
PAPER_MODELS = ("BERT", "DistilBERT", "RoBERTa")


def paper_gap(model: str, task: str) -> float | None:
    """masking − finetuning (points) in the paper's Table 1, or None where it has no such cell."""
    methods = PAPER_TABLE1[model]
    if task not in methods["masking"]:
        return None
    return round(methods["masking"][task][0] - methods["finetuning"][task][0], 1)


def majority_baseline(run_dir: str | Path, metric: str, label_names: tuple[str, ...] | list[str]) -> float:
    """The dev score of always predicting the most frequent gold label, from a run's saved dev labels."""
    from maskbench.data.metrics import score_predictions
    from maskbench.records import PREDICTIONS_FILE, load_split

    dev = load_split(run_dir, "dev")
    if dev is None:
        raise DataError(f"{Path(run_dir) / PREDICTIONS_FILE}: the run saved no dev predictions")
    labels, lengths = dev["labels"], dev.get("lengths")
    majority = int(np.bincount(labels).argmax())  # load_split gives integer labels as int64
    return score_predictions(metric, np.full_like(labels, majority), labels, label_names, lengths)


def _signed(value: float | None, std: float | None = None) -> str:
    if value is None:
        return MISSING
    text = f"{value:+.1f}".replace("-", "−")
    return f"{text} ± {std:.1f}" if std is not None else text


def comparison_rows(results: Results, model: str) -> list[dict[str, Any]]:
    """Per task of ``model``: this grid's scores and gap, the majority baseline and the paper's gaps."""
    from maskbench.data import tasks as task_registry

    rows = []
    for task in results.layout.tasks:
        finetuning = results.aggregates.get((model, task, "finetuning"))
        masking = results.aggregates.get((model, task, "masking"))
        row: dict[str, Any] = {"task": task, "label": results.layout.task_label(task)}
        if finetuning is not None and masking is not None:
            spec = task_registry.get_task(task)
            ft, mk = finetuning["dev"], masking["dev"]
            row.update({
                "metric": finetuning["metric"], "train_size": finetuning["sizes"]["train"],
                "seeds": len(ft["scores"]),
                "majority": 100 * majority_baseline(Path(finetuning["runs"][0]).parent, finetuning["metric"],
                                                    spec.label_names),
                "finetuning_mean": 100 * ft["mean"], "finetuning_std": 100 * ft["std"],
                "masking_mean": 100 * mk["mean"], "masking_std": 100 * mk["std"],
                "gap": 100 * (mk["mean"] - ft["mean"]),
                "gap_noise": 100 * math.sqrt(ft["std"] ** 2 + mk["std"] ** 2),
                "finetuning_lr": finetuning["lr"], "masking_lr": masking["lr"],
            })
        for paper_model in PAPER_MODELS:
            row[f"paper_gap_{paper_model}"] = paper_gap(paper_model, task)
        rows.append(row)
    return rows


def comparison_table(results: Results) -> Table:
    """masking − finetuning here vs in the paper, per task, with the majority-class baseline."""
    body: list[list[str]] = []
    gaps: list[float] = []
    for model in results.layout.models:
        for row in comparison_rows(results, model):
            done = "gap" in row
            if done:
                gaps.append(row["gap"])
            body.append([
                results.layout.model_label(model), row["label"],
                METRIC_NAMES.get(row.get("metric", ""), row.get("metric", MISSING)),
                short_count(row["train_size"]) if done else MISSING,
                f"{row['majority']:.1f}" if done else MISSING,
                f"{row['finetuning_mean']:.1f} ± {row['finetuning_std']:.1f}" if done else MISSING,
                f"{row['masking_mean']:.1f} ± {row['masking_std']:.1f}" if done else MISSING,
                _signed(row["gap"], row["gap_noise"]) if done else MISSING,
                *(_signed(row[f"paper_gap_{m}"]) for m in PAPER_MODELS),
            ])
    notes = ["Scores in % (dev set), mean ± std over the seeds at the lr chosen on dev; gap = masking − "
             "finetuning in points, ± the two methods' seed std combined (sqrt(std_f² + std_m²)). Paper: Table 1 "
             "of Zhao et al. (2020), 4 seeds, BERT/DistilBERT/RoBERTa base. Majority: always the most frequent "
             "dev label (0 for MCC and entity F1)."]
    if gaps:
        plural = "s" if len(gaps) != 1 else ""
        notes.append(f"Over the {len(gaps)} task{plural} with both methods: mean gap {_signed(float(np.mean(gaps)))}, "
                     f"mean |gap| {float(np.mean(np.abs(gaps))):.2f} points.")
    return Table(name="paper_comparison",
                 caption="Masking − finetuning here and in the paper (dev, points).",
                 headers=["Model", "Task", "Metric", "Train", "Majority", "Finetuning", "Masking",
                          "Gap here", *(f"Gap {m} (paper)" for m in PAPER_MODELS)],
                 rows=body, notes=notes)


def write_comparison(layout: Mapping[str, Any], aggregates: list[str], out: list[str]) -> Table:
    """Workflow step: the comparison table from the per-cell aggregates, to ``out`` (.md, .tex, .csv)."""
    table = comparison_table(load_results(layout, aggregates=aggregates))
    table.write(out)
    return table
