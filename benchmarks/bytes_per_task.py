"""Bytes per task of every training method for a bert-base-sized model, with masks measured on trained masks.

1. Every method (random weights: sizes do not depend on them). Each method prepares
   ``BertForSequenceClassification`` (bert-base-uncased's configuration, 2 labels, random weights) with its defaults
   (LoRA r = 8 on W_Q, W_K, W_V, W_AO, W_I, W_O of blocks 2-11; IA3 on keys, values and the feed-forward output of
   blocks 2-11; BitFit every bias; masking blocks 2-11, the pooler and the classifier) and saves its per-task
   artefact with ``maskbench.training.methods`` exactly as a training run does (``Method.artefact_bytes``: the saved
   tensor files). Masks here are **random i.i.d. masks with 5 % zeros** (the paper's initial sparsity): packed bits do
   not depend on the masks, Rice coding does.
2. Trained masks: the committed masks of the reference grid (``results/reference/runs/minilm/*/masking/.../masks``,
   the offline MiniLM: 6-layer uncased BERT, hidden size 384, masked blocks 2-5, the pooler and the classifier),
   saved again in both mask formats (masks file + the run's head file), next to random i.i.d. masks of the same
   layers with 5 % zeros and with each trained layer's own sparsity. Training adds zeros (5.1-19.6 % on the
   committed runs; the tagging tasks most): Rice-coded trained masks take 1-117 % more bytes than random 5 % masks
   (sentence tasks 1-21 %), and within 0.1 % of random masks with their per-layer sparsity (the
   zeros' count, not their arrangement, sets the size).
3. bert-base from trained statistics: bert-base's masked layers (blocks 2-11, pooler, classifier) with masks drawn
   from each task's trained MiniLM masks: every bert-base layer takes the layer of the same role (W_Q ... W_O,
   pooler, classifier) at the same relative depth (blocks 2-11 onto MiniLM's 2-5), and its zero positions are
   gaps resampled (i.i.d., with replacement) from that layer's gaps between zeros — the layer's sparsity and gap
   distribution, which is what the Rice coding's size depends on. Saved as in part 1. An estimate (trained
   bert-base masks are not available offline), labelled as such; sentence tasks only (a tagging model has no
   pooler to take the pooler's statistics from).

Prints Markdown tables and writes JSON (default ``results/benchmarks/bytes_per_task.json``).

    python benchmarks/bytes_per_task.py [--out results/benchmarks/bytes_per_task.json] [--runs RUN/masks ...]
"""

from __future__ import annotations

import argparse
import gc
import re
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tabulate import tabulate
from transformers import BertConfig, BertForSequenceClassification

from maskbench import masked_layers
from maskbench.io.fileio import write_json
from maskbench.training.masking.coding import to_stored
from maskbench.training.masking.config import COMPRESSED, PACKED_BITS
from maskbench.training.masking.serialization import HEAD_FILE, MASKS_FILE, read_mask_description, read_masks
from maskbench.training.methods import get_method
from maskbench.training.settings import TrainConfig
from maskbench.training.sizes import safetensors_summary

REPO = Path(__file__).resolve().parents[1]
TRAINED_MASKS = "results/reference/runs/minilm/*/masking/lr*/seed*/masks"
INITIAL_SPARSITY = 0.05
ROWS = [("finetuning", {}, "Finetuning (full model)"),
        ("masking", {"mask_format": PACKED_BITS}, "Masking, packed bits (packed-bits-v1)"),
        ("masking", {"mask_format": COMPRESSED}, "Masking, Rice-coded (rice-gaps-v1), random i.i.d. 5 % zeros"),
        ("lora", {"lora_r": 8}, "LoRA r = 8"),
        ("bitfit", {}, "BitFit"),
        ("ia3", {}, "IA3")]
LINEAR_ROLES = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")


def bert_base() -> BertForSequenceClassification:
    """bert-base-uncased's architecture with random weights; the classifier is the task's new head."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=2))
    model.maskbench_new_parameters = ["classifier.bias", "classifier.weight"]
    return model


def _save(method, model, directory: Path, config: TrainConfig) -> int:
    method.save(model, directory, base="bert-base-uncased (random)", extra={"task": "sst2"}, config=config)
    return method.artefact_bytes(directory)


def measure(scratch: Path) -> list[dict]:
    """Part 1: every method on bert-base, masks random i.i.d. with 5 % zeros."""
    rows = []
    for method_name, options, label in ROWS:
        method = get_method(method_name)
        config = TrainConfig(method=method_name, model="bert-base-uncased", task="sst2", **options)
        model = method.prepare(bert_base(), config)
        trainable = sum(p.numel() for p in method.trainable_parameters(model))
        directory = scratch / re.sub(r"[^\w.-]+", "_", label)
        rows.append({"method": method_name, "label": label, "options": options, "bytes": _save(method, model,
                                                                                                  directory, config),
                     "stored_values": sum(safetensors_summary(directory / name)["values"]
                                          for name in method.tensor_files),
                     "trainable_parameters": trainable, "masks": "random i.i.d., 5 % zeros"
                     if method_name == "masking" else None})
        del model
        gc.collect()
    return rows


def _minority_gaps(mask: torch.Tensor) -> tuple[bool, np.ndarray]:
    """The rarer value of ``mask`` and the gaps between its positions (what the Rice coding codes)."""
    bits = mask.numpy().reshape(-1)
    symbol = bool(np.count_nonzero(bits) < bits.size / 2)
    return symbol, np.diff(np.flatnonzero(bits == symbol), prepend=-1) - 1


def _masks_bytes(masks: dict[str, torch.Tensor], mask_format: str, path: Path) -> int:
    """Size of the masks file a run writes for ``masks`` in ``mask_format``."""
    save_file({name: to_stored(mask, mask_format) for name, mask in masks.items()}, str(path),
              metadata={"format": mask_format})
    return path.stat().st_size


def _random_like(masks: dict[str, torch.Tensor], sparsity: dict[str, float], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.rand(mask.shape, generator=generator) >= sparsity[name] for name, mask in masks.items()}


def trained_minilm(directories: list[Path], scratch: Path) -> tuple[list[dict], dict[str, dict[str, torch.Tensor]]]:
    """Part 2: the trained masks' bytes in both formats (masks file + the run's head file), and those of random
    i.i.d. masks of the same layers (5 % zeros; each layer's trained sparsity)."""
    rows, trained = [], {}
    for directory in directories:
        description = read_mask_description(directory)
        masks, _ = read_masks(directory, description)
        head = (directory / HEAD_FILE).stat().st_size
        zeros = {name: float((~mask).float().mean()) for name, mask in masks.items()}
        size = {label: head + _masks_bytes(m, fmt, scratch / MASKS_FILE) for label, m, fmt in (
            ("packed", masks, PACKED_BITS), ("rice", masks, COMPRESSED),
            ("rice_random_5", _random_like(masks, dict.fromkeys(masks, INITIAL_SPARSITY)), COMPRESSED),
            ("rice_random_same_sparsity", _random_like(masks, zeros), COMPRESSED))}
        weights = sum(mask.numel() for mask in masks.values())
        rows.append({"task": description["task"], "run": str(directory.parent.relative_to(REPO)
                                                             if directory.is_relative_to(REPO) else directory.parent),
                     "base_model": description["base_model"], "masked_weights": weights,
                     "sparsity": sum(int((~m).sum()) for m in masks.values()) / weights,
                     "bytes_packed": size["packed"], "bytes_rice": size["rice"],
                     "bytes_rice_random_5pct": size["rice_random_5"],
                     "bytes_rice_random_same_sparsity": size["rice_random_same_sparsity"],
                     "rice_vs_random_5pct": size["rice"] / size["rice_random_5"]})
        trained[description["task"]] = masks
    return rows, trained


def _role(name: str) -> tuple[str, int | None]:
    found = re.search(r"layer\.(\d+)\.(.+)$", name)
    if found:
        return found.group(2), int(found.group(1))
    return ("pooler" if "pooler" in name else "classifier"), None


def _source_layer(name: str, source: dict[str, torch.Tensor]) -> str:
    """The trained layer of the same role at the same relative depth among the masked blocks."""
    role, block = _role(name)
    candidates = {_role(n)[1]: n for n in source if _role(n)[0] == role}
    if block is None:
        return candidates[None]
    target_blocks = sorted(candidates)
    return candidates[target_blocks[round((block - 2) / 9 * (len(target_blocks) - 1))]]  # bert-base blocks 2-11


def _resampled_mask(shape: torch.Size, source: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A mask of ``shape`` whose minority positions follow gaps drawn i.i.d. from those of ``source``."""
    symbol, gaps = _minority_gaps(source)
    count = int(np.prod(shape))
    bits = np.full(count, not symbol)
    if gaps.size:
        draws = rng.choice(gaps, size=int(count / (gaps.mean() + 1) * 1.2) + 16)
        positions = np.cumsum(draws + 1) - 1
        while positions[-1] < count:  # (never in practice: 20 % more draws than the expected number)
            positions = np.concatenate([positions, positions[-1] + np.cumsum(rng.choice(gaps, size=1024) + 1)])
        bits[positions[positions < count]] = symbol
    return torch.from_numpy(bits.reshape(tuple(shape)))


def bert_base_from_trained(trained: dict[str, dict[str, torch.Tensor]], scratch: Path) -> list[dict]:
    """Part 3: bert-base masking artefacts (Rice-coded) whose masks follow each task's trained MiniLM masks."""
    method = get_method("masking")
    config = TrainConfig(method="masking", model="bert-base-uncased", task="sst2", mask_format=COMPRESSED)
    rows = []
    for task, source in trained.items():
        if {_role(name)[0] for name in source} < {"pooler", "classifier", *LINEAR_ROLES}:
            continue  # tagging tasks' masks have no pooler, which bert-base's sentence classifier masks
        model = method.prepare(bert_base(), config)
        rng = np.random.default_rng(0)
        zeros = weights = 0
        for name, layer in masked_layers(model).items():
            mask = _resampled_mask(layer.weight.shape, source[_source_layer(name, source)], rng)
            layer.set_binary_mask(mask)
            zeros, weights = zeros + int((~mask).sum()), weights + mask.numel()
        rows.append({"task": task, "bytes": _save(method, model, scratch / f"bert-base-{task}", config),
                     "sparsity": zeros / weights, "masked_weights": weights})
        del model
        gc.collect()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmarks/bytes_per_task.json")
    parser.add_argument("--runs", nargs="*", type=Path, default=None,
                        help=f"trained mask directories (default: the committed ones, {TRAINED_MASKS})")
    args = parser.parse_args()
    directories = args.runs if args.runs is not None else sorted(
        d for d in REPO.glob(TRAINED_MASKS) if (d / MASKS_FILE).is_file())
    with tempfile.TemporaryDirectory() as scratch:
        rows = measure(Path(scratch))
        minilm, trained = trained_minilm(directories, Path(scratch))
        from_trained = bert_base_from_trained(trained, Path(scratch))
    full = rows[0]["bytes"]
    table = [[row["label"], f"{row['bytes']:,}", f"{row['bytes'] / 1e6:,.3f}", f"{full / row['bytes']:,.0f}×",
              f"{row['trainable_parameters']:,}"] for row in rows]
    print("1. Bytes per task, bert-base-sized BertForSequenceClassification (2 labels): saved tensor files; masks "
          "random i.i.d. with 5 % zeros\n")
    print(tabulate(table, ["method", "bytes per task", "MB", "smaller than finetuning", "trainable parameters"],
                   tablefmt="github", disable_numparse=True))
    rice_random = next(r["bytes"] for r in rows if r["options"].get("mask_format") == COMPRESSED)
    print("\n2. Trained masks of the offline MiniLM (6 layers, hidden 384; blocks 2-5, pooler, classifier): masks "
          "file + head file\n")
    print(tabulate([[r["task"], f"{100 * r['sparsity']:.2f} %", f"{r['bytes_packed']:,}", f"{r['bytes_rice']:,}",
                     f"{r['bytes_rice_random_5pct']:,}", f"{r['bytes_rice_random_same_sparsity']:,}",
                     f"{100 * (r['rice_vs_random_5pct'] - 1):+.1f} %"] for r in minilm],
                   ["task", "zeros", "packed bits", "Rice, trained", "Rice, random 5 %", "Rice, random same zeros",
                    "trained vs random 5 %"], tablefmt="github", disable_numparse=True))
    print(f"\n3. bert-base masking, Rice-coded, masks with the trained MiniLM masks' per-layer gap distribution "
          f"(estimate; random i.i.d. 5 %: {rice_random:,} bytes)\n")
    print(tabulate([[r["task"], f"{100 * r['sparsity']:.2f} %", f"{r['bytes']:,}", f"{r['bytes'] / 1e6:.3f}",
                     f"{100 * (r['bytes'] / rice_random - 1):+.1f} %", f"{full / r['bytes']:,.0f}×"]
                    for r in from_trained],
                   ["task", "zeros", "bytes per task", "MB", "vs random 5 %", "smaller than finetuning"],
                   tablefmt="github", disable_numparse=True))
    write_json(args.out, {
        "model": "BertConfig() (bert-base-uncased sizes), random weights, 2 labels", "rows": rows,
        "trained_minilm": {"model": "minilm (offline 6-layer uncased BERT, hidden 384; masked blocks 2-5, pooler, "
                                    "classifier)", "rows": minilm},
        "bert_base_from_trained_statistics": {
            "how": "bert-base masked layers; zero gaps resampled i.i.d. from the trained MiniLM layer of the same "
                   "role at the same relative depth (blocks 2-11 onto 2-5)", "rows": from_trained}})


if __name__ == "__main__":
    main()
