"""What the analyses share: rebuilding a trained model from a run directory, scoring it on prepared data, and
drawing figures off the pyplot state machine and one at a time (:mod:`maskbench.results.drawing`), so that they
can be made in Snakemake's threads."""

from __future__ import annotations

import csv
import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader

from maskbench.data import tasks
from maskbench.data.metrics import score_logits
from maskbench.io.errors import DataError, MaskFileError
from maskbench.io.fileio import atomic_path
from maskbench.io.provenance import versions
from maskbench.records import METRICS_FILE, read_run_record, run_directory
from maskbench.training.train import predict


def run_record(run: str | Path) -> dict[str, Any]:
    """A finished run's ``metrics.json``, checked (:func:`maskbench.records.read_run_record`)."""
    return read_run_record(run_directory(run) / METRICS_FILE)


def load_run_model(run: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained model of a run: the pretrained model with the run's masks merged in (masking), with its
    adapter or biases (LoRA, IA3, BitFit), or the finetuned weights (finetuning; saved only when the run had
    ``--save-weights``, which the workflow sets for the cells an analysis needs)."""
    from maskbench.training.methods import get_method

    run_dir = run_directory(run)
    record = run_record(run_dir)
    method = get_method(record["method"])
    try:
        artefact = method.run_artefact(run_dir)
    except MaskFileError as error:
        raise DataError(str(error)) from None
    return method.load(artefact, base=record["model"], device=device).eval()


def evaluate(model: nn.Module, loader: DataLoader, task: str, device: str | torch.device = "cpu") -> float:
    """The task's metric of ``model`` on ``loader``."""
    spec = tasks.get_task(task)
    output = predict(model, loader, spec.kind, torch.device(device))
    return score_logits(spec.metric, output["logits"], output["labels"], spec.label_names, output.get("lengths"))


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, laid out by matplotlib's constrained layout (titles and colour bars fit)."""
    figure = Figure(figsize=(width, height), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def suptitle(figure: Figure, text: str) -> None:
    """The figure's title, wrapped to the figure's width."""
    width = int(figure.get_figwidth() * 13)
    figure.suptitle(textwrap.fill(text, width), fontsize=10)


def save_figure(figure: Figure, png: str | Path) -> None:
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png")


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> None:
    """Rows as CSV (columns: ``columns`` or the keys in order of first appearance), atomically."""
    if columns is None:
        columns = []
        for row in rows:
            columns += [key for key in row if key not in columns]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


def write_record(path: str | Path, record: Mapping[str, Any]) -> None:
    """An analysis's JSON record, with the versions that produced it."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({**record, "versions": versions()}, indent=2, sort_keys=True, default=str) + "\n")


__all__ = ["evaluate", "load_run_model", "new_figure", "run_record",
           "save_figure", "suptitle", "write_csv", "write_record"]
