"""The paper's figures. Fig. 3: parameters and memory needed to serve a growing number of tasks; and dev score
against bytes per task (``dev_vs_bytes``), every method on every task with records (Table 9 drawn per task).

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state), one at a time in a process
(:func:`maskbench.results.drawing.draws_alone`), so that they can be made in the threads of a Snakemake run.
Every figure's numbers are written as CSV next to the PNG. Memory is in MB (10^6 bytes) throughout, as in the
tables (KB = 10^3 bytes); every method has its own colour, marker and line style, and its curve is shifted a little
along x, so that curves that coincide (LoRA, BitFit, IA3) stay apart.
"""

from __future__ import annotations

import csv
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from maskbench.io.fileio import atomic_path
from maskbench.results.drawing import draws_alone
from maskbench.results.rendering import METRIC_NAMES, reported, reported_metric_name
from maskbench.results.tables import (
    METHOD_LABELS,
    TASK_LABELS,
    Results,
    extra_methods,
    load_results,
    memory_per_task,
    task_bytes,
)
from maskbench.training.method_registry import registered
from maskbench.training.sizes import BYTES_PER_MB


def memory_curves(results: Results) -> list[dict[str, Any]]:
    """Accumulated parameters and bytes after 1..n tasks (layout order), per model and method.

    The finetuning curve comes from the reference artefacts alone, so it is drawn even for a configuration
    without finetuning runs; the masking curve needs the masking runs' saved masks. A method run on only some of
    the tasks (``method_tasks``) adds only those: its point's ``tasks`` counts the tasks it serves, ``position`` is
    the place of the task just added in the layout order (the x axis shared by every curve).
    """
    points = []
    for model in results.layout.models:
        per_task = memory_per_task(results, model)
        if not per_task:
            continue
        extras = extra_methods(results.layout)
        totals = {method: [per_task[0]["pretrained_parameters"], per_task[0]["pretrained_bytes"]]
                  for method in ("finetuning", "masking", *extras)}
        served = dict.fromkeys(totals, 0)
        for position, row in enumerate(per_task, start=1):
            totals["finetuning"][0] += row["finetuning_head_parameters"] + row["finetuning_model_parameters"]
            totals["finetuning"][1] += row["finetuning_head_bytes"] + row["finetuning_model_bytes"]
            methods = ["finetuning"]
            if "masking_mask_bits" in row:
                totals["masking"][0] += row["masking_head_parameters"] + row["masking_mask_bits"]
                totals["masking"][1] += row["masking_head_bytes"] + row["masking_mask_bytes"]
                methods.append("masking")
            for method in extras:  # LoRA, IA3, BitFit: the pretrained model once, plus each task's artefact
                if f"{method}_bytes" in row:
                    totals[method][0] += row[f"{method}_parameters"]
                    totals[method][1] += row[f"{method}_bytes"]
                    methods.append(method)
            for method in methods:
                served[method] += 1
                points.append({"model": model, "label": results.layout.model_label(model), "method": method,
                               "tasks": served[method], "position": position, "last_task": row["task"],
                               "parameters": totals[method][0], "bytes": totals[method][1]})
    return points


#: bytes of a MiB, the unit in which :mod:`maskbench.serving.memory` records resident memory (``model_rss_mb``)
BYTES_PER_MIB = 2**20
#: each method's look in every panel: colour, marker, line style (all three differ between methods; the registry's
#: ``MethodInfo.style``)
STYLES = {name: dict(info.style) for name, info in registered().items()}
#: how far (in tasks) each method's points are shifted along x, so that coinciding curves are told apart
OFFSETS = {name: info.plot_offset for name, info in registered().items()}


def serving_curves(results: Results) -> list[dict[str, Any]]:
    """Measured resident memory (MB above imports) of serving 1..n classification tasks, per model and method."""
    return [{"model": model, "label": results.layout.model_label(model), "method": point["method"],
             "tasks": point["tasks"], "resident_mb": point["model_rss_mb"] * BYTES_PER_MIB / BYTES_PER_MB}
            for model, record in results.serving.items() for point in record.get("points", [])]


def _write_csv(points: Sequence[Mapping[str, Any]], path: Path) -> None:
    columns = ["model", "label", "method", "tasks", "position", "last_task", "parameters", "bytes", "resident_mb"]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(points)


@draws_alone
def plot_memory(points: Sequence[Mapping[str, Any]], png: str | Path, title_note: str = "",
                serving: Sequence[Mapping[str, Any]] = ()) -> None:
    figure = Figure(figsize=(15 if serving else 10, 4.2), dpi=150)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3 if serving else 2)
    styles = STYLES
    partial = any(point["tasks"] != point["position"] for point in points)
    series: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for point in points:
        series.setdefault((point["label"], point["method"]), []).append(point)
    positions: dict[int, str] = {}
    for (label, method), values in series.items():
        x = [v["position"] + OFFSETS.get(method, 0.0) for v in values]
        positions.update((v["position"], TASK_LABELS.get(v["last_task"], v["last_task"])) for v in values)
        name = f"{label} {METHOD_LABELS.get(method, method)}"
        axes[0].plot(x, [v["parameters"] / 1e6 for v in values], label=name, markersize=5, **styles[method])
        axes[1].plot(x, [v["bytes"] / BYTES_PER_MB for v in values], label=name, markersize=5, **styles[method])
    _zoom_extras(axes[0], axes[1], series)
    for ax, ylabel, title in ((axes[0], "parameters (millions; a mask bit counts as one)", "(a) Number of parameters"),
                              (axes[1], "memory of the saved files (MB = $10^6$ bytes)", "(b) Memory consumption")):
        ax.set_xlabel("tasks added in this order\n(a method's curve adds only the tasks it ran)"
                      if partial else "number of tasks served (tasks added in this order)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if positions:
            ax.set_xticks(sorted(positions))
            ax.set_xticklabels([f"{i}\n{positions[i]}" for i in sorted(positions)], fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if serving:
        ax = axes[2]
        lines: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for point in serving:
            lines.setdefault((point["label"], point["method"]), []).append(point)
        order = {method: index for index, method in enumerate(styles)}  # colours as in (a) and (b)
        for (label, method), values in sorted(lines.items(), key=lambda item: (item[0][0], order[item[0][1]])):
            ax.plot([v["tasks"] + OFFSETS.get(method, 0.0) for v in values], [v["resident_mb"] for v in values],
                    label=f"{label} {METHOD_LABELS.get(method, method)}", markersize=5, **styles[method])
        ax.set_xlabel("classification tasks served by one process")
        ax.set_ylabel("resident memory above imports (MB = $10^6$ bytes)")
        ax.set_title("(c) Measured memory when serving")
        ax.set_xticks(sorted({v["tasks"] for v in serving}))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    methods = list(dict.fromkeys(point["method"] for point in points))
    versus = " vs ".join(METHOD_LABELS.get(m, m) if m not in ("finetuning", "masking") else m for m in methods) \
        if set(methods) - {"finetuning", "masking"} else "finetuning vs masking"
    figure.suptitle(f"Fig. 3: accumulated parameters and memory of {versus} as tasks are added"
                    + (f" ({title_note})" if title_note else ""), fontsize=10)
    figure.tight_layout()
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png")


def _zoom_extras(parameters_ax: Any, bytes_ax: Any, series: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]],
                 ) -> None:
    """An inset per panel that zooms onto the methods that add little per task (LoRA, BitFit, IA3), whose curves
    lie within a few per cent of the pretrained model at the panel's scale."""
    extras = {key: values for key, values in series.items() if key[1] not in ("finetuning", "masking")}
    if not extras:
        return
    for ax, value, scale in ((parameters_ax, "parameters", 1e6), (bytes_ax, "bytes", BYTES_PER_MB)):
        inset = ax.inset_axes([0.45, 0.3, 0.5, 0.35])
        for (label, method), values in extras.items():
            inset.plot([v["position"] + OFFSETS.get(method, 0.0) for v in values],
                       [v[value] / scale for v in values], markersize=4, **STYLES[method])
        inset.set_xticks(sorted({v["position"] for values in extras.values() for v in values}))
        inset.tick_params(labelsize=6)
        inset.set_title("zoom: " + ", ".join(dict.fromkeys(METHOD_LABELS.get(m, m) for _, m in extras)), fontsize=6)
        inset.grid(alpha=0.3)


def write_memory_figure(layout: Mapping[str, Any], png: str | Path, data_csv: str | Path,
                        aggregates: Sequence[str], references: Sequence[str],
                        serving: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Workflow step: Fig. 3 (PNG) and its numbers (CSV) from the aggregates, reference model sizes and (when
    given, one per model) the measured serving memory of :mod:`maskbench.serving.memory`."""
    results = load_results(layout, aggregates=aggregates, references=references, serving=serving)
    points = memory_curves(results)
    measured = serving_curves(results)
    _write_csv([*points, *measured], Path(data_csv))
    plot_memory(points, png, serving=measured)
    return points


# --- dev score against bytes per task (issue 33, item 4) -----------------------------------------------------


#: the columns of ``dev_vs_bytes.csv``
DEV_BYTES_COLUMNS = ("model", "label", "task", "task_label", "method", "metric", "seeds", "dev_mean", "dev_std",
                     "bytes_per_task")


def dev_bytes_points(results: Results) -> list[dict[str, Any]]:
    """One point per (model, task, method) with records: the dev score (mean ± std over seeds, in the metric the
    tables report, :func:`maskbench.results.tables.reported`) against the bytes one more task costs, as Table 9 counts
    them per task: finetuning a full saved model (with its head), masking the task's masks (as stored) and head,
    LoRA and IA3 the adapter file with the head, BitFit the biases and head (mean over the seeds' artefacts)."""
    points = []
    for model, task, method in results.layout.cells():
        aggregate = results.aggregates.get((model, task, method))
        if aggregate is None:
            continue
        info = registered().get(method)
        if info is not None and info.full_weights:  # a full saved model per task (finetuning)
            reference = results.references.get((model, task))
            size = reference["finetuned_bytes"] if reference else None
        else:
            artefacts = list((aggregate.get("artefacts") or {}).values())
            size = sum(map(task_bytes, artefacts)) / len(artefacts) if artefacts else None
        if size is None:
            continue
        dev = reported(aggregate, "dev")
        points.append({"model": model, "label": results.layout.model_label(model), "task": task,
                       "task_label": results.layout.task_label(task), "method": method,
                       "metric": reported_metric_name(aggregate), "seeds": len(dev["scores"]),
                       "dev_mean": dev["mean"], "dev_std": dev["std"], "bytes_per_task": size})
    return points


@draws_alone
def plot_dev_vs_bytes(points: Sequence[Mapping[str, Any]], png: str | Path) -> None:
    """Small multiples, one panel per (model, task) in layout order: dev score (%) against bytes per task (log x),
    every method its own colour and marker (:data:`STYLES`), ± the seeds' std as error bars, one legend."""
    panels: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for point in points:
        panels.setdefault((point["label"], point["task_label"]), []).append(point)
    columns = min(3, len(panels)) or 1
    rows = -(-len(panels) // columns) or 1
    figure = Figure(figsize=(4.0 * columns, 3.1 * rows + 0.9), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    handles: dict[str, Any] = {}
    sizes = [point["bytes_per_task"] / BYTES_PER_MB for point in points]
    methods = list(dict.fromkeys(point["method"] for point in points))
    for ax, ((label, task_label), values) in zip(axes.flat, panels.items()):
        if sizes:  # one x range in every panel, so that positions compare across tasks
            ax.set_xlim(min(sizes) / 2, max(sizes) * 2)
        missing = [METHOD_LABELS.get(m, m) for m in methods if m not in {p["method"] for p in values}]
        if missing:
            ax.text(0.02, 0.02, "not run: " + ", ".join(missing), transform=ax.transAxes, fontsize=7,
                    color="0.4", va="bottom")
        for point in values:
            style = STYLES[point["method"]]
            container = ax.errorbar(point["bytes_per_task"] / BYTES_PER_MB, 100 * point["dev_mean"],
                                    yerr=100 * point["dev_std"], color=style["color"], marker=style["marker"],
                                    markersize=7, linestyle="none", capsize=3)
            handles.setdefault(point["method"], container)
        metric = METRIC_NAMES.get(values[0]["metric"], values[0]["metric"])
        ax.set_xscale("log")
        ax.set_title(f"{task_label} ({label})" if len({p[0] for p in panels}) > 1 else task_label, fontsize=10)
        ax.set_ylabel(f"dev {metric} (%)", fontsize=8)
        ax.set_xlabel("MB per added task (log scale)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    order = [method for method in STYLES if method in handles]
    figure.legend([handles[m] for m in order], [METHOD_LABELS.get(m, m) for m in order], loc="outside lower center",
                  ncols=len(order), fontsize=9)
    seeds = sorted({point["seeds"] for point in points})
    title = ("Dev score against the bytes each further task costs (finetuning: a full model; masking: its masks and "
             "head; LoRA, IA3: the adapter with the head; BitFit: biases and head), mean ± std over "
             f"{'/'.join(map(str, seeds))} seeds at the lr chosen on dev")
    figure.suptitle(textwrap.fill(title, int(figure.get_figwidth() * 13)), fontsize=10)
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png")


def write_dev_bytes_figure(layout: Mapping[str, Any], png: str | Path, data_csv: str | Path,
                           aggregates: Sequence[str], references: Sequence[str]) -> list[dict[str, Any]]:
    """Workflow step: ``figures/dev_vs_bytes`` (PNG, and its points as CSV) from the aggregates and the reference
    model sizes."""
    points = dev_bytes_points(load_results(layout, aggregates=aggregates, references=references))
    with atomic_path(data_csv) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(DEV_BYTES_COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(points)
    plot_dev_vs_bytes(points, png)
    return points
