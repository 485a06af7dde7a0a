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
    ("Fig. 2 / Table 7", "with the initial sparsity and the number of masked blocks fixed, top-down masking (the top "
     "blocks) mostly outperforms bottom-up masking (the bottom blocks)", "layers"),
    ("Table 3", "a masked model transfers to another sentiment dataset as well as a finetuned one "
     "(SST-2 ↔ SEM, SST-2 → IMDB)", "generalization"),
    ("Fig. 3", "a further task costs masking its binary masks and head, a small fraction of the full model that "
     "finetuning adds", "memory"),
    ("Fig. 4", "the top block's [CLS] (t-SNE) is not separable by class for the pretrained model, almost linearly "
     "separable and consistent with the gold labels for the finetuned and the masked one", "tsne"),
    ("Fig. 5", "the masks two tasks learn differ more in higher layers than in lower ones (W_O)", "mask_similarity"),
    ("Fig. 6", "the models on the line between a finetuned and a masked model form a high-accuracy path",
     "mode_connectivity"),
    ("Fig. 7", "a trained Bézier curve between the finetuned and the masked model shows similar results (a "
     "high-accuracy path)", "bezier"),
)
NOT_RUN = "not run at full data yet"
#: Fig. 4's measure: leave-one-out k-nearest-neighbour accuracy of the gold label in the 2-D t-SNE points
TSNE_NEIGHBOURS = 5
#: Figs. 6/7: the most (points) the lowest score along the path may lie below the lower end point
PATH_TOLERANCE = 2.0
#: how each finding is decided (the notes under the analyses table)
CRITERIA = ("Shown when: Table 1, mean |masking − finetuning| within 1 point; Fig. 1, the best initial sparsity "
            "is at most 10 % on every task and the largest one scores below it; Fig. 2, top-down masking scores at "
            "least as high as bottom-up masking of as many blocks (at the same initial sparsity) in more than half "
            "of the (task, initial sparsity, number of blocks) pairs; Table 3, masking's improvement "
            "over the majority class on every target other than its source at least finetuning's minus the two "
            "methods' seed std combined; Fig. 3, a further task costs masking less than a tenth of the bytes "
            f"finetuning adds; Fig. 4, the leave-one-out {TSNE_NEIGHBOURS}-nearest-neighbour accuracy of the gold "
            "label in the 2-D t-SNE points is at least 80 % for the finetuned and the masked encoder and each is at "
            "least 10 points above the pretrained encoder's; Fig. 5, the mean dissimilarity s of W_O's masks over "
            "the task pairs is higher in the last masked block than in the first; Figs. 6 and 7, on every task the "
            "lowest dev score along the finetuned → masked line (Fig. 6) or the trained Bézier curve (Fig. 7) is "
            f"at most {PATH_TOLERANCE:g} points below the lower of its two end points.")


def _read_csv(path: str | Path, columns: Sequence[str] = ()) -> list[dict[str, str]]:
    """The rows of an analysis's CSV; a :class:`DataError` names the file when it lacks one of ``columns``."""
    import csv

    if not Path(path).is_file():
        raise DataError(f"{path}: missing (a figure's CSV written by maskbench)")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: expected the columns {', '.join(missing)} (a figure's CSV written by maskbench), "
                            f"got {', '.join(reader.fieldnames or []) or 'none'}")
        return list(reader)


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


def block_set(blocks: str) -> tuple[int, ...] | None:
    """A CSV's block set as block indices ('2-5' -> (2, 3, 4, 5), '0,2-3' -> (0, 2, 3)); None for none ('')."""
    indices: set[int] = set()
    for part in blocks.split(","):
        ends = part.strip().split("-")
        if len(ends) > 2 or not all(end.isdigit() for end in ends):
            return None
        indices.update(range(int(ends[0]), int(ends[-1]) + 1))
    return tuple(sorted(indices)) or None


def _layers_finding(path: str | Path, labels: Mapping[str, str], model: str) -> tuple[str, str]:
    """Fig. 2 / Table 7 from its CSV (the rows of ``model``, by name): per task and initial sparsity, top-down
    masking of k blocks (the last k) against bottom-up masking of k blocks (the first k), for every k below the
    number of blocks (masking them all is both)."""
    points: dict[tuple[str, float], dict[tuple[int, ...], float]] = {}
    for row in _read_csv(path, ("task", "model", "blocks", "initial_sparsity", "dev_mean")):
        blocks = block_set(row["blocks"]) if row["model"] == model else None
        if blocks is not None:
            key = (row["task"], float(row["initial_sparsity"]))
            points.setdefault(key, {})[blocks] = 100 * float(row["dev_mean"])
    if not points:
        return NOT_RUN, MISSING
    differences, parts = [], []
    for (task, sparsity), by_blocks in points.items():
        last = max(blocks[-1] for blocks in by_blocks)
        pairs = []
        for count in range(1, last + 1):
            bottom, top = tuple(range(count)), tuple(range(last + 1 - count, last + 1))
            if bottom in by_blocks and top in by_blocks:
                pairs.append((count, by_blocks[top] - by_blocks[bottom]))
        if pairs:
            differences += [difference for _, difference in pairs]
            parts.append(f"{labels.get(task, task)} at {100 * sparsity:g} %: " + ", ".join(
                f"{count} block{'s' if count > 1 else ''} {_signed(difference)}" for count, difference in pairs))
    if not differences:
        return "undecided", "no top-down and bottom-up block sets of the same size"
    ahead = sum(difference >= 0 for difference in differences)
    return ("yes" if ahead > len(differences) / 2 else "no"), (
        f"top-down ahead or level in {ahead} of {len(differences)} pairs, mean difference "
        f"{_signed(float(np.mean(differences)))} points (top-down − bottom-up; {'; '.join(parts)})")


#: the (source, target) pairs of the paper's Table 3: SST-2 ↔ SEM, and SST-2 on IMDB
PAPER_TRANSFERS = (("sst2", "sem"), ("sem", "sst2"), ("sst2", "imdb"))


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
            masked, finetuned = _signed(100 * entry["improvement_mean"]), _signed(100 * ft["improvement_mean"])
            parts.append(f"{labels.get(source, source)} → {labels.get(target, target)}: masking {masked} vs "
                         f"finetuning {finetuned} over the majority class ({_signed(gap)} ± {noise:.1f})")
    if not compared:
        return NOT_RUN, MISSING
    covered = [(s, t) for (m, s), r in records.items() if m == "masking" for t in r["targets"] if t != s]
    verdict = "yes" if shown else "no"
    if not set(PAPER_TRANSFERS) <= set(covered):  # a part of the paper's Table 3 says less than the whole
        verdict += " (" + ", ".join(f"{labels.get(s, s)} → {labels.get(t, t)}" for s, t in covered) + " only)"
    return verdict, "; ".join(parts)


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


def _vote(neighbours: Sequence[str]) -> str:
    """The most frequent label among ``neighbours`` (nearest first); a tie goes to the nearest of the tied."""
    counts = {label: list(neighbours).count(label) for label in neighbours}
    best = max(counts.values())
    return next(label for label in neighbours if counts[label] == best)


def _tsne_finding(path: str | Path, labels: Mapping[str, str], model: str) -> tuple[str, str]:
    """Fig. 4 from its CSV (the points of ``model``, by name): per encoder, the leave-one-out
    :data:`TSNE_NEIGHBOURS`-nearest-neighbour accuracy of the gold label in its 2-D t-SNE points (each point voted
    on by its nearest other points)."""
    from sklearn.neighbors import NearestNeighbors

    encoders: dict[str, tuple[list[tuple[float, float]], list[str]]] = {}
    tasks = []
    for row in _read_csv(path, ("encoder", "task", "model", "x", "y", "label")):
        if row["model"] == model:
            points, golds = encoders.setdefault(row["encoder"], ([], []))
            points.append((float(row["x"]), float(row["y"])))
            golds.append(row["label"])
            tasks.append(row["task"])
    if not encoders:
        return NOT_RUN, MISSING
    missing = [encoder for encoder in ("pretrained", "finetuned", "masked") if encoder not in encoders]
    if missing:
        return "undecided", f"no points of the {' and '.join(missing)} encoder"
    accuracy = {}
    for encoder, (points, golds) in encoders.items():
        if len(points) <= TSNE_NEIGHBOURS:
            return "undecided", (f"{len(points)} points of the {encoder} encoder: too few for {TSNE_NEIGHBOURS} "
                                 "neighbours")
        nearest = NearestNeighbors(n_neighbors=TSNE_NEIGHBOURS).fit(np.array(points)).kneighbors(
            return_distance=False)  # without a query, each point's neighbours leave the point itself out
        gold = np.array(golds)
        accuracy[encoder] = 100 * float(np.mean([_vote(list(gold[row])) == label for row, label in zip(nearest, gold)]))
    pretrained = accuracy["pretrained"]
    shown = all(accuracy[encoder] >= 80 and accuracy[encoder] - pretrained >= 10 for encoder in ("finetuned", "masked"))
    task = tasks[0]
    return ("yes" if shown else "no") + f" ({labels.get(task, task)} dev, {len(encoders['masked'][0])} points)", (
        f"leave-one-out {TSNE_NEIGHBOURS}-NN accuracy of the gold label in the 2-D points: pretrained "
        f"{pretrained:.1f}, finetuned {accuracy['finetuned']:.1f}, masked {accuracy['masked']:.1f} %")


def _mask_similarity_finding(path: str | Path, labels: Mapping[str, str], model: str) -> tuple[str, str]:
    """Fig. 5 from its CSV (the rows of ``model``, by name): the dissimilarity s of W_O's masks per task pair in the
    first and in the last masked block (pairs where neither task changed a block's masks, s = nan, left out)."""
    by_block: dict[int, dict[tuple[str, str], float]] = {}
    found = False
    for row in _read_csv(path, ("model", "task_1", "task_2", "block", "role", "s")):
        if row["model"] == model:
            found = True
            if row["role"] == "W_O":
                by_block.setdefault(int(row["block"]), {})[(row["task_1"], row["task_2"])] = float(row["s"])
    if not found:
        return NOT_RUN, MISSING
    if len(by_block) < 2:
        return "undecided", "W_O masked in fewer than two blocks"
    first, last = min(by_block), max(by_block)
    pairs = [(s, by_block[last][pair]) for pair, s in by_block[first].items()
             if pair in by_block[last] and math.isfinite(s) and math.isfinite(by_block[last][pair])]
    if not pairs:
        return "undecided", f"no task pair whose W_O masks changed in both block {first} and block {last}"
    low, high = (float(np.mean([pair[i] for pair in pairs])) for i in (0, 1))
    higher = sum(top > bottom for bottom, top in pairs)
    return ("yes" if high > low else "no"), (
        f"W_O, mean s over {len(pairs)} task pairs: block {first} {low:.2f}, block {last} {high:.2f}; higher in "
        f"block {last} for {higher} of {len(pairs)} pairs")


def _path_finding(path: str | Path, labels: Mapping[str, str], model: str, column: str, path_name: str,
                  position: str, straight: str | None = None) -> tuple[str, str]:
    """Figs. 6/7 from their CSV (the rows of ``model``, by name): per task, the lowest dev score along the path
    (the rows whose ``column`` is ``path_name``, ordered by ``position``) against its two end points; ``straight``:
    the path whose lowest score is given beside it (Fig. 7: the straight segment)."""
    paths: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for row in _read_csv(path, ("task", "model", column, position, "dev_score")):
        if row["model"] == model:
            points = paths.setdefault(row[column], {}).setdefault(row["task"], [])
            points.append((float(row[position]), 100 * float(row["dev_score"])))
    if path_name not in paths:
        return NOT_RUN, MISSING
    parts, shown = [], True
    for task, points in paths[path_name].items():
        points.sort()
        lowest = min(points, key=lambda point: point[1])
        shown = shown and lowest[1] >= min(points[0][1], points[-1][1]) - PATH_TOLERANCE - 1e-9
        text = (f"{labels.get(task, task)}: ends {points[0][1]:.1f} and {points[-1][1]:.1f}, lowest {lowest[1]:.1f} "
                f"(at {lowest[0]:g})")
        if straight and task in paths.get(straight, {}):
            text += f", straight segment's lowest {min(score for _, score in paths[straight][task]):.1f}"
        parts.append(text)
    return ("yes" if shown else "no"), "; ".join(parts)


def _lines_finding(path: str | Path, labels: Mapping[str, str], model: str) -> tuple[str, str]:
    """Fig. 6: the finetuned → masked segment (:func:`_path_finding`)."""
    return _path_finding(path, labels, model, "segment", "finetuned->masked", "gamma")


def _bezier_finding(path: str | Path, labels: Mapping[str, str], model: str) -> tuple[str, str]:
    """Fig. 7: the trained Bézier curve, beside the straight segment (:func:`_path_finding`)."""
    return _path_finding(path, labels, model, "curve", "bezier", "t", straight="line")


#: the deciders of the analyses with one data file, by analysis key: (CSV, task labels, model name) -> (verdict,
#: number)
FILE_DECIDERS = {"sparsity": _sparsity_finding, "layers": _layers_finding, "tsne": _tsne_finding,
                 "mask_similarity": _mask_similarity_finding, "mode_connectivity": _lines_finding,
                 "bezier": _bezier_finding}


def analyses_table(results: Results, analyses: Mapping[str, Any]) -> Table:
    """The paper's analyses next to this grid's: per figure/table the paper's finding in one line, whether this
    model shows it and the number that decides. ``analyses``: the data files of the analyses that were run
    (``sparsity``, ``layers``, ``tsne``, ``mask_similarity``, ``mode_connectivity``, ``bezier``: the CSV of
    Fig. 1, 2, 4, 5, 6, 7 (:data:`FILE_DECIDERS`); ``generalization``: Table 3's records; ``memory``: Fig. 3's CSV)
    and ``configured``, the configuration's analyses (those whose data file is not given point to their own
    output); the others are not run at full data yet."""
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
            elif key in FILE_DECIDERS and analyses.get(key):
                verdict, number = FILE_DECIDERS[key](analyses[key], labels, results.layout.models[model]["name"])
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
