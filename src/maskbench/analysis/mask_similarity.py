"""Fig. 5 (§6.2): how dissimilar are the masks two tasks learn? For one layer and tasks t1, t2 trained from the
same seed (hence the same initial mask),

    s = ‖M¹ − M²‖₁ / (‖M¹ − M¹_init‖₁ + ‖M² − M²_init‖₁)

the difference of the trained masks as a fraction of all changes training made. The initial masks are not stored:
they are drawn again exactly as the run drew them (same model, mask configuration and seed)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskbench.analysis.runs import new_figure, run_record, save_figure, suptitle, write_csv
from maskbench.data import tasks
from maskbench.data.models import load_model
from maskbench.io.errors import ConfigError
from maskbench.records import run_directory
from maskbench.results.drawing import draws_alone
from maskbench.results.tables import TASK_LABELS
from maskbench.training.masking import MaskConfig, mask_model, masked_layers
from maskbench.training.masking.apply import architecture_of
from maskbench.training.masking.serialization import read_mask_description, read_masks
from maskbench.training.method_registry import masking_methods

#: the paper's names of the six linear layers of a block, in the order of ``Architecture.block_linears``
ROLES = ("W_Q", "W_K", "W_V", "W_AO", "W_I", "W_O")


def dissimilarity(trained_1: torch.Tensor, trained_2: torch.Tensor, initial: torch.Tensor) -> float:
    """s of two trained binary masks that started from the same ``initial`` mask (nan when neither changed)."""
    changed = int((trained_1 != initial).sum()) + int((trained_2 != initial).sum())
    return float(int((trained_1 != trained_2).sum()) / changed) if changed else float("nan")


def initial_masks(model_name: str, task: str, config: MaskConfig, seed: int) -> dict[str, torch.Tensor]:
    """The binary masks a run of ``task`` with this mask configuration and seed started from."""
    spec = tasks.get_task(task)
    model = load_model(model_name, spec.kind, spec.label_names)
    mask_model(model, config, generator=torch.Generator().manual_seed(seed))
    return {name: layer.binary_mask() for name, layer in masked_layers(model).items()}


def block_layers(model_name: str, task: str) -> dict[str, tuple[int, str]]:
    """Masked-layer name -> (block index, role) for the transformer blocks of ``model_name``."""
    spec = tasks.get_task(task)
    model = load_model(model_name, spec.kind, spec.label_names)
    arch = architecture_of(model)
    prefix = f"{model.base_model_prefix}.{arch.blocks}."
    count = len(model.get_submodule(prefix[:-1]))
    return {f"{prefix}{block}.{linear}": (block, role)
            for block in range(count) for linear, role in zip(arch.block_linears, ROLES)}


def mask_dissimilarities(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """s for every pair of runs (tasks), every masked block and every role."""
    records = [run_record(d) for d in run_dirs]
    if any(r["method"] not in masking_methods() for r in records):
        raise ConfigError(f"{list(map(str, run_dirs))}: mask dissimilarity needs masking runs (of "
                          f"{', '.join(masking_methods())})")
    keys = {(r["model"], r["seed"], json_key(r["config"]["mask"])) for r in records}
    if len(keys) != 1:
        raise ConfigError(f"{list(map(str, run_dirs))}: the runs must share model, seed and mask configuration "
                          f"(so that they start from the same mask); they have {sorted(keys)}")
    model_name, seed, _ = keys.pop()
    config = MaskConfig.from_dict(records[0]["config"]["mask"])
    initial = initial_masks(model_name, records[0]["task"], config, seed)
    layers = block_layers(model_name, records[0]["task"])
    trained = {}
    for run_dir, record in zip(run_dirs, records):
        directory = run_directory(run_dir) / "masks"
        masks, _ = read_masks(directory, read_mask_description(directory))
        trained[record["task"]] = {name: mask for name, mask in masks.items() if name in layers}
    rows = []
    for (task_1, masks_1), (task_2, masks_2) in itertools.combinations(trained.items(), 2):
        for name in masks_1:
            block, role = layers[name]
            rows.append({"model": model_name, "seed": seed, "task_1": task_1, "task_2": task_2, "block": block,
                         "role": role, "layer": name,
                         "s": dissimilarity(masks_1[name], masks_2[name], initial[name]),
                         "changed_1": int((masks_1[name] != initial[name]).sum()),
                         "changed_2": int((masks_2[name] != initial[name]).sum()),
                         "weights": int(masks_1[name].numel())})
    return rows


def json_key(mask: dict) -> str:
    return ",".join(f"{k}={mask[k]}" for k in sorted(mask))


@draws_alone
def plot_dissimilarity(rows: Sequence[dict[str, Any]], roles: Sequence[str], blocks: Sequence[int] | None,
                       png: str | Path) -> None:
    """Heat maps of s (task × task) for the chosen roles and blocks, and mean s over task pairs per block."""
    task_names = list(dict.fromkeys([r["task_1"] for r in rows] + [r["task_2"] for r in rows]))
    masked_blocks = sorted({r["block"] for r in rows})
    blocks = [masked_blocks[0], masked_blocks[-1]] if not blocks else list(blocks)
    missing = [b for b in blocks if b not in masked_blocks]
    if missing:
        raise ConfigError(f"mask_similarity.blocks: {missing} are not masked blocks (masked: {masked_blocks})")
    panels = [(role, block) for role in roles for block in blocks]
    figure = new_figure(3.6 * (len(panels) + 1), 3.9)
    axes = figure.subplots(1, len(panels) + 1, squeeze=False)[0]
    labels = [TASK_LABELS.get(t, t) for t in task_names]
    image = None
    for ax, (role, block) in zip(axes, panels):
        matrix = np.full((len(task_names), len(task_names)), np.nan)
        for r in rows:
            if r["role"] == role and r["block"] == block:
                i, j = task_names.index(r["task_1"]), task_names.index(r["task_2"])
                matrix[i, j] = matrix[j, i] = r["s"]
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        for i, j in itertools.product(range(len(task_names)), repeat=2):
            if not np.isnan(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, fontsize=8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_title(f"{role}, block {block}", fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=list(axes[:-1]), shrink=0.8, label="dissimilarity s (0 = same changes)")
    summary = axes[-1]
    for role in roles:
        means = [np.nanmean([r["s"] for r in rows if r["role"] == role and r["block"] == b] or [np.nan])
                 for b in masked_blocks]
        summary.plot(masked_blocks, means, marker="o", label=role)
    summary.set_xlabel("transformer block")
    summary.set_ylabel("mean s over task pairs")
    summary.set_ylim(0, 1.05)
    summary.set_title("mean dissimilarity per block", fontsize=9)
    summary.grid(alpha=0.3)
    summary.legend(fontsize=7)
    suptitle(figure, f"Fig. 5: dissimilarity of the masks two tasks learn from the same initial mask "
                    f"({rows[0]['model']}, seed {rows[0]['seed']})")
    save_figure(figure, png)


def write_mask_similarity(run_dirs: Sequence[str | Path], roles: Sequence[str], blocks: Sequence[int] | None,
                          png: str | Path, data_csv: str | Path) -> list[dict[str, Any]]:
    """Workflow step: Fig. 5 and s for every pair, block and role."""
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise ConfigError(f"mask_similarity.layers: unknown {unknown}; expected some of {list(ROLES)}")
    if len(run_dirs) < 2:
        raise ConfigError("mask_similarity: needs the masks of at least two tasks")
    rows = mask_dissimilarities(run_dirs)
    write_csv(rows, data_csv)
    plot_dissimilarity(rows, roles, blocks, png)
    return rows
