"""Masking vs finetuning: time per training step (forward, backward, Adam) on the same batches.

Prints a table and writes JSON (default ``results/benchmarks/step_time.json``). Timings are ratios within one
run, measured interleaved (masking step, finetuning step, ...) so machine noise hits both alike.

    python benchmarks/step_time.py [--batch-size 32] [--seq-len 64] [--steps 10] [--models minilm bert-base]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from tabulate import tabulate
from transformers import BertConfig, BertForSequenceClassification

from maskbench import MaskConfig, mask_model
from maskbench.data.models import load_model
from maskbench.io.provenance import device_name, versions
from maskbench.training.train import adam, autocast, configure_cuda_backends, resolve_device


def build(name: str, method: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "bert-base":  # a randomly initialised bert-base-sized config (no download)
        model = BertForSequenceClassification(BertConfig(num_labels=2))
    else:
        model = load_model(name, "single", ("negative", "positive"))
    if method == "masking":
        mask_model(model, MaskConfig(blocks=None))
    return model


def step_fn(model: torch.nn.Module, device: torch.device, precision: str = "fp32"):
    model.to(device).train()
    optimizer, _ = adam([p for p in model.parameters() if p.requires_grad], 1e-4)

    def step(batch: dict[str, torch.Tensor]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with autocast(device, precision):
            loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm", "bert-base"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default="results/benchmarks/step_time.json")
    args = parser.parse_args()
    device = resolve_device(args.device, args.precision)
    if device.type == "cuda":
        configure_cuda_backends()  # as in maskbench train
    generator = torch.Generator().manual_seed(0)
    rows, records = [], []
    for name in args.models:
        steps = {method: step_fn(build(name, method), device, args.precision)
                 for method in ("masking", "finetuning")}
        batches = [{"input_ids": torch.randint(1000, 20000, (args.batch_size, args.seq_len), generator=generator),
                    "labels": torch.randint(0, 2, (args.batch_size,), generator=generator)}
                   for _ in range(args.steps + args.warmup)]
        times: dict[str, list[float]] = {"masking": [], "finetuning": []}
        for index, batch in enumerate(batches):
            batch = {k: v.to(device) for k, v in batch.items()}
            for method, step in steps.items():
                elapsed = step(batch)
                if index >= args.warmup:
                    times[method].append(elapsed)
        masking, finetuning = statistics.median(times["masking"]), statistics.median(times["finetuning"])
        rows.append([name, f"{masking * 1000:.0f}", f"{finetuning * 1000:.0f}", f"{masking / finetuning:.3f}"])
        records.append({"model": name, "masking_step_s": masking, "finetuning_step_s": finetuning,
                        "ratio": masking / finetuning, "masking_all_s": times["masking"],
                        "finetuning_all_s": times["finetuning"]})
        del steps
    print(tabulate(rows, headers=["model", "masking ms/step", "finetuning ms/step", "ratio"]))
    result = {"batch_size": args.batch_size, "seq_len": args.seq_len, "steps": args.steps, "precision": args.precision,
              "device": device_name(device), "versions": versions(), "results": records}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
