"""Fig. 4 (§6.1): t-SNE (scikit-learn, default parameters) of the [CLS] vector of the topmost transformer block on a
dev set, for the pretrained, the finetuned and the masked encoder, coloured by gold label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.manifold import TSNE
from torch import nn
from torch.utils.data import DataLoader

from maskbench.analysis.runs import (
    load_run_model,
    new_figure,
    run_record,
    save_figure,
    suptitle,
    write_csv,
)
from maskbench.data import tasks
from maskbench.data.models import load_model
from maskbench.io.errors import ConfigError
from maskbench.results.drawing import draws_alone
from maskbench.results.tables import TASK_LABELS
from maskbench.training.train import eval_loader


@torch.no_grad()
def cls_vectors(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] (first position) of the last hidden layer for every example, and the gold labels."""
    model.eval()
    encoder = model.base_model
    vectors, labels = [], []
    for batch in loader:
        labels.append(batch.pop("labels"))
        hidden = encoder(**batch, output_hidden_states=True).hidden_states[-1]
        vectors.append(hidden[:, 0].float())
    return torch.cat(vectors).numpy(), torch.cat(labels).numpy()


def embed(vectors: np.ndarray, seed: int) -> np.ndarray:
    """2-d t-SNE with scikit-learn's defaults (perplexity capped below the number of points)."""
    perplexity = min(30.0, max(2.0, (len(vectors) - 1) / 3))
    return TSNE(n_components=2, random_state=seed, perplexity=perplexity).fit_transform(vectors)


def tsne_points(finetuned_run: str | Path, masked_run: str | Path, prepared: str | Path, max_length: int,
                limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """t-SNE coordinates of the three encoders' [CLS] vectors on the task's dev set."""
    finetuned_record, masked_record = run_record(finetuned_run), run_record(masked_run)
    if (finetuned_record["method"], masked_record["method"]) != ("finetuning", "masking"):
        raise ConfigError(f"{finetuned_run} / {masked_run}: expected a finetuning and a masking run")
    if finetuned_record["task"] != masked_record["task"] or finetuned_record["model"] != masked_record["model"]:
        raise ConfigError(f"{finetuned_run} / {masked_run}: runs of different tasks or models")
    task, model_name = masked_record["task"], masked_record["model"]
    spec = tasks.get_task(task)
    loader = eval_loader(prepared, task, model_name, max_length, "dev", limit)
    encoders = {"pretrained": load_model(model_name, spec.kind, spec.label_names),
                "finetuned": load_run_model(finetuned_run), "masked": load_run_model(masked_run)}
    points = []
    for name, model in encoders.items():
        vectors, labels = cls_vectors(model, loader)
        coordinates = embed(vectors, seed)
        points += [{"encoder": name, "task": task, "model": model_name, "index": i, "x": float(x), "y": float(y),
                    "label": spec.label_names[label]} for i, ((x, y), label) in enumerate(zip(coordinates, labels))]
    return points


@draws_alone
def plot_tsne(points: list[dict[str, Any]], png: str | Path) -> None:
    encoders = list(dict.fromkeys(p["encoder"] for p in points))
    labels = list(dict.fromkeys(p["label"] for p in points))
    figure = new_figure(4.2 * len(encoders), 4.4)
    axes = figure.subplots(1, len(encoders), squeeze=False)[0]
    colours = dict(zip(labels, ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]))
    for ax, encoder in zip(axes, encoders):
        for label in labels:
            chosen = [p for p in points if p["encoder"] == encoder and p["label"] == label]
            ax.scatter([p["x"] for p in chosen], [p["y"] for p in chosen], s=6, alpha=0.7, color=colours[label],
                       label=f"gold: {label}")
        ax.set_title(f"{encoder} encoder")
        ax.set_xlabel("t-SNE dimension 1")
        ax.set_ylabel("t-SNE dimension 2")
        ax.legend(fontsize=7, markerscale=2)
    first = points[0]
    suptitle(figure, f"Fig. 4: t-SNE of the top block's [CLS] on {TASK_LABELS.get(first['task'], first['task'])} dev "
                    f"({first['model']}): pretrained vs finetuned vs masked")
    save_figure(figure, png)


def write_tsne(finetuned_run: str | Path, masked_run: str | Path, prepared: str | Path, max_length: int,
               png: str | Path, data_csv: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Workflow step: Fig. 4 and its coordinates."""
    points = tsne_points(finetuned_run, masked_run, prepared, max_length, limit)
    write_csv(points, data_csv)
    plot_tsne(points, png)
    return points
