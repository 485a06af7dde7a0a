"""Workflow scheduling on a small machine: N jobs × T threads each, for the same batch of training runs.

Runs the same set of short ``maskbench train`` runs (offline MiniLM, SST-2 and TREC subsets, both methods) once
per schedule — e.g. 2 jobs at a time with 1 thread each, and 1 job at a time with 2 threads — and prints the wall
time of the whole batch per schedule (what a Snakemake ``--cores 2`` run with ``threads: T`` would see). Writes
JSON (default ``results/benchmarks/scheduling.json``).

    python benchmarks/scheduling.py [--schedules 2x1 1x2] [--examples 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tabulate import tabulate

from maskbench.io.provenance import versions

RUNS = [("sst2", "finetuning", "1e-4"), ("sst2", "masking", "1e-3"), ("trec", "finetuning", "1e-4"),
        ("trec", "masking", "1e-3")]


def run_one(task: str, method: str, lr: str, threads: int, examples: int, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "maskbench.cli", "train", "--method", method, "--task", task, "--lr", lr,
               "--seed", "1", "--epochs", "1", "--max-train-examples", str(examples), "--max-eval-examples", "200",
               "--max-length", "64", "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", nargs="+", default=["2x1", "1x2"], help="JOBSxTHREADS")
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--out", default="results/benchmarks/scheduling.json")
    args = parser.parse_args()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for schedule in args.schedules:
            jobs, threads = (int(x) for x in schedule.split("x"))
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(run_one, task, method, lr, threads, args.examples,
                                       Path(scratch) / f"{schedule}-{task}-{method}")
                           for task, method, lr in RUNS]
                per_run = [f.result() for f in futures]
            wall = time.perf_counter() - started
            records.append({"schedule": schedule, "jobs": jobs, "threads": threads, "wall_s": wall,
                            "run_wall_s": per_run})
            rows.append([schedule, jobs, threads, f"{wall:.0f}", f"{sum(per_run) / len(per_run):.0f}"])
            print(tabulate(rows[-1:], tablefmt="plain"), flush=True)
    best = min(records, key=lambda r: r["wall_s"])
    print()
    print(tabulate(rows, headers=["schedule", "jobs", "threads/job", "batch wall s", "mean run wall s"]))
    print(f"fastest: {best['schedule']} ({len(RUNS)} runs of {args.examples} examples, 1 epoch each)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": RUNS, "examples": args.examples, "results": records,
                                          "fastest": best["schedule"], "cpus": os.cpu_count(),
                                          "versions": versions()}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
