"""Mode connectivity (§6.3, Appendix B): is there a high-accuracy path between the finetuned and the masked model?

Fig. 6: dev score of W(γ) = W0 + γ(W1 − W0) on three segments: finetuned (γ=0) → masked (γ=1), pretrained →
finetuned and pretrained → masked. Every parameter of the model is interpolated, head included. The masked model's
weights are W ⊙ M (its classifier too: the random head it was trained with, masked); the pretrained model is the
same network unmasked (the pretrained encoder with that random head, which finetuning started from as well: both
runs draw their head from the same seed).

Fig. 7: a Bézier curve with n trainable bends between the two minima (Garipov et al., 2018),
φ(t) = Σ_{i=0}^{n+1} C(n+1, i) (1−t)^{n+1−i} t^i w_i, w_0 = finetuned, w_{n+1} = masked, trained by minimising
E_{t~U[0,1]} L(φ(t)) on the training set with one t drawn per batch (Monte Carlo), then scored along t. The bends
start on the straight segment, so the untrained curve is the line of Fig. 6.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from maskbench.analysis.runs import (
    evaluate,
    load_run_model,
    new_figure,
    run_record,
    save_figure,
    suptitle,
    write_csv,
    write_record,
)
from maskbench.data import tasks
from maskbench.data.models import load_tokenizer
from maskbench.data.prepare import WORD_COUNTS, load_prepared
from maskbench.data.tokenising import Collator
from maskbench.io.errors import ConfigError
from maskbench.records import run_directory
from maskbench.results.drawing import draws_alone
from maskbench.results.tables import METRIC_NAMES, TASK_LABELS, read_record
from maskbench.training.masking import merge_masks
from maskbench.training.masking.serialization import load_masked_model
from maskbench.training.train import eval_loader, fixed_subset

State = dict[str, torch.Tensor]
SEGMENTS = (("finetuned", "masked"), ("pretrained", "finetuned"), ("pretrained", "masked"))


def endpoint_states(finetuned_run: str | Path, masked_run: str | Path) -> tuple[nn.Module, dict[str, State]]:
    """A model to evaluate in, and the pretrained, finetuned and masked parameters (float tensors by name)."""
    finetuned_record, masked_record = run_record(finetuned_run), run_record(masked_run)
    if (finetuned_record["method"], masked_record["method"]) != ("finetuning", "masking"):
        raise ConfigError(f"{finetuned_run} / {masked_run}: expected a finetuning and a masking run")
    for key in ("task", "model", "seed"):
        if finetuned_record[key] != masked_record[key]:
            raise ConfigError(f"{finetuned_run} / {masked_run}: runs of different {key}s "
                              f"({finetuned_record[key]!r} vs {masked_record[key]!r})")
    finetuned = load_run_model(finetuned_run)
    masked = load_masked_model(run_directory(masked_run) / "masks", base=masked_record["model"], merge=False)
    pretrained_state = {name: p.detach().clone() for name, p in masked.named_parameters()
                        if not name.endswith("mask_scores")}
    merge_masks(masked)
    states = {"pretrained": pretrained_state,
              "finetuned": {name: p.detach().clone() for name, p in finetuned.named_parameters()},
              "masked": {name: p.detach().clone() for name, p in masked.named_parameters()}}
    names = [set(state) for state in states.values()]
    if names[0] != names[1] or names[0] != names[2]:
        raise ConfigError(f"{finetuned_run} / {masked_run}: the models' parameters differ: "
                          f"{sorted(names[0] ^ names[1] | names[0] ^ names[2])[:5]}")
    return finetuned, states


def interpolate(start: State, end: State, gamma: float) -> State:
    return {name: start[name] + gamma * (end[name] - start[name]) for name in start}


def _load(model: nn.Module, state: State) -> None:
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            parameters[name].copy_(value)


def line_scores(finetuned_run: str | Path, masked_run: str | Path, prepared: str | Path, max_length: int,
                points: int = 11, limit: int | None = None) -> dict[str, Any]:
    """Dev score at ``points`` evenly spaced γ on each of the three segments (Fig. 6)."""
    model, states = endpoint_states(finetuned_run, masked_run)
    record = run_record(masked_run)
    task = record["task"]
    loader = eval_loader(prepared, task, record["model"], max_length, "dev", limit)
    gammas = np.linspace(0.0, 1.0, points).tolist()
    rows = []
    for start, end in SEGMENTS:
        for gamma in tqdm(gammas, desc=f"{task} {start}->{end}", leave=False):
            _load(model, interpolate(states[start], states[end], gamma))
            rows.append({"segment": f"{start}->{end}", "gamma": gamma,
                         "dev_score": evaluate(model, loader, task)})
    return {"task": task, "model": record["model"], "seed": record["seed"],
            "metric": tasks.get_task(task).metric, "examples": len(loader.dataset),
            "runs": {"finetuned": str(finetuned_run), "masked": str(masked_run)}, "points": rows}


def write_line_scores(finetuned_run: str | Path, masked_run: str | Path, prepared: str | Path, max_length: int,
                      out: str | Path, points: int = 11, limit: int | None = None) -> dict[str, Any]:
    """Workflow step: one task's Fig. 6 numbers as JSON."""
    result = line_scores(finetuned_run, masked_run, prepared, max_length, points, limit)
    write_record(out, result)
    return result


def _metric_axis(metric: str) -> str:
    return f"dev {METRIC_NAMES.get(metric, metric)} (%)"


@draws_alone
def plot_lines(records: Sequence[Mapping[str, Any]], png: str | Path) -> None:
    """Fig. 6: top row finetuned → masked, bottom row pretrained → finetuned / masked; one column per task."""
    figure = new_figure(4.6 * len(records), 7.0)
    axes = figure.subplots(2, len(records), squeeze=False)
    for column, record in enumerate(records):
        name = TASK_LABELS.get(record["task"], record["task"])
        top, bottom = axes[0][column], axes[1][column]
        for ax, segments in ((top, ["finetuned->masked"]), (bottom, ["pretrained->finetuned", "pretrained->masked"])):
            for segment, style in zip(segments, ("o-", "s--")):
                rows = [r for r in record["points"] if r["segment"] == segment]
                ax.plot([r["gamma"] for r in rows], [100 * r["dev_score"] for r in rows], style,
                        label=segment.replace("->", " → "))
            ax.set_ylabel(_metric_axis(record["metric"]))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        top.set_title(f"{name}: finetuned (γ=0) → masked (γ=1)", fontsize=9)
        top.set_xlabel("γ")
        bottom.set_title(f"{name}: pretrained (γ=0) → finetuned / masked (γ=1)", fontsize=9)
        bottom.set_xlabel("γ")
    first = records[0]
    suptitle(figure, f"Fig. 6: dev score along W(γ) = W0 + γ(W1 − W0) ({first['model']}, seed {first['seed']}, "
                    f"selected lrs)")
    save_figure(figure, png)


def _write_curves(paths: Sequence[str | Path], png: str | Path, data_csv: str | Path, plot) -> None:
    """The per-task records' points as one CSV, and their figure."""
    records = [read_record(path) for path in paths]
    write_csv([{"task": r["task"], "model": r["model"], "seed": r["seed"], "metric": r["metric"], **point}
               for r in records for point in r["points"]], data_csv)
    plot(records, png)


def write_lines_figure(paths: Sequence[str | Path], png: str | Path, data_csv: str | Path) -> None:
    """Workflow step: Fig. 6 and its numbers from the per-task records."""
    _write_curves(paths, png, data_csv, plot_lines)


# --- Fig. 7: Bézier curves -------------------------------------------------------------------------------


def bezier_weights(t: float | torch.Tensor, degree: int) -> list[float | torch.Tensor]:
    """Bernstein coefficients C(degree, i) (1−t)^(degree−i) t^i, i = 0..degree."""
    return [math.comb(degree, i) * (1 - t) ** (degree - i) * t ** i for i in range(degree + 1)]


def bezier_point(t: float | torch.Tensor, start: State, bends: Sequence[State], end: State) -> State:
    """φ(t) for the control points start, bends..., end."""
    controls = [start, *bends, end]
    coefficients = bezier_weights(t, len(controls) - 1)
    return {name: sum(c * point[name] for c, point in zip(coefficients, controls)) for name in start}


def _train_loader(prepared: str | Path, task: str, model: str, max_length: int, batch_size: int,
                  limit: int | None, seed: int) -> DataLoader:
    encoded, _ = load_prepared(prepared, task, model, max_length)
    dataset = fixed_subset(encoded["train"], limit)
    columns = [c for c in dataset.column_names if c not in WORD_COUNTS]
    return DataLoader(dataset.select_columns(columns), batch_size=batch_size, shuffle=True,
                      collate_fn=Collator(load_tokenizer(model).pad_token_id),
                      generator=torch.Generator().manual_seed(seed))


def train_bezier(model: nn.Module, start: State, end: State, loader: DataLoader, bends: int = 3, epochs: int = 1,
                 lr: float = 1e-5, seed: int = 1) -> tuple[list[State], list[float]]:
    """Train ``bends`` control points between ``start`` and ``end`` (Adam, one t ~ U[0,1] per batch)."""
    if bends < 1:
        raise ConfigError(f"bezier.bends: expected at least 1, got {bends}")
    points = [{name: nn.Parameter(start[name] + (i / (bends + 1)) * (end[name] - start[name]))
               for name in start} for i in range(1, bends + 1)]
    optimizer = torch.optim.Adam([p for point in points for p in point.values()], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    buffers = dict(model.named_buffers())
    losses = []
    model.train()
    for epoch in range(epochs):
        for batch in tqdm(loader, desc=f"bezier epoch {epoch + 1}/{epochs}", leave=False):
            t = float(torch.rand((), generator=generator))
            parameters = bezier_point(t, start, points, end)
            loss = functional_call(model, {**parameters, **buffers}, args=(), kwargs=batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    return [{name: p.detach() for name, p in point.items()} for point in points], losses


def bezier_scores(finetuned_run: str | Path, masked_run: str | Path, prepared: str | Path, max_length: int,
                  bends: int = 3, epochs: int = 1, lr: float = 1e-5, batch_size: int = 32,
                  max_train_examples: int | None = None, points: int = 11,
                  limit: int | None = None) -> dict[str, Any]:
    """Dev score along the straight segment and along the trained Bézier curve (Fig. 7)."""
    model, states = endpoint_states(finetuned_run, masked_run)
    record = run_record(masked_run)
    task, seed = record["task"], record["seed"]
    torch.manual_seed(seed)  # dropout while the curve trains
    train = _train_loader(prepared, task, record["model"], max_length, batch_size, max_train_examples, seed)
    loader = eval_loader(prepared, task, record["model"], max_length, "dev", limit)
    start, end = states["finetuned"], states["masked"]
    trained, losses = train_bezier(model, start, end, train, bends, epochs, lr, seed)
    straight = [{name: start[name] + (i / (bends + 1)) * (end[name] - start[name]) for name in start}
                for i in range(1, bends + 1)]
    rows = []
    for curve, controls in (("line", straight), ("bezier", trained)):
        for t in np.linspace(0.0, 1.0, points).tolist():
            _load(model, bezier_point(t, start, controls, end))
            rows.append({"curve": curve, "t": t, "dev_score": evaluate(model, loader, task)})
    return {"task": task, "model": record["model"], "seed": seed, "metric": tasks.get_task(task).metric,
            "bends": bends, "epochs": epochs, "lr": lr, "batch_size": batch_size,
            "train_examples": len(train.dataset), "examples": len(loader.dataset),
            "train_loss": {"first": losses[0] if losses else None, "last": losses[-1] if losses else None,
                           "mean_last_10": float(np.mean(losses[-10:])) if losses else None},
            "runs": {"finetuned": str(finetuned_run), "masked": str(masked_run)}, "points": rows}


def write_bezier(finetuned_run: str | Path, masked_run: str | Path, prepared: str | Path, max_length: int,
                 out: str | Path, **options: Any) -> dict[str, Any]:
    """Workflow step: one task's Fig. 7 numbers as JSON."""
    result = bezier_scores(finetuned_run, masked_run, prepared, max_length, **options)
    write_record(out, result)
    return result


@draws_alone
def plot_bezier(records: Sequence[Mapping[str, Any]], png: str | Path) -> None:
    figure = new_figure(5.0 * len(records), 4.0)
    axes = figure.subplots(1, len(records), squeeze=False)[0]
    for ax, record in zip(axes, records):
        for curve, style, label in (("bezier", "o-", f"trained {record['bends']}-bend Bézier curve"),
                                    ("line", "s--", "straight segment (untrained curve)")):
            rows = [r for r in record["points"] if r["curve"] == curve]
            ax.plot([r["t"] for r in rows], [100 * r["dev_score"] for r in rows], style, label=label)
        ax.set_title(f"{TASK_LABELS.get(record['task'], record['task'])}: finetuned (t=0) → masked (t=1)", fontsize=9)
        ax.set_xlabel("position on the curve t")
        ax.set_ylabel(_metric_axis(record["metric"]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    first = records[0]
    suptitle(figure, f"Fig. 7: dev score along a Bézier curve between the finetuned and the masked minimum "
                    f"({first['model']}, seed {first['seed']})")
    save_figure(figure, png)


def write_bezier_figure(paths: Sequence[str | Path], png: str | Path, data_csv: str | Path) -> None:
    """Workflow step: Fig. 7 and its numbers from the per-task records."""
    _write_curves(paths, png, data_csv, plot_bezier)
