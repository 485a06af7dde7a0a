"""Training throughput: maskbench (finetuning, masking, LoRA, BitFit, IA3) vs ``transformers.Trainer``.

One epoch of each on the same examples of the offline MiniLM (batch 32, max length 128, dynamic padding,
constant lr, no warmup, the same thread count), on SST-2 (short sentences), MRPC (pairs) and CoNLL-2003
(tagging), side by side in this one process, in fp32 and in bf16.

The Trainer is compared at its best for the same work as maskbench's (issue 32): length-grouped batches
(``train_sampling_strategy="group_by_length"``), fused AdamW (``optim="adamw_torch_fused"``; weight decay 0, so
the same update as maskbench's fused Adam), no gradient clipping (``max_grad_norm=0``: maskbench clips nothing)
and the same precision (``bf16=True`` in the bf16 rows; maskbench does not compile, so neither does the Trainer).
The benchmark's earlier Trainer setup (random batches, the per-parameter ``adamw_torch`` loop, clipping at 1.0)
stays as one fp32 row, labelled "old settings", for reference only: no claim compares with it.

For each row: training examples/s, its ratio to the best Trainer at the same precision, its time relative to
maskbench finetuning at the same precision, the achieved model FLOP/s over this machine's matmul peak of the
precision used (fp32 and bf16 peaks measured in this run at the same thread count), the run's CPU seconds and
the cores other processes kept busy meanwhile. Model FLOPs count the matmuls each method's backward pass really
does (:func:`training_flops`): finetuning 3 × the forward; masking (blocks 2-5 of MiniLM's 6) the forward plus
activation and mask-score gradients in the masked blocks only (the backward stops at block 2), about 0.78 of
finetuning's; LoRA, BitFit and IA3 the forward plus activation gradients down to block 0 and no weight-gradient
matmul, about 0.67. The column "FLOPs / finetuning" is that floor: a method's time ratio can go below it only where
finetuning pays more than matmuls (its optimizer over all weights, the embeddings' dense gradient). Prints a table,
writes JSON (default ``results/benchmarks/throughput.json``).

    python benchmarks/throughput.py [--threads 2] [--examples 2000] [--tasks sst2 mrpc conll2003]
        [--precisions fp32 bf16] [--methods finetuning masking lora bitfit ia3] [--repeats 2] [--no-old-trainer]
    python benchmarks/throughput.py --quality   # + dev scores, grouped vs random batches, 2 seeds each

Timings are ratios within one run: the configurations of a task alternate over ``--repeats`` rounds and the
median is reported, so machine noise hits all of them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch
from tabulate import tabulate

from maskbench.data import tasks
from maskbench.data.models import load_model, load_tokenizer
from maskbench.data.tokenising import tokenize_dataset
from maskbench.io.provenance import device_name, versions
from maskbench.training import train as train_module
from maskbench.training.methods import get_method
from maskbench.training.train import TrainConfig, fixed_subset, train

MODEL = "minilm"
BATCH_SIZE = 32
MAX_LENGTH = 128
LRS = {"finetuning": 1e-4, "masking": 1e-3, "lora": 1e-3, "bitfit": 1e-3, "ia3": 1e-3}
METHODS = ("finetuning", "masking", "lora", "bitfit", "ia3")
TRAINER_BEST = "Trainer at its best (grouped, fused AdamW, no clip)"
TRAINER_OLD = "Trainer, old settings (random, adamw_torch, clip 1.0)"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_peak(threads: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None,
                sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 5) -> float:
    """Best matmul FLOP/s of this machine in ``dtype`` at ``threads`` threads (on ``device``)."""
    device = device or torch.device("cpu")
    torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = 0.0
    for n in sizes if device.type == "cpu" else (*sizes, 4096, 8192):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # warm-up
        sync()
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            sync()
            best = max(best, 2 * n**3 / (time.perf_counter() - started))
    return best


def training_flops(model: torch.nn.Module, lengths: list[int]) -> float:
    """Model FLOPs of one training pass of ``model`` (as a method prepared it) over sequences of ``lengths`` real
    tokens, counting the matmuls its backward pass really does: the forward of every linear layer (2 × weights ×
    tokens) and of attention (4 × length² × hidden per sequence and layer); activation gradients (the same again)
    in the blocks at and above the lowest block with a trainable tensor (all of them when the embeddings train);
    weight gradients (the same again) only for linear layers whose weight trains or is masked by trained scores.
    Finetuning: 3 × forward; masking blocks 2-5 of 6: forward + 2 × the top four blocks; LoRA, BitFit, IA3 (a
    trainable tensor in every block, frozen weights): 2 × forward. Adapters' own (rank 8) linear layers count like
    any other."""
    config = model.config
    tokens = sum(lengths)
    attention = sum(4 * n * n * config.hidden_size for n in lengths)  # per layer, forward
    block_of = re.compile(r"\.layer\.(\d+)\.")

    def block(name: str) -> int | None:
        found = block_of.search(f".{name}.")
        return int(found.group(1)) if found else None

    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    blocks = [block(name) for name in trainable]
    lowest = -1 if any(b is None and "embeddings" in name for b, name in zip(blocks, trainable)) else \
        min((b for b in blocks if b is not None), default=config.num_hidden_layers)
    flops = 0.0
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, torch.nn.Linear) or weight is None or weight.dim() != 2:
            continue
        index = block(name)
        scores = getattr(module, "mask_scores", None)
        grows = weight.requires_grad or (scores is not None and scores.requires_grad)
        passes = 1 + (index is None or index >= lowest) + grows
        flops += passes * 2 * weight.numel() * tokens
    for index in range(config.num_hidden_layers):
        flops += attention * (3 if index >= lowest else 1)
    return flops


def method_flops(name: str, task: str, lengths: list[int]) -> float:
    """:func:`training_flops` of a benchmark row's model (the Trainer's rows: finetuning)."""
    method = "finetuning" if name in (TRAINER_BEST, TRAINER_OLD) else name.removesuffix(RECAST)
    spec = tasks.get_task(task)
    config = TrainConfig(method=method, model=MODEL, task=task, seed=1, lr=LRS[method], out="unused")
    return training_flops(get_method(method).prepare(load_model(MODEL, spec.kind, spec.label_names), config), lengths)


def real_lengths(task: str, examples: int) -> list[int]:
    """Unpadded wordpieces per training example of the benchmark's subset."""
    spec = tasks.get_task(task)
    split = fixed_subset(tasks.load(task)["train"], examples)
    encoded = tokenize_dataset(split, spec.kind, load_tokenizer(MODEL), MAX_LENGTH)
    return [len(ids) for ids in encoded["input_ids"]]


RECAST = " (frozen weights re-cast each step)"  # an ablation row: bf16 without train.frozen_weights_in


@contextlib.contextmanager
def _recast_frozen_weights(model: torch.nn.Module, precision: str) -> Iterator[int]:
    yield 0  # autocast casts every frozen weight at every forward, as before frozen_weights_in existed


def maskbench_epoch(task: str, method: str, examples: int, group: bool, out: Path, seed: int = 1,
                    epochs: int = 1, eval_examples: int | None = 32, precision: str = "fp32") -> dict:
    recast = method.endswith(RECAST)
    method = method.removesuffix(RECAST)
    config = TrainConfig(method=method, model=MODEL, task=task, seed=seed, lr=LRS[method], batch_size=BATCH_SIZE,
                         epochs=epochs, patience=epochs, max_length=MAX_LENGTH, max_train_examples=examples,
                         max_eval_examples=eval_examples, group_by_length=group, precision=precision, out=str(out))
    if not recast:
        return train(config)
    with mock.patch.object(train_module, "frozen_weights_in", _recast_frozen_weights):
        return train(config)


def trainer_epoch(task: str, examples: int, out: Path, best: bool = True, precision: str = "fp32") -> dict:
    """Examples/s and CPU seconds of one epoch of ``transformers.Trainer`` finetuning on the same examples:
    ``best``: length-grouped, fused AdamW, no clipping; else the benchmark's old setup (random batches,
    per-parameter AdamW, clipping at 1.0)."""
    from transformers import (
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    spec = tasks.get_task(task)
    tokenizer = load_tokenizer(MODEL)
    split = fixed_subset(tasks.load(task)["train"], examples)
    encoded = tokenize_dataset(split, spec.kind, tokenizer, MAX_LENGTH)
    encoded = encoded.select_columns([c for c in encoded.column_names
                                      if c in ("input_ids", "attention_mask", "token_type_ids", "labels")])
    collator = (DataCollatorForTokenClassification(tokenizer) if spec.kind == "tagging"
                else DataCollatorWithPadding(tokenizer))
    torch.manual_seed(1)
    model = load_model(MODEL, spec.kind, spec.label_names)
    settings = (dict(train_sampling_strategy="group_by_length", optim="adamw_torch_fused", max_grad_norm=0.0)
                if best else dict(train_sampling_strategy="random", optim="adamw_torch", max_grad_norm=1.0))
    arguments = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=BATCH_SIZE, num_train_epochs=1,
        learning_rate=LRS["finetuning"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[], bf16=precision == "bf16",
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, seed=1, disable_tqdm=True, **settings)
    trainer = Trainer(model=model, args=arguments, train_dataset=encoded, data_collator=collator)
    cpu = time.process_time()
    result = trainer.train()
    return {"examples_per_s": float(result.metrics["train_samples_per_second"]),
            "cpu_time_s": time.process_time() - cpu, "other_busy_cores": None}


def configurations(methods: list[str], precisions: list[str], old_trainer: bool,
                   ablations: bool = False) -> list[tuple[str, str]]:
    """(precision, name) of every row of a task, in the order they alternate; ``ablations``: also each bf16 method
    with frozen weights without :func:`maskbench.training.train.frozen_weights_in` (does holding them in bf16 pay?)."""
    rows = [("fp32", TRAINER_OLD)] if old_trainer else []
    for precision in precisions:
        rows += [(precision, TRAINER_BEST)] + [(precision, method) for method in methods]
        if ablations and precision == "bf16":
            rows += [(precision, method + RECAST) for method in methods if method != "finetuning"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["sst2", "mrpc", "conll2003"])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--old-trainer", action=argparse.BooleanOptionalAction, default=True,
                        help="also the Trainer at the benchmark's old settings (fp32; for reference)")
    parser.add_argument("--quality", action="store_true",
                        help="also: dev scores of grouped vs random batches (SST-2, 2 seeds, 2 epochs, full dev)")
    parser.add_argument("--quality-examples", type=int, default=4000)
    parser.add_argument("--ablations", action="store_true",
                        help="also bf16 rows with frozen weights re-cast at every step (without frozen_weights_in)")
    parser.add_argument("--out", default="results/benchmarks/throughput.json")
    args = parser.parse_args()
    if "finetuning" not in args.methods:
        parser.error("--methods must include finetuning (the other rows' times are relative to it)")

    import transformers

    transformers.logging.set_verbosity_error()
    torch.use_deterministic_algorithms(True, warn_only=True)  # as in every maskbench run, for all alike
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peaks = {precision: matmul_peak(args.threads, DTYPES[precision], device) for precision in args.precisions}
    torch.set_num_threads(args.threads)
    for precision, peak in peaks.items():
        print(f"{precision} matmul peak at {args.threads} threads: {peak / 1e9:.1f} GFLOP/s")
    plan = configurations(args.methods, args.precisions, args.old_trainer, args.ablations)
    rows, records = [], []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for task in args.tasks:
            lengths = real_lengths(task, args.examples)
            flops = {name: method_flops(name, task, lengths) for name in {n for _, n in plan}}
            runs: dict[tuple[str, str], list[dict]] = {key: [] for key in plan}
            for repeat in range(args.repeats):
                for precision, name in plan:
                    slug = name.split()[0] + ("-recast" if name.endswith(RECAST) else "")
                    out = scratch / f"{task}-{precision}-{slug}-{len(runs[precision, name])}-{repeat}"
                    if name in (TRAINER_BEST, TRAINER_OLD):
                        runs[precision, name].append(trainer_epoch(task, args.examples, out, name == TRAINER_BEST,
                                                                   precision))
                        continue
                    metrics = maskbench_epoch(task, name, args.examples, True, out, precision=precision)
                    runs[precision, name].append({"examples_per_s": metrics["train_examples_per_s"],
                                                  "cpu_time_s": metrics.get("train_cpu_time_s"),
                                                  "other_busy_cores": metrics.get("other_busy_cores")})
                    torch.set_num_threads(args.threads)
            median = {key: statistics.median(run["examples_per_s"] for run in values) for key, values in runs.items()}
            task_rows = []
            for precision, name in plan:
                examples_per_s = median[precision, name]
                achieved = flops[name] / (len(lengths) / examples_per_s)
                cpu = [run["cpu_time_s"] for run in runs[precision, name] if run["cpu_time_s"] is not None]
                other = [run["other_busy_cores"] for run in runs[precision, name]
                         if run["other_busy_cores"] is not None]
                fp32 = (median.get(("fp32", name.removesuffix(RECAST))) if precision != "fp32" and name != TRAINER_OLD
                        else None)
                record = {"task": task, "precision": precision, "configuration": name,
                          "examples_per_s": examples_per_s,
                          "all_examples_per_s": [run["examples_per_s"] for run in runs[precision, name]],
                          "vs_trainer_best": examples_per_s / median[precision, TRAINER_BEST],
                          "time_vs_finetuning": median[precision, "finetuning"] / examples_per_s
                          if name not in (TRAINER_BEST, TRAINER_OLD) else None,
                          "flops_vs_finetuning": flops[name] / flops["finetuning"]
                          if name not in (TRAINER_BEST, TRAINER_OLD) else None,
                          "vs_fp32": examples_per_s / fp32 if fp32 else None,
                          "model_flops_per_s": achieved, "fraction_of_matmul_peak": achieved / peaks[precision],
                          "cpu_time_s": statistics.median(cpu) if cpu else None,
                          "other_busy_cores": statistics.median(other) if other else None,
                          "mean_real_tokens": sum(lengths) / len(lengths)}
                records.append(record)
                task_rows.append([
                    task, precision, name, f"{examples_per_s:.1f}", f"{record['vs_trainer_best']:.2f}",
                    "" if record["time_vs_finetuning"] is None else f"{record['time_vs_finetuning']:.2f}",
                    "" if record["flops_vs_finetuning"] is None else f"{record['flops_vs_finetuning']:.2f}",
                    "" if record["vs_fp32"] is None else f"{record['vs_fp32']:.2f}",
                    f"{achieved / 1e9:.1f}", f"{100 * record['fraction_of_matmul_peak']:.1f} %",
                    "" if record["cpu_time_s"] is None else f"{record['cpu_time_s']:.1f}",
                    "" if record["other_busy_cores"] is None else f"{record['other_busy_cores']:.2f}"])
            rows += task_rows
            print(tabulate(task_rows, tablefmt="plain"), flush=True)

        quality = []
        if args.quality:
            for seed in (1, 2):
                for group in (True, False):
                    metrics = maskbench_epoch("sst2", "finetuning", args.quality_examples, group,
                                              scratch / f"quality-{seed}-{group}", seed=seed, epochs=2,
                                              eval_examples=None)
                    quality.append({"seed": seed, "group_by_length": group, "dev_score": metrics["dev_score"],
                                    "history": metrics["history"],
                                    "examples_per_s": metrics["train_examples_per_s"]})

    print()
    print(tabulate(rows, headers=["task", "precision", "configuration", "train ex/s", "× Trainer best",
                                  "time / finetuning", "FLOPs / finetuning", "× fp32", "model GFLOP/s",
                                  "of matmul peak", "CPU s", "other busy cores"]))
    if quality:
        print()
        print(tabulate([[q["seed"], "grouped" if q["group_by_length"] else "random", f"{q['dev_score']:.4f}",
                         f"{q['examples_per_s']:.1f}"] for q in quality],
                       headers=["seed", "batches", "SST-2 dev acc (2 epochs)", "train ex/s"]))
    result = {"model": MODEL, "examples": args.examples, "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH,
              "threads": args.threads, "matmul_peak_flops_per_s": peaks, "lrs": LRS, "repeats": args.repeats,
              "trainer_best": TRAINER_BEST, "trainer_old": TRAINER_OLD if args.old_trainer else None,
              "device": device_name(device), "versions": versions(), "results": records, "quality": quality}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
