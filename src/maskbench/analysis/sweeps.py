"""Masking sweeps (§5.1): dev score vs initial sparsity (Fig. 1) and vs which blocks are masked (Fig. 2, Table 7).

Each point is the mean ± std over seeds of the runs' best dev scores. The runs describe themselves (task, seed and
mask configuration come from their ``metrics.json``), so the workflow only hands over the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.analysis.runs import new_figure, save_figure, suptitle, write_csv
from maskbench.io.errors import ConfigError, DataError
from maskbench.records import load_runs, split_predictions
from maskbench.results.aggregate import mean_std
from maskbench.results.drawing import draws_alone
from maskbench.results.paper import block_set
from maskbench.results.tables import METRIC_NAMES, Table, task_label
from maskbench.training.method_registry import masking_methods


def _blocks_label(blocks: str | None) -> str:
    """'0-11' -> '00-11' (the paper's labels); None -> 'default'."""
    if blocks is None:
        return "default"
    parts = []
    for part in blocks.split(","):
        ends = part.split("-")
        parts.append("-".join(f"{int(end):02d}" if end.isdigit() else end for end in ends))
    return ",".join(parts)


def one_class(metrics_path: str | Path) -> bool | None:
    """Whether a run's best-epoch dev predictions (its ``predictions.safetensors``) name one class for every
    example — a run stuck at the majority class; None when the run stored no dev predictions."""
    try:
        predicted = split_predictions(Path(metrics_path).parent, "dev")
    except DataError:
        return None
    return None if predicted is None else bool(np.unique(predicted["predictions"]).size == 1)


def sweep_points(metrics_paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One point per (task, initial sparsity, blocks): mean ± std of dev over seeds, in first-seen order, and how
    many of its seeds predict one class for every dev example (``one_class_seeds``; :func:`one_class`).

    Runs of one point must agree on everything but the seed (model, lr, training settings): a mixed-up input is
    refused, naming the runs.
    """
    records = load_runs(metrics_paths)
    groups: dict[tuple[str, float, str | None], list[tuple[str, dict]]] = {}
    for path, record in zip(metrics_paths, records):
        if record.get("method") not in masking_methods():
            raise ConfigError(f"{path}: a {record.get('method')} run; the sweeps plot the runs of a method that "
                              f"learns masks ({', '.join(masking_methods())})")
        mask = record["config"]["mask"]
        key = (record["task"], float(mask["initial_sparsity"]), mask.get("blocks"))
        groups.setdefault(key, []).append((str(path), record))
    points = []
    for (task, sparsity, blocks), members in groups.items():
        settings = {(r["model"], r["lr"], r["config"]["batch_size"], r["config"]["epochs"]) for _, r in members}
        if len(settings) > 1:
            raise ConfigError(f"runs of {task} at sparsity {sparsity}, blocks {blocks} differ in model/lr/batch/"
                              f"epochs: {', '.join(path for path, _ in members)}")
        seeds = [r["seed"] for _, r in members]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"runs of {task} at sparsity {sparsity}, blocks {blocks} repeat a seed: {seeds}")
        mean, std = mean_std([r["dev_score"] for _, r in members])
        final = [r["sparsity"] for _, r in members if r.get("sparsity") is not None]
        first = members[0][1]
        stuck = [one_class(path) for path, _ in members]
        points.append({"task": task, "metric": first["metric"], "model": first["model"], "lr": first["lr"],
                       "initial_sparsity": sparsity, "blocks": blocks, "blocks_label": _blocks_label(blocks),
                       "seeds": sorted(seeds), "dev_mean": mean, "dev_std": std,
                       "final_sparsity_mean": float(np.mean(final)) if final else None,
                       "dev_scores": [r["dev_score"] for _, r in members],
                       "one_class_seeds": None if None in stuck else sum(stuck)})
    return points


def _metric_label(metric: str) -> str:
    return f"dev {METRIC_NAMES.get(metric, metric)} (%)"


def _task_axes(figure, tasks: Sequence[str]):
    columns = min(len(tasks), 2) if len(tasks) > 1 else 1
    rows = (len(tasks) + columns - 1) // columns
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for extra in axes[len(tasks):]:
        extra.set_visible(False)
    return dict(zip(tasks, axes))


def _stuck(point: Mapping[str, Any]) -> bool:
    """Every seed of the point predicts one class for every dev example."""
    return bool(point.get("one_class_seeds")) and point["one_class_seeds"] == len(point["seeds"])


def _mark_stuck(ax, points: Sequence[Mapping[str, Any]], x: Sequence[float], labelled: list[bool]) -> None:
    """Circle the points whose runs all predict one class for every dev example (one legend entry per axes)."""
    chosen = [(xi, 100 * p["dev_mean"]) for xi, p in zip(x, points) if _stuck(p)]
    if chosen:
        ax.scatter(*zip(*chosen), s=150, facecolors="none", edgecolors="tab:red", linewidths=1.2, zorder=3,
                   label=None if labelled[0] else "one class for every dev example")
        labelled[0] = True


@draws_alone
def plot_sparsity(points: Sequence[dict[str, Any]], png: str | Path,
                  task_labels: Mapping[str, str] | None = None) -> None:
    """Fig. 1: dev score vs initial sparsity, one panel per task, mean ± std band over seeds."""
    tasks = list(dict.fromkeys(p["task"] for p in points))
    rows = (len(tasks) + 1) // 2
    figure = new_figure(10 if len(tasks) > 1 else 5.5, 3.6 * rows + 0.6)
    axes = _task_axes(figure, tasks)
    for task in tasks:
        series = sorted((p for p in points if p["task"] == task), key=lambda p: p["initial_sparsity"])
        x = np.array([100 * p["initial_sparsity"] for p in series])
        mean = np.array([100 * p["dev_mean"] for p in series])
        std = np.array([100 * p["dev_std"] for p in series])
        ax = axes[task]
        seeds = len(series[0]["seeds"])
        ax.plot(x, mean, marker="o", color="tab:blue",
                label=f"masking, mean of {seeds} seeds" if seeds > 1 else f"masking, seed {series[0]['seeds'][0]}")
        if seeds > 1:
            ax.fill_between(x, mean - std, mean + std, color="tab:blue", alpha=0.25, label="± 1 std over seeds")
        _mark_stuck(ax, series, x, [False])
        ax.set_title(f"{task_label(task, task_labels)} (lr {series[0]['lr']:g})")
        ax.set_xlabel("initial sparsity: masked-out weights at the start (%)")
        ax.set_ylabel(_metric_label(series[0]["metric"]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    blocks = {p["blocks_label"] for p in points}
    suptitle(figure, f"Fig. 1: masking's dev score vs initial sparsity ({points[0]['model']}, blocks "
                    f"{', '.join(sorted(blocks))} + pooler + classifier masked; {_seeds_text(points)}). Paper "
                    "(BERT, 4 seeds): a small initial sparsity (5 %) is best, a large one collapses")
    save_figure(figure, png)


def write_sparsity_figure(metrics_paths: Sequence[str | Path], png: str | Path, data_csv: str | Path,
                          task_labels: Mapping[str, str] | None = None) -> list[dict]:
    """Workflow step: Fig. 1 and its numbers (``task_labels``: the configuration's names of tasks)."""
    points = sweep_points(metrics_paths)
    write_csv(points, data_csv, ["task", "metric", "model", "lr", "blocks", "initial_sparsity", "dev_mean",
                                 "dev_std", "final_sparsity_mean", "seeds", "dev_scores", "one_class_seeds"])
    plot_sparsity(points, png, task_labels)
    return points


def _block_range(blocks: str | None) -> tuple[int, int] | None:
    """'2-5' -> (2, 5), '3' -> (3, 3); None for the default or a set that is not one range."""
    indices = block_set(blocks) if blocks is not None else None
    if not indices or indices[-1] - indices[0] + 1 != len(indices):
        return None
    return indices[0], indices[-1]


def layer_direction(blocks: str | None, first: int, last: int) -> str:
    """Fig. 2's reading of a block set among blocks ``first``..``last``: "all", "top-down" (the last k blocks),
    "bottom-up" (the first k) or "other"."""
    span = _block_range(blocks)
    if span == (first, last):
        return "all"
    if span is not None and span[1] == last:
        return "top-down"
    if span is not None and span[0] == first:
        return "bottom-up"
    return "other"


def _seeds_text(points: Sequence[dict[str, Any]]) -> str:
    counts = sorted({len(p["seeds"]) for p in points})
    if counts == [1]:
        return f"one seed ({', '.join(sorted({str(p['seeds'][0]) for p in points}))}), no error bars"
    return f"mean ± std over {'/'.join(map(str, counts))} seeds"


@draws_alone
def plot_layers(points: Sequence[dict[str, Any]], block_order: Sequence[str], png: str | Path,
                task_labels: Mapping[str, str] | None = None) -> None:
    """Fig. 2: dev score against the number of masked blocks, the top-down sets (the last k blocks) and the
    bottom-up sets (the first k) as two lines per initial sparsity, meeting at "all blocks"; every point is labelled
    with its blocks (the paper's finding: top-down mostly above bottom-up)."""
    tasks = list(dict.fromkeys(p["task"] for p in points))
    rows = (len(tasks) + 1) // 2
    figure = new_figure(11 if len(tasks) > 1 else 6.5, 3.8 * rows + 0.9)
    axes = _task_axes(figure, tasks)
    spans = [span for span in map(_block_range, block_order) if span is not None]
    first, last = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0, 0)
    styles = {"top-down": "top-down (last k blocks)", "bottom-up": "bottom-up (first k blocks)"}
    for task in tasks:
        ax = axes[task]
        stuck_labelled = [False]
        sparsities = sorted({p["initial_sparsity"] for p in points if p["task"] == task})
        for sparsity, marker, colour in zip(sparsities, "os^vD", ("tab:blue", "tab:orange", "tab:green",
                                                                   "tab:red", "tab:purple")):
            by_blocks = {p["blocks"]: p for p in points if p["task"] == task and p["initial_sparsity"] == sparsity}
            ordered = [by_blocks[b] for b in block_order if b in by_blocks]
            direction = {p["blocks"]: layer_direction(p["blocks"], first, last) for p in ordered}
            lines = {name: [p for p in ordered if direction[p["blocks"]] in (name, "all")] for name in styles}
            lines["other"] = [p for p in ordered if direction[p["blocks"]] == "other"]
            for name, line in lines.items():
                if not any(direction[p["blocks"]] == name for p in line):
                    continue
                line.sort(key=lambda p: _block_count(p["blocks"]))
                x = [_block_count(p["blocks"]) for p in line]
                mean = np.array([100 * p["dev_mean"] for p in line])
                std = np.array([100 * p["dev_std"] if len(p["seeds"]) > 1 else 0.0 for p in line])
                ax.errorbar(x, mean, yerr=std if std.any() else None, marker=marker, color=colour, capsize=3,
                            linestyle={"top-down": "-", "bottom-up": "--"}.get(name, "none"),
                            label=f"{styles.get(name, 'other block sets')}, initial sparsity {100 * sparsity:g}%")
                _mark_stuck(ax, line, x, stuck_labelled)
            for p in ordered:
                ax.annotate(p["blocks_label"], (_block_count(p["blocks"]), 100 * p["dev_mean"]), fontsize=7,
                            xytext=(4, 3), textcoords="offset points")
        metric = next(p["metric"] for p in points if p["task"] == task)
        ax.set_xlabel("number of masked transformer blocks")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(task_label(task, task_labels))
        ax.grid(alpha=0.3)
    entries: dict[str, Any] = {}  # one legend for every panel, below them (per panel it hid points)
    for ax in axes.values():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    figure.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=3, fontsize=7)
    suptitle(figure, f"Fig. 2: masking's dev score when only some blocks are masked ({points[0]['model']}; "
                    f"{_seeds_text(points)}). Paper (BERT, 4 seeds): with as many blocks masked, top-down "
                    "masking mostly scores above bottom-up")
    save_figure(figure, png)


def _block_count(blocks: str | None) -> int:
    """How many blocks a set names ('0-3,5' -> 5)."""
    return len(block_set(blocks) or ()) if blocks is not None else 0


def layers_table(points: Sequence[dict[str, Any]], block_order: Sequence[str],
                 task_labels: Mapping[str, str] | None = None) -> Table:
    """Table 7: rows = block sets, columns = task × initial sparsity, cells mean ± std (%)."""
    columns = list(dict.fromkeys((p["task"], p["initial_sparsity"]) for p in points))
    columns.sort(key=lambda c: (list(dict.fromkeys(p["task"] for p in points)).index(c[0]), c[1]))
    by_key = {(p["task"], p["initial_sparsity"], p["blocks"]): p for p in points}
    rows = []
    for blocks in block_order:
        cells = []
        for task, sparsity in columns:
            point = by_key.get((task, sparsity, blocks))
            cells.append("–" if point is None else (f"{100 * point['dev_mean']:.1f}" if len(point["seeds"]) == 1
                         else f"{100 * point['dev_mean']:.1f} ± {100 * point['dev_std']:.1f}")
                         + (" †" if _stuck(point) else ""))
        rows.append([_blocks_label(blocks), *cells])
    headers = ["Blocks", *(f"{task_label(t, task_labels)} {100 * s:g}%" for t, s in columns)]
    model = points[0]["model"] if points else ""
    sparsities = ", ".join(f"{100 * s:g} %" for s in sorted({s for _, s in columns}))
    return Table(name="table7_layers",
                 caption=f"Table 7: Dev scores (mean ± std over seeds, %; a value without ± is one seed) of masking "
                         f"only the listed transformer blocks ({model}), at initial sparsity {sparsities}.",
                 headers=headers, rows=rows,
                 notes=["Pooler and classifier are masked in every row; the other blocks are left as pretrained.",
                        "Metrics: " + ", ".join(sorted({f"{task_label(p['task'], task_labels)} "
                                                         f"{METRIC_NAMES.get(p['metric'], p['metric'])}"
                                                         for p in points})) + ".",
                        f"Seeds: {_seeds_text(points).replace(', no error bars', '')}.",
                        *(["† every seed predicts one class for every dev example (the majority class)."]
                          if any(_stuck(p) for p in points) else [])])


def write_layers(metrics_paths: Sequence[str | Path], block_order: Sequence[str], png: str | Path,
                 data_csv: str | Path, table_paths: Sequence[str | Path],
                 task_labels: Mapping[str, str] | None = None) -> list[dict]:
    """Workflow step: Fig. 2, its numbers, and Table 7 (md/tex/csv) (``task_labels``: the configuration's names
    of tasks)."""
    points = sweep_points(metrics_paths)
    write_csv(points, data_csv, ["task", "metric", "model", "lr", "blocks", "initial_sparsity", "dev_mean",
                                 "dev_std", "final_sparsity_mean", "seeds", "dev_scores", "one_class_seeds"])
    plot_layers(points, block_order, png, task_labels)
    layers_table(points, block_order, task_labels).write(table_paths)
    return points
