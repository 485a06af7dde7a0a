"""The run log of a results folder: one row per finished training run, read from the runs' own records.

A grid that is trained across working sessions is reported run by run while its tables are not complete yet
(``results/reference/runs.md``): each row gives the dev score after every epoch (the restored best in bold), whether
the lr is an extension of the initial grid or the chosen one, and the train time. Everything comes from the
committed ``metrics.json``, ``predictions.safetensors`` and selection records, so the log can be regenerated and
compared byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from maskbench.data import tasks
from maskbench.io.errors import DataError
from maskbench.io.fileio import atomic_path
from maskbench.records import METRICS_FILE, PREDICTIONS_FILE, read_chosen, read_run_record, read_selection_round
from maskbench.results.paper import majority_baseline
from maskbench.results.tables import METHOD_LABELS, METRIC_NAMES, TASK_LABELS, short_lr
from maskbench.training.method_registry import masking_methods

HEADERS = ["task", "method", "lr", "seed", "dev per epoch (%)", "best", "train time"]


def _selection(results: Path, model: str, task: str, method: str) -> tuple[list[float] | None, float | None]:
    """The initial lr grid (selection round 0) and the chosen lr of a cell; None where not known yet."""
    folder = results / "selection" / model / task / method
    grid = chosen = None
    if (folder / "round0.json").is_file():
        grid = [float(lr) for lr in read_selection_round(folder / "round0.json")["initial_grid"]]
    if (folder / "chosen.json").is_file():
        chosen = float(read_chosen(folder / "chosen.json")["best_lr"])
    return grid, chosen


def task_label(task: str, record: dict[str, Any]) -> str:
    """The task's table label; a run trained on a capped subset (``max_train_examples``) says so and how large."""
    cap = record["config"].get("max_train_examples")
    if cap is not None and cap <= record["sizes"]["train"]:
        return f"{TASK_LABELS[task]} (train capped at {cap:,})"
    return TASK_LABELS[task]


def _finished(folder: Path) -> list[Path]:
    """The cell's finished runs (a record and its predictions), seed 1 by lr first, then the other seeds."""
    runs = [path.parent for path in folder.glob(f"lr*/seed*/{METRICS_FILE}")
            if (path.parent / PREDICTIONS_FILE).is_file()]
    return sorted(runs, key=lambda run: (int(run.name[4:]), float(run.parent.name[2:])))


def run_rows(results: str | Path, model: str, task_order: Sequence[str] | None = None
             ) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """One row per finished grid run of ``model`` under ``results/runs``, tasks in ``task_order`` (else the
    tables'); one row per task: its dev examples and majority-class score (from a run's saved dev labels); one row
    per finished analysis run (folders ``<method>_<variant>``)."""
    results = Path(results)
    root = results / "runs" / model
    present = sorted(path.name for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
    unknown = [task for task in present if task not in TASK_LABELS]
    if unknown:
        raise DataError(f"{root}: folders {unknown} are not tasks")
    order = [task for task in (task_order or TASK_LABELS) if task in present]
    rows, baselines, analysis_rows = [], [], []
    for task in order:
        spec = tasks.get_task(task)
        cells = [(method, root / task / method) for method in _method_order() if (root / task / method).is_dir()]
        variants = _variant_folders(root / task)
        majority = None
        for folder in [folder for _, folder in cells] + variants:
            runs = _finished(folder)
            if runs:
                record = read_run_record(runs[0] / METRICS_FILE)
                majority = 100 * majority_baseline(runs[0], record["metric"], spec.label_names)
                baselines.append([TASK_LABELS[task], METRIC_NAMES[record["metric"]], str(record["sizes"]["dev"]),
                                  f"{majority:.1f}"])
                break
        for method, folder in cells:
            grid, chosen = _selection(results, model, task, method)
            for run in _finished(folder):
                record = read_run_record(run / METRICS_FILE)
                lr, seed = float(record["lr"]), int(record["seed"])
                tag = short_lr(lr)
                if seed > 1 and chosen is not None and lr == chosen:
                    tag += " (chosen)"
                elif grid is not None and lr not in grid:
                    tag += " (extension)"
                rows.append(_run_row(task, record, method, tag, majority))
        for folder in variants:
            for run in _finished(folder):
                record = read_run_record(run / METRICS_FILE)
                analysis_rows.append(_run_row(task, record, _variant_cell(record), short_lr(record["lr"]), majority))
    return rows, baselines, analysis_rows


def _run_row(task: str, record: dict[str, Any], method_cell: str, lr_cell: str, majority: float) -> list[str]:
    scores = [f"{100 * score:.1f}" for score in record["dev_scores"]]
    scores[record["best_epoch"] - 1] = f"**{scores[record['best_epoch'] - 1]}**"
    best = f"{100 * record['dev_score']:.1f}"
    best += (" = majority class" if abs(100 * record["dev_score"] - majority) < 0.05
             else f" (epoch {record['best_epoch']})")
    return [task_label(task, record), method_cell, lr_cell, str(record["seed"]), ", ".join(scores), best,
            f"{round(record['train_time_s'] / 60)} min"]


def _variant_folders(task_folder: Path) -> list[Path]:
    """The task's analysis-run folders (``<method>_<variant>``, e.g. ``masking_s0.01_b2-5`` of Fig. 1)."""
    folders = sorted(path for path in task_folder.iterdir() if path.is_dir() and path.name not in METHOD_LABELS)
    stray = [path.name for path in folders if path.name.split("_", 1)[0] not in METHOD_LABELS]
    if stray:
        raise DataError(f"{task_folder}: folders {stray} are neither methods ({sorted(METHOD_LABELS)}) nor their "
                        f"analysis variants (<method>_<variant>)")
    return folders


def _variant_cell(record: dict[str, Any]) -> str:
    """What an analysis run varies, from its own configuration."""
    mask = record["config"].get("mask") or {}
    if record["method"] not in masking_methods() or "initial_sparsity" not in mask:
        return record["method"]
    return f"{record['method']}, {100 * mask['initial_sparsity']:g} % initial sparsity, blocks {mask['blocks']}"


def _method_order() -> list[str]:
    """The registered methods as the run log lists them: the full-weight baseline (finetuning) first, as the paper's
    Table 1 does, then the registry's order."""
    from maskbench.training.method_registry import registered

    return sorted(registered(), key=lambda name: not registered()[name].full_weights)


def render_run_log(results: str | Path, model: str = "minilm", task_order: Sequence[str] | None = None) -> str:
    """The run log as Markdown."""
    rows, baselines, analysis_rows = run_rows(results, model, task_order)
    intro = (f"# Finished runs ({model})\n\nEvery finished training run under `runs/{model}/`, from its "
             "`metrics.json`: the dev score after each epoch (the best epoch, whose parameters the run restored, in "
             "bold), the lr marked as an *extension* of the initial grid or as the *chosen* lr of a later seed, and "
             "the wall time of the run's epochs (summed over restarts). Regenerated by `python -m maskbench.cli step "
             "run-log '{\"results\": \"<this folder>\", \"out\": \"<this folder>/runs.md\"}'`; "
             "`tests/test_reference.py` checks that it is.\n\n")
    majority = ("\n\nThe majority-class score of each task's dev set (always predicting its most frequent label):"
                "\n\n" + tabulate(baselines, ["task", "metric", "dev examples", "majority class (%)"],
                                   tablefmt="github", disable_numparse=True))
    analyses = ""
    if analysis_rows:
        analyses = ("\n\nAnalysis runs (outside the grid, e.g. Fig. 1's initial sparsities; a grid run with the same "
                    "settings is reused instead and listed above):\n\n"
                    + tabulate(analysis_rows, ["task", "run", *HEADERS[2:]], tablefmt="github", disable_numparse=True))
    return intro + tabulate(rows, HEADERS, tablefmt="github", disable_numparse=True) + analyses + majority + "\n"


def write_run_log(results: str, out: str, model: str = "minilm", task_order: list[str] | None = None) -> None:
    """Workflow/CLI step: :func:`render_run_log` written atomically to ``out``."""
    text = render_run_log(results, model, task_order)
    with atomic_path(out, "run-log") as tmp:
        Path(tmp).write_text(text)
