"""Table 3 (§6.2): do masked models generalise? A model trained on one sentiment task is scored on another task's
dev set (SST2 ↔ SEM, and SST2 → IMDB), for masking and finetuning, as improvement over the majority-class baseline
of the evaluated set, averaged over seeds.

A run trained with ``transfer`` settings (:class:`maskbench.training.settings.TrainConfig`) scores itself on the
targets before it finishes and records the scores in its ``metrics.json``
(:func:`maskbench.training.train.run_transfer`); the table then needs no saved model, masks or adapter of the run
(they are not committed with the reference results). A run without such a record (a target or source added to
Table 3 after it finished) is scored from its saved model, or from its model rebuilt by the workflow and checked
against its record (:func:`maskbench.analysis.runs.load_run_model`, :mod:`maskbench.training.rebuild`), and the
Table 3 step adds these scores to the run's record, marked as scored after training
(:func:`maskbench.records.add_transfer_scores`): every Table 3 record is then what its runs' records say, and is
made again from them alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from maskbench.analysis.runs import load_run_model, run_record, write_record
from maskbench.data.fingerprint import prepared_fingerprint
from maskbench.io.errors import ConfigError
from maskbench.records import METRICS_FILE, add_transfer_scores, run_directory
from maskbench.results.aggregate import mean_std
from maskbench.results.tables import METHOD_LABELS, PAPER_METHODS, Table, read_record, task_label
from maskbench.training.settings import recorded_transfer
from maskbench.training.train import check_targets, eval_loader, score_target


def transfer_scores(run_dirs: Sequence[str | Path], targets: Mapping[str, Mapping[str, Any]], model_name: str,
                    split: str = "dev", device: str = "cpu", keep: bool = False) -> dict[str, Any]:
    """Score every run's model (one per seed, all trained on one source task) on every target's ``split``.

    ``targets`` maps a target task to ``{"prepared": dir, "max_length": n, "limit": n or None}``: its data prepared
    for ``model_name``, and the fixed subset (``limit``) the workflow scores elsewhere. A score a run recorded is
    read from its record; the others are computed from its model, and ``keep`` adds them to its record
    (:func:`maskbench.records.add_transfer_scores`; ``recorded`` then lists them too).
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
    mappings = dict(zip(targets, check_targets(source, list(targets), split)))  # refuses other label sets up front
    loaders: dict[str, DataLoader] = {}
    scores: dict[str, list[float]] = {target: [] for target in targets}
    baselines: dict[str, float] = {}
    examples: dict[str, int] = {}
    result["recorded"] = []
    for run_dir, record in zip(run_dirs, records):
        model = None
        recorded, scored = [], {}
        for target, spec in targets.items():
            entry = recorded_transfer(record, target, split, spec["max_length"], spec.get("limit"))
            if entry is not None:
                accuracy, baseline, size = entry["accuracy"], entry["majority_baseline"], entry["examples"]
                recorded.append(target)
            else:  # scored now from the run's saved model (an error names what is missing)
                if model is None:
                    model = load_run_model(run_dir, device)
                if target not in loaders:
                    loaders[target] = eval_loader(spec["prepared"], target, model_name, spec["max_length"], split,
                                                  spec.get("limit"))
                accuracy, baseline = score_target(model, loaders[target], mappings[target], device)
                size = len(loaders[target].dataset)
                scored[target] = {"split": split, "max_length": spec["max_length"], "limit": spec.get("limit"),
                                  "accuracy": accuracy, "majority_baseline": baseline, "examples": size}
            scores[target].append(accuracy)
            baselines[target], examples[target] = baseline, size
        if keep and scored:
            data = {key: value for target in scored
                    for key, value in prepared_fingerprint(targets[target].get("prepared"), target, split).items()}
            add_transfer_scores(run_directory(run_dir) / METRICS_FILE, scored, data)
            recorded = [target for target in targets if target in recorded or target in scored]
        result["recorded"].append(recorded)
        del model
    for target in targets:
        accuracy_mean, accuracy_std = mean_std(scores[target])
        gains = [score - baselines[target] for score in scores[target]]
        gain_mean, gain_std = mean_std(gains)
        result["targets"][target] = {"accuracy": scores[target], "accuracy_mean": accuracy_mean,
                                     "accuracy_std": accuracy_std, "majority_baseline": baselines[target],
                                     "improvement_mean": gain_mean, "improvement_std": gain_std,
                                     "examples": examples[target]}
    return result


def write_transfer(run_dirs: Sequence[str | Path], targets: Mapping[str, Mapping[str, Any]], model_name: str,
                   out: str | Path, split: str = "dev") -> dict[str, Any]:
    """Workflow step: one (model, method, source) of Table 3 as JSON; scores a run had not recorded are added to
    its record first (``transfer_scores(keep=True)``), so the record is made again from the runs' records."""
    result = transfer_scores(run_dirs, targets, model_name, split, keep=True)
    write_record(out, result)
    return result


def generalization_table(records: Sequence[Mapping[str, Any]], model_label: str,
                         task_labels: Mapping[str, str] | None = None) -> Table:
    """Table 3: rows = method × training task, columns = evaluated task: improvement over the majority baseline
    (accuracy in brackets), mean over seeds. ``task_labels``: the configuration's names of tasks (a capped
    training set says so), else :data:`maskbench.results.tables.TASK_LABELS`."""
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
                         task_label(record["source"], task_labels), *cells])
    baselines = {}
    for target in targets:  # in the columns' order
        for record in records:
            if target in record["targets"]:
                entry = record["targets"][target]
                baselines.setdefault(target, (entry["majority_baseline"], entry["examples"]))
    seeds = sorted({len(r["seeds"]) for r in records})
    split = records[0]["split"] if records else "dev"
    methods = {r["method"] for r in records}
    models = (f"masked and finetuned {model_label}" if methods <= set(PAPER_METHODS) else
              f"{model_label} adapted by each method")
    return Table(
        name="table3_generalization",
        caption=f"Table 3: Generalization on {split} (%) of {models}. Row: training "
                f"dataset; column: evaluated dataset. Improvement over the majority-class baseline (accuracy in "
                f"brackets), mean over {'/'.join(map(str, seeds))} seed(s).",
        headers=["Method", "Trained on", *(task_label(t, task_labels) for t in targets)], rows=rows,
        notes=["Majority-class baselines: " + ", ".join(f"{task_label(t, task_labels)} {100 * b:.1f} ({n:,} examples)"
                                                        for t, (b, n) in baselines.items()) + ".",
               "Each model is the run at its task's selected lr; labels are matched by name (negative/positive)."])


def write_generalization_table(paths: Sequence[str | Path], model_label: str, out: Sequence[str | Path],
                               task_labels: Mapping[str, str] | None = None) -> Table:
    """Workflow step: Table 3 (md/tex/csv) from the per-(method, source) records."""
    table = generalization_table([read_record(path) for path in paths], model_label, task_labels)
    table.write(out)
    return table
