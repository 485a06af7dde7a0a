"""Quality parity of bf16 and fp32 training (issue 32, item 4): dev scores of finetuning and masking in both
precisions on SST-2 (2,000 training examples), TREC and CoNLL-2003 (800 training sentences each), three seeds
each, in one table.

Every run is an ordinary maskbench run (``maskbench.training.train.train``) with the demo's settings (batch 32, 3
epochs, patience 2, max length 64, 5 % initial sparsity for masking, the demo grid's lrs: finetuning 1e-4, masking 1e-3)
and the full dev split (up to ``--eval-examples``), written to ``--runs/<task>/<method>/<precision>/seed<N>``:
a finished run is read back, not trained again, so the script resumes after an interruption. ``--jobs`` runs
that many at once, one thread each.

Verdict per task and method: the precisions agree when the difference of their mean dev scores is within the
larger of their seed standard deviations (sample std over the seeds). Prints the table, writes JSON and Markdown
(default ``results/benchmarks/precision_parity.{json,md}``).

    python benchmarks/precision_parity.py [--jobs 2] [--seeds 1 2 3] [--tasks sst2 trec conll2003]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tabulate import tabulate

MODEL = "minilm"
EXAMPLES = {"sst2": 2000, "trec": 800, "conll2003": 800}
LRS = {"finetuning": 1e-4, "masking": 1e-3}
PRECISIONS = ("fp32", "bf16")


def run(task: str, method: str, precision: str, seed: int, runs: Path, eval_examples: int) -> dict:
    """One run's record (trained unless its metrics.json exists)."""
    import torch

    from maskbench.training.train import TrainConfig, train

    out = runs / task / method / precision / f"seed{seed}"
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    torch.set_num_threads(1)
    config = TrainConfig(method=method, model=MODEL, task=task, seed=seed, lr=LRS[method], batch_size=32, epochs=3,
                         patience=2, max_length=64, max_train_examples=EXAMPLES[task], max_eval_examples=eval_examples,
                         precision=precision, out=str(out))
    return train(config)


def summary(records: list[dict]) -> list[dict]:
    """Mean and std of the dev score per task, method and precision, and the verdict per task and method."""
    rows = []
    keys = sorted({(r["task"], r["method"]) for r in records}, key=lambda k: (list(EXAMPLES).index(k[0]), k[1]))
    for task, method in keys:
        cell = {}
        for precision in PRECISIONS:
            scores = [100 * r["dev_score"] for r in records
                      if (r["task"], r["method"], r["precision"]) == (task, method, precision)]
            cell[precision] = {"scores": scores, "mean": statistics.mean(scores) if scores else None,
                               "std": statistics.stdev(scores) if len(scores) > 1 else None,
                               "train_s": statistics.mean(r["train_time_s"] for r in records
                                                          if (r["task"], r["method"], r["precision"])
                                                          == (task, method, precision)) if scores else None}
        fp32, bf16 = cell["fp32"], cell["bf16"]
        difference = (bf16["mean"] - fp32["mean"]) if fp32["mean"] is not None and bf16["mean"] is not None else None
        tolerance = max(fp32["std"] or 0.0, bf16["std"] or 0.0)
        rows.append({"task": task, "method": method, "metric": next(r["metric"] for r in records if r["task"] == task),
                     "fp32": fp32, "bf16": bf16, "difference": difference, "tolerance": tolerance,
                     "agree": None if difference is None else abs(difference) <= tolerance})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(EXAMPLES), default=list(EXAMPLES))
    parser.add_argument("--methods", nargs="+", choices=list(LRS), default=list(LRS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--eval-examples", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--runs", default="results/benchmarks/parity")
    parser.add_argument("--out", default="results/benchmarks/precision_parity")
    args = parser.parse_args()

    cells = [(task, method, precision, seed) for seed in args.seeds for task in args.tasks
             for method in args.methods for precision in PRECISIONS]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run, *cell, Path(args.runs), args.eval_examples) for cell in cells]
        records = [future.result() for future in futures]
    rows = summary(records)

    def show(cell: dict) -> str:
        return f"{cell['mean']:.2f} ± {cell['std']:.2f}" if cell["std"] is not None else f"{cell['mean']:.2f}"

    table = tabulate([[r["task"], r["method"], r["metric"], show(r["fp32"]), show(r["bf16"]), f"{r['difference']:+.2f}",
                       f"{r['tolerance']:.2f}", "yes" if r["agree"] else "NO",
                       f"{r['fp32']['train_s'] / r['bf16']['train_s']:.2f}"] for r in rows],
                     headers=["task", "method", "metric", "fp32 dev (mean ± std)", "bf16 dev", "bf16 − fp32",
                              "seed std (larger)", "agree", "fp32 / bf16 train time"], tablefmt="github")
    print(table)
    from maskbench.io.provenance import versions

    result = {"model": MODEL, "examples": EXAMPLES, "lrs": LRS, "seeds": args.seeds,
              "eval_examples": args.eval_examples, "versions": versions(), "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"# bf16 vs fp32 dev scores ({MODEL}, seeds {args.seeds}, demo settings; "
        "`python benchmarks/precision_parity.py`)\n\n" + table + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
