"""Training throughput: maskbench (finetuning, masking; length-grouped and random batches) vs the Trainer.

One epoch of each on the same examples of the offline MiniLM (batch 32, max length 128, dynamic padding,
constant lr, no warmup, the same thread count), on SST-2 (short sentences), MRPC (pairs) and CoNLL-2003
(tagging), side by side in this one process. For each: training examples/s, the ratio to the Trainer, and the
achieved model FLOP/s — 6 × non-embedding parameters × real (unpadded) tokens/s plus attention
(12 × layers × length² × hidden per sequence) — over this machine's fp32 matmul peak measured at the same
thread count. Prints a table, writes JSON (default ``results/benchmarks/throughput.json``).

    python benchmarks/throughput.py [--threads 2] [--examples 2000] [--tasks sst2 mrpc conll2003]
    python benchmarks/throughput.py --quality   # + dev scores, grouped vs random batches, 2 seeds each

Timings are ratios within one run: the configurations of a task alternate over ``--repeats`` rounds and the
median is reported, so machine noise hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from maskbench import tasks
from maskbench.data import tokenize_dataset
from maskbench.models import load_model, load_tokenizer
from maskbench.provenance import device_name, versions
from maskbench.train import TrainConfig, fixed_subset, train

MODEL = "minilm"
BATCH_SIZE = 32
MAX_LENGTH = 128
LRS = {"finetuning": 1e-4, "masking": 1e-3}


def matmul_peak(threads: int, sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 5) -> float:
    """Best fp32 matmul FLOP/s of this machine at ``threads`` threads."""
    torch.set_num_threads(threads)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - started))
    return best


def training_flops(model: torch.nn.Module, lengths: list[int]) -> float:
    """Model FLOPs of one training pass over sequences of ``lengths`` real tokens."""
    config = model.config
    embedding = sum(p.numel() for name, p in model.named_parameters() if "embeddings" in name)
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    tokens = sum(lengths)
    attention = sum(12 * config.num_hidden_layers * n * n * config.hidden_size for n in lengths)
    return 6 * non_embedding * tokens + attention


def real_lengths(task: str, examples: int) -> list[int]:
    """Unpadded wordpieces per training example of the benchmark's subset."""
    spec = tasks.get_task(task)
    split = fixed_subset(tasks.load(task)["train"], examples)
    encoded = tokenize_dataset(split, spec.kind, load_tokenizer(MODEL), MAX_LENGTH)
    return [len(ids) for ids in encoded["input_ids"]]


def maskbench_epoch(task: str, method: str, examples: int, group: bool, out: Path, seed: int = 1,
                    epochs: int = 1, eval_examples: int | None = 32) -> dict:
    config = TrainConfig(method=method, model=MODEL, task=task, seed=seed, lr=LRS[method], batch_size=BATCH_SIZE,
                         epochs=epochs, patience=epochs, max_length=MAX_LENGTH, max_train_examples=examples,
                         max_eval_examples=eval_examples, group_by_length=group, out=str(out))
    return train(config)


def trainer_epoch(task: str, examples: int, out: Path) -> float:
    """Examples/s of one epoch of ``transformers.Trainer`` finetuning on the same examples."""
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
    arguments = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=BATCH_SIZE, num_train_epochs=1,
        learning_rate=LRS["finetuning"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        optim="adamw_torch", save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[],
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, seed=1, disable_tqdm=True)
    trainer = Trainer(model=model, args=arguments, train_dataset=encoded, data_collator=collator)
    result = trainer.train()
    return float(result.metrics["train_samples_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["sst2", "mrpc", "conll2003"])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quality", action="store_true",
                        help="also: dev scores of grouped vs random batches (SST-2, 2 seeds, 2 epochs, full dev)")
    parser.add_argument("--quality-examples", type=int, default=4000)
    parser.add_argument("--out", default="results/benchmarks/throughput.json")
    args = parser.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()
    torch.use_deterministic_algorithms(True, warn_only=True)  # as in every maskbench run, for all alike
    torch.set_num_threads(args.threads)
    peak = matmul_peak(args.threads)
    torch.set_num_threads(args.threads)
    print(f"fp32 matmul peak at {args.threads} threads: {peak / 1e9:.1f} GFLOP/s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    configurations = ["trainer", "finetuning", "finetuning (random batches)", "masking"]
    rows, records = [], []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for task in args.tasks:
            spec = tasks.get_task(task)
            lengths = real_lengths(task, args.examples)
            flops = training_flops(load_model(MODEL, spec.kind, spec.label_names), lengths)
            speeds: dict[str, list[float]] = {name: [] for name in configurations}
            for repeat in range(args.repeats):
                for name in configurations:
                    out = scratch / f"{task}-{name.split()[0]}-{'random' if 'random' in name else 'g'}-{repeat}"
                    if name == "trainer":
                        speeds[name].append(trainer_epoch(task, args.examples, out))
                        continue
                    method = name.split()[0]
                    metrics = maskbench_epoch(task, method, args.examples, "random" not in name, out)
                    speeds[name].append(metrics["train_examples_per_s"])
            median = {name: statistics.median(values) for name, values in speeds.items()}
            for name in configurations:
                examples_per_s = median[name]
                achieved = flops / (len(lengths) / examples_per_s)
                record = {"task": task, "configuration": name, "examples_per_s": examples_per_s,
                          "all_examples_per_s": speeds[name], "vs_trainer": examples_per_s / median["trainer"],
                          "model_flops_per_s": achieved, "fraction_of_matmul_peak": achieved / peak,
                          "mean_real_tokens": sum(lengths) / len(lengths)}
                records.append(record)
                rows.append([task, name, f"{examples_per_s:.1f}", f"{record['vs_trainer']:.2f}",
                             f"{achieved / 1e9:.1f}", f"{100 * record['fraction_of_matmul_peak']:.0f} %"])
            ratio = median["masking"] / median["finetuning"]
            rows.append([task, "masking / finetuning time", f"{1 / ratio:.2f}", "", "", ""])
            print(tabulate(rows[-5:], tablefmt="plain"), flush=True)

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
    print(tabulate(rows, headers=["task", "configuration", "train ex/s", "× Trainer", "model GFLOP/s",
                                  "of matmul peak"]))
    if quality:
        print()
        print(tabulate([[q["seed"], "grouped" if q["group_by_length"] else "random", f"{q['dev_score']:.4f}",
                         f"{q['examples_per_s']:.1f}"] for q in quality],
                       headers=["seed", "batches", "SST-2 dev acc (2 epochs)", "train ex/s"]))
    result = {"model": MODEL, "examples": args.examples, "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH,
              "threads": args.threads, "matmul_peak_flops_per_s": peak, "lrs": LRS, "repeats": args.repeats,
              "device": device_name(device), "versions": versions(), "results": records, "quality": quality}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
