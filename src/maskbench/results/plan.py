"""What the workflow plans, decided in the library: configuration rules the schema cannot express, the names of
the analyses' run folders, the outputs of each analysis, and whether a finished run is the run a configuration
asks for.

``workflow/rules/common.smk`` only wires these to paths and wildcards; every check here raises a
:class:`~maskbench.io.errors.ConfigError` (or :class:`~maskbench.io.errors.SettingError`) whose message the workflow
prints as its one-line error. Torch-free: the workflow imports it while planning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from maskbench.data.fingerprint import data_changes
from maskbench.io.errors import ConfigError, RecordError
from maskbench.records import METRICS_FILE, read_run_record
from maskbench.results.selection import folder_labels, format_lr
from maskbench.training.settings import run_identity

#: a number in exponent form without a dot (1e-5): YAML 1.1 (PyYAML) reads it as text
EXPONENT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+")
#: the analyses that train masking runs of their own settings (Figs. 1 and 2): the others read the grid's runs
SWEEPS = ("sparsity", "layers")
#: the analyses that rebuild finetuned models (the grid's finetuning runs of their tasks save their weights)
WEIGHT_ANALYSES = ("generalization", "tsne", "mode_connectivity", "bezier")
_TABLE_FORMATS = (".md", ".tex", ".csv", ".html")
#: analysis -> what it writes under results_dir (the user-facing names)
ANALYSIS_OUTPUTS: dict[str, list[str]] = {
    "sparsity": ["figures/fig1_sparsity.png", "figures/fig1_sparsity.csv"],
    "layers": ["figures/fig2_layers.png", "figures/fig2_layers.csv",
               *(f"tables/table7_layers{suffix}" for suffix in _TABLE_FORMATS)],
    "generalization": [f"tables/table3_generalization{suffix}" for suffix in _TABLE_FORMATS],
    "tsne": ["figures/fig4_tsne.png", "figures/fig4_tsne.csv"],
    "mask_similarity": ["figures/fig5_mask_dissimilarity.png", "figures/fig5_mask_dissimilarity.csv"],
    "mode_connectivity": ["figures/fig6_mode_connectivity.png", "figures/fig6_mode_connectivity.csv"],
    "bezier": ["figures/fig7_bezier.png", "figures/fig7_bezier.csv"],
}


# --- configuration -------------------------------------------------------------------------------------------


def type_hint(error: Any) -> str:
    """What to write instead, for text where the schema expects a number (YAML's exponent form, quotes); ``error``
    is a ``jsonschema.ValidationError``."""
    if error.validator != "type" or not isinstance(error.instance, str):
        return ""
    expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    text = error.instance.strip()
    if "number" in expected and EXPONENT_TEXT.fullmatch(text):
        return " (YAML reads 1e-5 as text: write 1.0e-5)"
    if {"number", "integer"} & set(expected) and not EXPONENT_TEXT.fullmatch(text):
        try:
            float(text)
        except ValueError:
            return ""
        return " (the value is text: write the number without quotes)"
    return ""


def schema_error_message(error: Any, files: str) -> str:
    """One line naming the offending key of a ``jsonschema.ValidationError`` of the configuration ``files``."""
    location = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"invalid configuration at '{location}' ({files}): {error.message}{type_hint(error)}"


def check_grid(config: Mapping[str, Any]) -> None:
    """The keys that refer to each other: every method is registered (:mod:`maskbench.training.method_registry`) and
    has an lr grid, the selection seeds are seeds, the tasks
    of ``method_tasks`` are tasks; and every value that names a run folder has one of its own
    (:func:`maskbench.results.selection.folder_labels`, a :class:`SettingError`)."""
    from maskbench.training.settings import METHODS as REGISTERED

    methods, tasks, seeds = list(config["methods"]), list(config["tasks"]), list(config["seeds"])
    for key, names in (("methods", methods), ("lr_grid", list(config["lr_grid"]))):
        unknown = [name for name in names if name not in REGISTERED]
        if unknown:
            raise ConfigError(f"invalid configuration at '{key}': unknown method(s) {unknown}; registered: "
                              f"{list(REGISTERED)}")
    missing = [method for method in methods if method not in config["lr_grid"]]
    if missing:
        raise ConfigError(f"invalid configuration at 'lr_grid': no grid for method(s) {missing} listed in 'methods'")
    for method, grid in config["lr_grid"].items():
        folder_labels(f"lr_grid.{method}", grid)
    for name, spec in config["analyses"].items():
        if "initial_sparsities" in spec:
            folder_labels(f"analyses.{name}.initial_sparsities", spec["initial_sparsities"])
    selection_seeds = list(config.get("selection_seeds") or seeds)
    if not set(selection_seeds) <= set(seeds):
        raise ConfigError(f"invalid configuration at 'selection_seeds': {selection_seeds} must be a subset of "
                          f"'seeds' {seeds}")
    for method, method_tasks in (config.get("method_tasks") or {}).items():
        if method not in methods or not set(method_tasks) <= set(tasks):
            raise ConfigError(f"invalid configuration at 'method_tasks.{method}': the method must be in 'methods' "
                              f"{methods} and its tasks {method_tasks} in 'tasks' {tasks}")


def analysis_tasks(spec: Mapping[str, Any]) -> list[str]:
    """The tasks of an analysis's settings: ``tasks``, ``task`` or (Table 3) ``sources``."""
    if "tasks" in spec:
        return list(spec["tasks"])
    return [spec["task"]] if "task" in spec else list(spec["sources"])


def check_analyses(config: Mapping[str, Any], runs: Any) -> None:
    """Keys of ``analyses`` that refer to the rest of the configuration (the schema checks the rest). ``runs(task,
    method)`` says whether the grid runs ``method`` on ``task`` (:meth:`maskbench.results.tables.Layout.runs`)."""
    models, tasks, methods, seeds = list(config["models"]), config["tasks"], config["methods"], config["seeds"]
    for name, spec in config["analyses"].items():
        where = f"invalid configuration at 'analyses.{name}"
        if spec["model"] not in config["models"]:
            raise ConfigError(f"{where}.model': {spec['model']!r} is not a key of 'models' ({models})")
        if name in SWEEPS:
            continue
        own = analysis_tasks(spec)
        missing = [task for task in own if task not in tasks]
        if missing:
            raise ConfigError(f"{where}': task(s) {missing} must be in 'tasks' (the analysis reads the grid's "
                              f"runs at the selected lr)")
        needed = ["masking"] if name == "mask_similarity" else ["finetuning", "masking"]
        if name == "generalization":
            needed = [m for m in methods if all(runs(task, m) for task in own)]
        if any(method not in methods for method in needed):
            raise ConfigError(f"{where}': needs the methods {needed} in 'methods'")
        not_run = [(task, m) for task in own for m in needed if not runs(task, m)]
        if not_run:
            raise ConfigError(f"{where}': needs runs of {not_run} (task, method), left out by 'method_tasks'")
        if "seed" in spec and spec["seed"] not in seeds:
            raise ConfigError(f"{where}.seed': {spec['seed']} is not in 'seeds' {list(seeds)}")
        if name == "mask_similarity" and len(spec["tasks"]) < 2:
            raise ConfigError(f"{where}.tasks': needs at least two tasks to compare")


def download_tasks(config: Mapping[str, Any]) -> list[str]:
    """Every task the configuration prepares data for: the grid's and the analyses', in order, once each."""
    tasks = list(config["tasks"])
    for spec in config["analyses"].values():
        tasks += [*spec.get("tasks", []), *([spec["task"]] if "task" in spec else []), *spec.get("sources", []),
                  *spec.get("targets", [])]
    return list(dict.fromkeys(tasks))


def weight_cells(analyses: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(model, task) whose finetuning runs save their weights: the analyses rebuild those models."""
    return {(analyses[name]["model"], task) for name in WEIGHT_ANALYSES if name in analyses
            for task in analysis_tasks(analyses[name])}


def generalization_covers(path: str | Path, targets: Sequence[str], split: str) -> bool:
    """Whether an earlier Table 3 record at ``path`` (:func:`maskbench.analysis.generalization.write_transfer`)
    scored exactly ``targets`` (in that order) on ``split``: then it is not remade for lack of its runs' models (a
    committed record on a fresh checkout)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("split") == split
            and record.get("target_order") == list(targets) and set(record.get("targets") or ()) == set(targets))


def check_generalization_record(path: str | Path, targets: Sequence[str], split: str) -> None:
    """Refuse an existing Table 3 record at ``path`` that scored other targets (or in another order, or on another
    split) than the configuration asks for: Snakemake would keep it (its output exists, its inputs are older), and
    Table 3 would show a row of other targets than its columns. The message names the file to delete; the next
    invocation then scores the runs again (rebuilding the models that were not kept)."""
    if not Path(path).is_file() or generalization_covers(path, targets, split):
        return
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read this Table 3 record ({error}); delete it to make it again") from None
    scored = record.get("target_order") if isinstance(record, dict) else None
    made = record.get("split") if isinstance(record, dict) else None
    raise ConfigError(f"{path} scored {', '.join(map(str, scored or [])) or 'no targets'} on {made or '?'}, but "
                      f"'analyses.generalization' asks for {', '.join(targets)} on {split}: delete it (or every "
                      f"record of {Path(path).parent.parent}) to score the runs again — a run whose model was not "
                      f"kept is retrained and checked against its record first (`rebuild`)")


def sweep_cells(analyses: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(model, task) where the analyses train masking variants of their own settings (Figs. 1 and 2)."""
    return {(analyses[name]["model"], task) for name in SWEEPS if name in analyses
            for task in analysis_tasks(analyses[name])}


def analysis_outputs(analyses: Mapping[str, Any]) -> list[str]:
    """What the configured analyses write, relative to ``results_dir``."""
    return [path for name in analyses for path in ANALYSIS_OUTPUTS[name]]


# --- run folders ---------------------------------------------------------------------------------------------


def variant_name(initial_sparsity: float | str, blocks: str) -> str:
    """The method folder of a masking run of other mask settings than the grid's (``masking_s0.05_b2-11``)."""
    return f"masking_s{format_lr(initial_sparsity)}_b{blocks}"


def variant_overrides(variant: str) -> dict[str, str]:
    """The mask settings a variant folder name stands for (inverse of :func:`variant_name`)."""
    if not variant.startswith("masking_s") or "_b" not in variant:
        raise ConfigError(f"{variant!r} is not a masking variant folder (masking_s<sparsity>_b<blocks>)")
    sparsity, blocks = variant[len("masking_s"):].split("_b", 1)
    return {"initial_sparsity": sparsity, "blocks": blocks}


def is_variant(method_folder: str) -> bool:
    return method_folder.startswith("masking_s") and "_b" in method_folder


def finished_runs(results_dir: str | Path) -> list[tuple[Path, dict[str, str]]]:
    """Every ``metrics.json`` under ``results_dir/runs`` at a path the workflow makes, with the path's parts
    (model, task, method folder, lr, seed), in path order."""
    root = Path(results_dir) / "runs"
    found = []
    for metrics in sorted(root.glob(f"*/*/*/lr*/seed*/{METRICS_FILE}")):
        model, task, method, lr, seed = metrics.parent.relative_to(root).parts
        parts = {"model": model, "task": task, "method": method, "lr": lr[len("lr"):], "seed": seed[len("seed"):]}
        try:
            float(parts["lr"]), int(parts["seed"])
        except ValueError:
            continue  # not a path this workflow makes
        found.append((metrics, parts))
    return found


def checked_run_record(path: str | Path) -> dict[str, Any]:
    """The checked record of a finished run; an invalid one (truncated, wrong shape, NaN score...) is refused
    naming the folder to delete (the next invocation then trains it again)."""
    try:
        return read_run_record(path)
    except RecordError as error:
        raise RecordError(f"{error} — delete {Path(path).parent} to train this run again") from None


def finished_run(metrics_path: str | Path, expected: Mapping[str, Any], data_dir: str | Path | None) -> bool:
    """True when ``metrics_path`` holds a finished run with the settings ``expected`` (a TrainConfig as a dict).

    Such a run is a finished target whatever the age of its files or the code that made it (a committed run on a
    clean checkout, a run made before a refactoring). A finished run of other settings, or of other data than
    ``data_dir`` holds now (:func:`maskbench.data.fingerprint.data_changes`), is refused with a :class:`ConfigError`.
    """
    path = Path(metrics_path)
    if not path.is_file():
        return False
    record = checked_run_record(path)
    if run_identity(record["config"]) != run_identity(dict(expected)):
        raise ConfigError(f"{path} holds a finished run of other settings than this configuration asks for "
                          f"(it was not made by this configuration, or the configuration changed); move or "
                          f"delete its directory to train it again, or use another 'results_dir'")
    changed = data_changes(path, record, expected, data_dir)
    if changed is not None:
        raise ConfigError(f"{path} holds a finished run that {changed} move or delete its directory to train it "
                          f"again, or use another 'results_dir'")
    return True

