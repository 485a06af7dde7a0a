"""Table 3 (§6.2): do masked models generalise? A model trained on one sentiment task is scored on another task's
dev set (SST2 ↔ SEM, and SST2 → IMDB), for masking and finetuning, as improvement over the majority-class baseline
of the evaluated set, averaged over seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskbench import tasks
from maskbench.aggregate import mean_std
from maskbench.analysis.runs import eval_loader, load_run_model, run_record, write_record
from maskbench.errors import ConfigError
from maskbench.metrics import score_logits
from maskbench.tables import METHOD_LABELS, TASK_LABELS, Table, read_record
from maskbench.train import predict


def label_map(source: str, target: str) -> list[int]:
    """Output i of a model trained on ``source`` means label ``label_map[i]`` of ``target`` (matched by name)."""
    source_labels = tasks.get_task(source).label_names
    target_labels = tasks.get_task(target).label_names
    if sorted(source_labels) != sorted(target_labels):
        raise ConfigError(f"a {source} model cannot be scored on {target}: labels {list(source_labels)} vs "
                          f"{list(target_labels)}")
    return [target_labels.index(name) for name in source_labels]


def majority_baseline(labels: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent gold label."""
    return float(np.bincount(np.asarray(labels)).max() / len(labels)) if len(labels) else float("nan")


def transfer_scores(run_dirs: Sequence[str | Path], targets: Mapping[str, Mapping[str, Any]], model_name: str,
                    split: str = "dev", device: str = "cpu") -> dict[str, Any]:
    """Score every run's model (one per seed, all trained on one source task) on every target's ``split``.

    ``targets`` maps a target task to ``{"prepared": dir, "max_length": n, "limit": n or None}``: its data prepared
    for ``model_name``, and the fixed subset (``limit``) the workflow scores elsewhere.
    """
    records = [run_record(run_dir) for run_dir in run_dirs]
    sources = {r["task"] for r in records}
    methods = {r["method"] for r in records}
    if len(sources) != 1 or len(methods) != 1:
        raise ConfigError(f"runs {list(map(str, run_dirs))} mix tasks {sorted(sources)} / methods {sorted(methods)}")
    source, method = sources.pop(), methods.pop()
    result: dict[str, Any] = {"model": model_name, "method": method, "source": source, "split": split,
                              "seeds": [r["seed"] for r in records], "lr": records[0]["lr"],
                              "runs": [str(d) for d in run_dirs], "target_order": list(targets), "targets": {}}
    loaders = {target: eval_loader(spec["prepared"], target, model_name, spec["max_length"], split, spec.get("limit"))
               for target, spec in targets.items()}
    for target in targets:
        if tasks.get_task(target).metric != "accuracy":
            raise ConfigError(f"generalization target {target!r}: scored by {tasks.get_task(target).metric}, "
                              f"the table compares accuracies")
    mappings = {target: label_map(source, target) for target in targets}  # refuses other label sets up front
    scores: dict[str, list[float]] = {target: [] for target in targets}
    baselines: dict[str, float] = {}
    for run_dir in run_dirs:
        model = load_run_model(run_dir, device)
        for target, loader in loaders.items():
            output = predict(model, loader, "single", torch.device(device))
            logits = np.empty_like(output["logits"])
            logits[:, mappings[target]] = output["logits"]
            scores[target].append(score_logits("accuracy", logits, output["labels"]))
            baselines[target] = majority_baseline(output["labels"])
        del model
    for target in targets:
        accuracy_mean, accuracy_std = mean_std(scores[target])
        gains = [score - baselines[target] for score in scores[target]]
        gain_mean, gain_std = mean_std(gains)
        result["targets"][target] = {"accuracy": scores[target], "accuracy_mean": accuracy_mean,
                                     "accuracy_std": accuracy_std, "majority_baseline": baselines[target],
                                     "improvement_mean": gain_mean, "improvement_std": gain_std,
                                     "examples": len(loaders[target].dataset)}
    return result


def write_transfer(run_dirs: Sequence[str | Path], targets: Mapping[str, Mapping[str, Any]], model_name: str,
                   out: str | Path, split: str = "dev") -> dict[str, Any]:
    """Workflow step: one (model, method, source) of Table 3 as JSON."""
    result = transfer_scores(run_dirs, targets, model_name, split)
    write_record(out, result)
    return result


def generalization_table(records: Sequence[Mapping[str, Any]], model_label: str) -> Table:
    """Table 3: rows = method × training task, columns = evaluated task: improvement over the majority baseline
    (accuracy in brackets), mean over seeds."""
    targets = list(dict.fromkeys(t for r in records for t in r.get("target_order", sorted(r["targets"]))))
    rows = []
    for method in dict.fromkeys(r["method"] for r in records):
        for index, record in enumerate(r for r in records if r["method"] == method):
            cells = []
            for target in targets:
                entry = record["targets"].get(target)
                cells.append("–" if entry is None else
                             f"{100 * entry['improvement_mean']:+.1f} ({100 * entry['accuracy_mean']:.1f})")
            rows.append([METHOD_LABELS.get(method, method) if index == 0 else "",
                         TASK_LABELS.get(record["source"], record["source"]), *cells])
    baselines = {}
    for record in records:
        for target, entry in record["targets"].items():
            baselines.setdefault(target, (entry["majority_baseline"], entry["examples"]))
    seeds = sorted({len(r["seeds"]) for r in records})
    split = records[0]["split"] if records else "dev"
    return Table(
        name="table3_generalization",
        caption=f"Table 3: Generalization on {split} (%) of masked and finetuned {model_label}. Row: training "
                f"dataset; column: evaluated dataset. Improvement over the majority-class baseline (accuracy in "
                f"brackets), mean over {'/'.join(map(str, seeds))} seed(s).",
        headers=["Method", "Trained on", *(TASK_LABELS.get(t, t) for t in targets)], rows=rows,
        notes=["Majority-class baselines: " + ", ".join(
                   f"{TASK_LABELS.get(t, t)} {100 * b:.1f} ({n:,} examples)" for t, (b, n) in baselines.items()) + ".",
               "Each model is the run at its task's selected lr; labels are matched by name (negative/positive)."])


def write_generalization_table(paths: Sequence[str | Path], model_label: str,
                               out: Sequence[str | Path]) -> Table:
    """Workflow step: Table 3 (md/tex/csv) from the per-(method, source) records."""
    table = generalization_table([read_record(path) for path in paths], model_label)
    table.write(out)
    return table
