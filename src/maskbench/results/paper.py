"""The paper's own numbers, and the side-by-side of this grid's masking − finetuning gap with the paper's.

``PAPER_TABLE1`` is Table 1 of Zhao et al. (EMNLP 2020): dev scores (%), mean ± std over 4 seeds, for BERT,
RoBERTa and DistilBERT (base). The comparison table puts, per task, the gap masking − finetuning measured here
(mean over seeds; ± the two methods' seed std combined) next to the paper's gaps, together with the majority-class
baseline of the same dev set, so that a reader can see where this model agrees with the paper and where not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskbench.io.errors import DataError
from maskbench.records import load_json
from maskbench.results.rendering import (
    METRIC_NAMES,
    MISSING,
    REPORTED_MARK,
    Table,
    reported,
    reported_metric_name,
    short_count,
)

if TYPE_CHECKING:  # the tables build the side-by-side from their records (maskbench.results.tables imports this)
    from maskbench.results.tables import Results

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
            ft, mk = reported(finetuning, "dev"), reported(masking, "dev")
            metric = reported_metric_name(finetuning)
            row.update({
                "metric": metric, "train_size": finetuning["sizes"]["train"],
                "seeds": len(ft["scores"]),
                "majority": 100 * majority_baseline(Path(finetuning["runs"][0]).parent, metric, spec.label_names),
                "finetuning_mean": 100 * ft["mean"], "finetuning_std": 100 * ft["std"],
                "masking_mean": 100 * mk["mean"], "masking_std": 100 * mk["std"],
                "gap": 100 * (mk["mean"] - ft["mean"]),
                "gap_noise": 100 * math.sqrt(ft["std"] ** 2 + mk["std"] ** 2),
                "finetuning_lr": finetuning["lr"], "masking_lr": masking["lr"],
            })
            if metric != finetuning["metric"]:  # rescored (NER: conlleval); the recorded figures beside it
                row.update({"recorded_metric": finetuning["metric"],
                            "recorded_finetuning_mean": 100 * finetuning["dev"]["mean"],
                            "recorded_finetuning_std": 100 * finetuning["dev"]["std"],
                            "recorded_masking_mean": 100 * masking["dev"]["mean"],
                            "recorded_masking_std": 100 * masking["dev"]["std"],
                            "recorded_gap": 100 * (masking["dev"]["mean"] - finetuning["dev"]["mean"])})
        for paper_model in PAPER_MODELS:
            row[f"paper_gap_{paper_model}"] = paper_gap(paper_model, task)
        rows.append(row)
    return rows


def comparison_table(results: Results) -> Table:
    """masking − finetuning here vs in the paper, per task, with the majority-class baseline."""
    body: list[list[str]] = []
    gaps: list[float] = []
    recorded: list[str] = []
    for model in results.layout.models:
        for row in comparison_rows(results, model):
            done = "gap" in row
            if done:
                gaps.append(row["gap"])
            if "recorded_gap" in row:
                recorded.append(f"{row['label']}: finetuning {row['recorded_finetuning_mean']:.1f} ± "
                                f"{row['recorded_finetuning_std']:.1f}, masking {row['recorded_masking_mean']:.1f} ± "
                                f"{row['recorded_masking_std']:.1f}, gap {_signed(row['recorded_gap'])}")
            body.append([
                results.layout.model_label(model), row["label"],
                METRIC_NAMES.get(row.get("metric", ""), row.get("metric", MISSING))
                + (REPORTED_MARK if "recorded_gap" in row else ""),
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
    if recorded:
        notes.append(f"{REPORTED_MARK}: entity F1 with conlleval semantics (seqeval's default mode, as the paper and "
                     "CoNLL-2003 results report NER), recomputed from the runs' stored predictions; the runs recorded "
                     "strict IOB2 entity F1, which chose their best epoch and lr. Strict: " + "; ".join(recorded) + ".")
    if gaps:
        plural = "s" if len(gaps) != 1 else ""
        notes.append(f"Over the {len(gaps)} task{plural} with both methods: mean gap {_signed(float(np.mean(gaps)))}, "
                     f"mean |gap| {float(np.mean(np.abs(gaps))):.2f} points.")
    return Table(name="paper_comparison",
                 caption="Masking − finetuning here and in the paper (dev, points).",
                 headers=["Model", "Task", "Metric", "Train", "Majority", "Finetuning", "Masking",
                          "Gap here", *(f"Gap {m} (paper)" for m in PAPER_MODELS)],
                 rows=body, notes=notes)


#: the paper's analyses (figure/table, its finding in one line, the analysis key of a configuration's `analyses`)
PAPER_ANALYSES: tuple[tuple[str, str, str], ...] = (
    ("Table 1", "masking performs comparably to finetuning (BERT-base: mean absolute gap {bert:.2f} points on these "
     "tasks)", "table1"),
    ("Fig. 1", "a small initial sparsity is best (the paper takes 5 %); a large one (95 %) collapses", "sparsity"),
    ("Fig. 2 / Table 7", "masking the top blocks matters more than masking the bottom ones", "layers"),
    ("Table 3", "a masked model transfers to another sentiment dataset as well as a finetuned one "
     "(SST-2 ↔ SEM, SST-2 → IMDB)", "generalization"),
    ("Fig. 3", "a further task costs masking its binary masks and head, a small fraction of the full model that "
     "finetuning adds", "memory"),
    ("Fig. 4", "a masked and a finetuned model separate the classes in their top-layer [CLS] alike (t-SNE)", "tsne"),
    ("Fig. 5", "masks of different tasks differ most in the top layers", "mask_similarity"),
    ("Fig. 6", "the line between a finetuned and a masked model keeps a nearly constant accuracy",
     "mode_connectivity"),
    ("Fig. 7", "a trained Bézier curve connects the finetuned and the masked model at high accuracy", "bezier"),
)
NOT_RUN = "not run at full data yet"
#: how each finding is decided (the notes under the analyses table)
CRITERIA = ("Shown when: Table 1, mean |masking − finetuning| within 1 point; Fig. 1, the best initial sparsity "
            "is at most 10 % on every task and the largest one scores below it; Table 3, masking's improvement "
            "over the majority class on every target other than its source at least finetuning's minus the two "
            "methods' seed std combined; Fig. 3, a further task costs masking less than a tenth of the bytes "
            "finetuning adds.")


def _read_csv(path: str | Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _sparsity_finding(path: str | Path, labels: Mapping[str, str], model: str) -> tuple[str, str]:
    """Fig. 1 from its CSV (the rows of ``model``, by name): per task, the best initial sparsity and the largest
    one's score."""
    by_task: dict[str, list[tuple[float, float]]] = {}
    for row in _read_csv(path):
        if row["model"] != model:
            continue
        by_task.setdefault(row["task"], []).append((float(row["initial_sparsity"]), 100 * float(row["dev_mean"])))
    if not by_task:
        return NOT_RUN, MISSING
    parts, shown = [], True
    for task, points in by_task.items():
        points.sort()
        best = max(points, key=lambda point: point[1])
        largest = points[-1]
        shown = shown and best[0] <= 0.10 and largest[1] < best[1]
        parts.append(f"{labels.get(task, task)}: best {100 * best[0]:g} % ({best[1]:.1f}), "
                     f"{100 * largest[0]:g} % {largest[1]:.1f}")
    grid = sorted({point[0] for points in by_task.values() for point in points})
    verdict = ("yes" if shown else "no") + f" (grid {', '.join(f'{100 * v:g}' for v in grid)} %)"
    return verdict, "; ".join(parts)


def _generalization_finding(paths: Sequence[str | Path], labels: Mapping[str, str], model: str) -> tuple[str, str]:
    """Table 3 from its records (those of ``model``, by name): masking's improvement over the majority class
    against finetuning's."""
    records = [load_json(path, "a Table 3 record written by maskbench") for path in paths]
    records = {(r["method"], r["source"]): r for r in records if r["model"] == model}
    parts, shown, compared = [], True, 0
    for (method, source), record in records.items():
        other = records.get(("finetuning", source))
        if method != "masking" or other is None:
            continue
        for target, entry in record["targets"].items():
            if target == source or target not in other["targets"]:
                continue
            ft = other["targets"][target]
            gap = 100 * (entry["improvement_mean"] - ft["improvement_mean"])
            noise = 100 * math.hypot(entry["improvement_std"], ft["improvement_std"])
            shown = shown and gap >= -noise
            compared += 1
            parts.append(f"{labels.get(source, source)} → {labels.get(target, target)}: masking "
                         f"{100 * entry['improvement_mean']:+.1f} vs finetuning {100 * ft['improvement_mean']:+.1f} "
                         f"over the majority class ({_signed(gap)} ± {noise:.1f})")
    if not compared:
        return NOT_RUN, MISSING
    directions = ", ".join(f"{labels.get(s, s)} → {labels.get(t, t)}" for (m, s), r in records.items()
                           if m == "masking" for t in r["targets"] if t != s)
    return ("yes" if shown else "no") + f" ({directions} only)", "; ".join(parts)


def _memory_finding(path: str | Path, model: str) -> tuple[str, str]:
    """Fig. 3 from its CSV (the rows of ``model``): the bytes a further task adds, masking vs finetuning (mean
    over the tasks added)."""
    curves: dict[str, list[tuple[int, int]]] = {}
    for row in _read_csv(path):
        if row.get("bytes") and row["model"] == model:
            curves.setdefault(row["method"], []).append((int(row["tasks"]), int(row["bytes"])))
    if "finetuning" not in curves or "masking" not in curves:
        return NOT_RUN, MISSING
    if min(len(curves["finetuning"]), len(curves["masking"])) < 2:
        return "undecided", "one task only: no further task to cost"
    added = {}
    for method in ("finetuning", "masking"):
        points = sorted(curves[method])
        added[method] = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
        tasks, total = points[-1]
        added[f"{method}_total"] = total
    ratio = added["masking"] / added["finetuning"]
    return ("yes" if ratio < 0.1 else "no"), (
        f"a further task adds {added['masking'] / 1e6:.2f} MB with masking vs {added['finetuning'] / 1e6:.1f} MB with "
        f"finetuning ({100 * ratio:.1f} %); after {tasks} tasks {added['masking_total'] / 1e6:.0f} vs "
        f"{added['finetuning_total'] / 1e6:.0f} MB")


def analyses_table(results: Results, analyses: Mapping[str, Any]) -> Table:
    """The paper's analyses next to this grid's: per figure/table the paper's finding in one line, whether this
    model shows it and the number that decides. ``analyses``: the data files of the analyses that were run
    (``sparsity``: Fig. 1's CSV, ``generalization``: Table 3's records, ``memory``: Fig. 3's CSV) and
    ``configured``, the configuration's analyses (those without a decision here point to their own output); the
    others are not run at full data yet."""
    labels = {task: results.layout.task_label(task) for task in results.layout.tasks}
    labels.setdefault("imdb", "IMDB")
    rows = []
    for model in results.layout.models:
        for name, finding, key in PAPER_ANALYSES:
            verdict, number = NOT_RUN, MISSING
            if key == "table1":
                done = [row for row in comparison_rows(results, model) if "gap" in row]
                gaps = [row["gap"] for row in done]
                bert = [abs(gap) for gap in (paper_gap("BERT", row["task"]) for row in done) if gap is not None]
                finding = finding.format(bert=float(np.mean(bert)) if bert else float("nan"))
                if gaps:
                    mean_gap = float(np.mean(np.abs(gaps)))
                    verdict = "yes" if mean_gap <= 1.0 else "no"
                    number = (f"mean absolute gap {mean_gap:.2f} points over {len(gaps)} tasks; masking trails on "
                              f"{sum(g < 0 for g in gaps)}")
            elif key == "sparsity" and analyses.get("sparsity"):
                name_of_model = results.layout.models[model]["name"]
                verdict, number = _sparsity_finding(analyses["sparsity"], labels, name_of_model)
            elif key == "generalization" and analyses.get("generalization"):
                verdict, number = _generalization_finding(analyses["generalization"], labels,
                                                          results.layout.models[model]["name"])
            elif key == "memory" and analyses.get("memory"):
                verdict, number = _memory_finding(analyses["memory"], model)
            elif key in analyses.get("configured", ()):
                verdict, number = "configured; not decided here", "see its own figure or table"
            rows.append([results.layout.model_label(model), name, finding, verdict, number])
    return Table(name="paper_analyses",
                 caption="The paper's analyses: its finding, and whether this model shows it (dev, points).",
                 headers=["Model", "Paper", "The paper's finding", "Shown here?", "The number that decides"],
                 rows=rows,
                 notes=[CRITERIA, "Analyses with one seed say so in their own figure; sparsity grid as run (the "
                        "paper's is 1, 3, 5, 10, 15, 20, …, 95 %)."])
