"""Serving many tasks: one backbone with per-task masks (MultiTaskModel) vs one finetuned model per task.

For the offline model ('minilm') and a randomly initialised bert-base-sized BERT, with 1, 4 and 11 tasks:

- resident memory (RSS) after loading, reading every weight once (see :func:`touch`) and serving batches of
  every task, each configuration in a fresh process (the weights of Hugging Face checkpoints are memory-mapped,
  so every finetuned model is its own file, as it would be in practice), as is and after ``malloc_trim`` (see
  :func:`trimmed_rss_mb`), and its peak;
- throughput (examples/s, tokenisation included) on the same batches, all of one task;
- in one process, interleaved batch by batch so that machine noise hits all alike: one plain (finetuned) model,
  the 11-task MultiTaskModel on one task, the same switching task on every batch, and the masks applied in the
  forward (``MaskedLinear``, W * mask per request); plus the latency of switching tasks.

Masks are random (about 5 % zeros, the paper's initial sparsity) and stored compressed; finetuned checkpoints are
the merged masked models. Assets are cached in ``--work-dir``. Prints a table and writes JSON (default
``results/benchmarks/multitask.json``).

    python benchmarks/multitask.py [--models minilm bert-base] [--tasks 1 4 11]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

LABELS = [("negative", "positive"), ("a", "b", "c"), ("w", "x", "y", "z")]
SETTINGS = {  # batches are kept small for bert-base so that the benchmark takes a few minutes on 2 CPU cores
    "minilm": {"batch_size": 32, "words": 48, "batches": 8},
    "bert-base": {"batch_size": 8, "words": 48, "batches": 4},
}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def trimmed_rss_mb() -> float:
    """RSS after glibc hands freed heap pages back (malloc_trim): what the process holds, without the allocator's
    cache of freed activations, which moves RSS by tens of MiB from run to run."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: report RSS as is
        pass
    return rss_mb()


def peak_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the process image; getrusage's ru_maxrss would carry the peak of
    the parent (the benchmark driver) over fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


# --- assets (built once in the parent process) ----------------------------------------------------------------


def build_assets(model: str, tasks: int, work_dir: Path) -> dict[str, Any]:
    """Base model, ``tasks`` compressed mask directories and as many finetuned checkpoints; cached in ``work_dir``."""
    from transformers import BertConfig, BertModel

    from maskbench import MaskConfig, load_masked_model, mask_model, save_masks
    from maskbench.models import load_model, load_tokenizer
    from maskbench.storage import COMPRESSED

    root = work_dir / model
    base = "minilm"
    if model == "bert-base":
        base = str(root / "base")
        if not (root / "base" / "config.json").is_file():
            torch.manual_seed(0)
            BertModel(BertConfig()).save_pretrained(root / "base")
            load_tokenizer("minilm").save_pretrained(root / "base")  # the same uncased 30522-word vocabulary
    masks, finetuned = [], []
    for index in range(tasks):
        name = f"task{index:02d}"
        labels = LABELS[index % len(LABELS)]
        if not (root / "masks" / name / "mask_config.json").is_file():
            torch.manual_seed(index)
            masked = load_model(base, "single", labels)
            mask_model(masked, MaskConfig(), generator=torch.Generator().manual_seed(index))
            save_masks(masked, root / "masks" / name, base=base, mask_format=COMPRESSED,
                       extra={"task": name, "kind": "single", "label_names": list(labels), "seed": index})
        if not (root / "finetuned" / name / "config.json").is_file():
            load_masked_model(root / "masks" / name).save_pretrained(root / "finetuned" / name)
        masks.append(str(root / "masks" / name))
        finetuned.append(str(root / "finetuned" / name))
    return {"base": base, "masks": masks, "finetuned": finetuned}


# --- worker (one configuration per fresh process) -------------------------------------------------------------


def make_batches(tokenizer: Any, count: int, batch_size: int, words: int) -> list[list[str]]:
    """Deterministic texts of ``words`` whole-word vocabulary entries each."""
    vocabulary = sorted(w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 2)
    generator = np.random.default_rng(0)
    return [[" ".join(generator.choice(vocabulary, size=words)) for _ in range(batch_size)] for _ in range(count)]


class Plain:
    """A Hugging Face model served the way MultiTaskModel.predict serves a task: tokenise, forward, softmax."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer

    def __call__(self, texts: list[str]) -> torch.Tensor:
        inputs = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            return self.model(**inputs).logits.float().softmax(dim=-1)


def touch(models: list[torch.nn.Module]) -> None:
    """Read every weight once. A long-running server ends up using every vocabulary row; without this, how much of
    a memory-mapped embedding matrix is resident depends on what the page cache holds (fault-around)."""
    with torch.no_grad():
        for model in models:
            for parameter in model.parameters():
                parameter.sum()


def timed(function: Any, *args: Any) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    from maskbench import MultiTaskModel
    from maskbench.models import load_tokenizer

    settings = SETTINGS[spec["model"]]
    tokenizer = load_tokenizer(spec["base"])
    batches = make_batches(tokenizer, settings["batches"], settings["batch_size"], settings["words"])
    result: dict[str, Any] = {}
    started = time.perf_counter()
    if spec["kind"] == "imports":
        return {"rss_mb": rss_mb(), "rss_trimmed_mb": trimmed_rss_mb(), "peak_mb": peak_mb()}
    if spec["kind"] == "finetuned":
        models = [Plain(AutoModelForSequenceClassification.from_pretrained(path), tokenizer)
                  for path in spec["finetuned"][:spec["tasks"]]]
        touch([model.model for model in models])
        serve = [model.__call__ for model in models]
    elif spec["kind"] == "multitask":
        multitask = MultiTaskModel.from_masks(spec["base"], spec["masks"][:spec["tasks"]])
        touch([multitask.activate(task) for task in multitask.tasks])
        serve = [lambda texts, task=task: multitask.predict(task, texts, len(texts)) for task in multitask.tasks]
    else:  # "interleaved": throughput ratios within one process
        return interleaved(spec, tokenizer, batches)
    result["load_s"] = time.perf_counter() - started
    for function in serve:  # every model/task serves once: its weights are touched and its buffers exist
        function(batches[0])
    result["rss_load_mb"] = rss_mb()
    seconds = sum(timed(serve[0], batch) for batch in batches)
    result["examples_per_s"] = sum(len(batch) for batch in batches) / seconds
    result["rss_mb"], result["peak_mb"] = rss_mb(), peak_mb()
    result["rss_trimmed_mb"] = trimmed_rss_mb()
    return result


def interleaved(spec: dict[str, Any], tokenizer: Any, batches: list[list[str]]) -> dict[str, Any]:
    """Per-batch times of the plain model, MultiTaskModel (one task / switching), and masks in the forward."""
    from transformers import AutoModelForSequenceClassification

    from maskbench import MultiTaskModel, load_masked_model

    multitask = MultiTaskModel.from_masks(spec["base"], spec["masks"])
    tasks = list(multitask.tasks)
    plain = Plain(AutoModelForSequenceClassification.from_pretrained(spec["finetuned"][0]), tokenizer)
    masked = Plain(load_masked_model(spec["masks"][0], merge=False), tokenizer)
    switches = []
    for index in range(2 * len(tasks)):  # the first round decodes each task's masks for the first time
        seconds = timed(multitask.activate, tasks[(index + 1) % len(tasks)])
        if index >= len(tasks):
            switches.append(seconds)
    times: dict[str, list[float]] = {"plain": [], "multitask, one task": [], "multitask, switching": [],
                                     "masks in forward": []}
    for index, batch in enumerate([batches[0], *batches]):  # the first batch warms up
        multitask.activate(tasks[0])
        measured = {
            "plain": timed(plain, batch),
            "multitask, one task": timed(multitask.predict, tasks[0], batch, len(batch)),
            "masks in forward": timed(masked, batch),
            "multitask, switching": timed(multitask.predict, tasks[1 + index % (len(tasks) - 1)], batch, len(batch)),
        }
        if index:
            for key, value in measured.items():
                times[key].append(value)
    examples = sum(len(batch) for batch in batches)
    return {"examples_per_s": {key: examples / sum(value) for key, value in times.items()},
            "ratio_to_plain": {key: sum(times["plain"]) / sum(value) for key, value in times.items()},
            "switch_ms": {"median": 1000 * statistics.median(switches), "max": 1000 * max(switches),
                          "tasks": len(tasks)}}


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    process = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                             text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    if process.returncode:
        raise RuntimeError(f"worker {spec['kind']} failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


# --- report ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--tasks", nargs="+", type=int, default=[1, 4, 11])
    parser.add_argument("--work-dir", default="/tmp/maskbench-multitask")
    parser.add_argument("--out", default="results/benchmarks/multitask.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from tabulate import tabulate

    from maskbench.fileio import write_json
    from maskbench.provenance import versions

    records: dict[str, Any] = {}
    rows, ratio_rows = [], []
    for model in args.models:
        assets = build_assets(model, max(*args.tasks, 2), Path(args.work_dir))  # switching needs two tasks
        spec = {"model": model, **assets}
        record: dict[str, Any] = {"settings": SETTINGS[model], "imports": run_worker({**spec, "kind": "imports"})}
        for tasks in args.tasks:
            for kind in ("finetuned", "multitask"):
                record[f"{kind}-{tasks}"] = run_worker({**spec, "kind": kind, "tasks": tasks})
                print(f"{model} {kind} x{tasks}: {record[f'{kind}-{tasks}']}", file=sys.stderr)
        record["interleaved"] = run_worker({**spec, "kind": "interleaved"})
        one_model = record["finetuned-1"]
        for tasks in args.tasks:
            for kind in ("finetuned", "multitask"):
                entry = record[f"{kind}-{tasks}"]
                rows.append([model, tasks, kind,
                             f"{entry['rss_mb']:.0f}", f"{entry['rss_mb'] / one_model['rss_mb']:.3f}",
                             f"{entry['rss_trimmed_mb']:.0f}",
                             f"{entry['rss_trimmed_mb'] / one_model['rss_trimmed_mb']:.3f}", f"{entry['peak_mb']:.0f}",
                             f"{entry['examples_per_s']:.1f}",
                             f"{entry['examples_per_s'] / one_model['examples_per_s']:.2f}", f"{entry['load_s']:.1f}"])
        inter = record["interleaved"]
        for key, value in inter["examples_per_s"].items():
            ratio_rows.append([model, key, f"{value:.1f}", f"{inter['ratio_to_plain'][key]:.3f}"])
        ratio_rows.append([model, f"task switch ({inter['switch_ms']['tasks']} tasks), median / max ms",
                           f"{inter['switch_ms']['median']:.0f} / {inter['switch_ms']['max']:.0f}", ""])
        records[model] = record
    print(tabulate(rows, headers=["model", "tasks", "serving", "RSS MiB", "/ 1 finetuned", "trimmed MiB",
                                  "/ 1 finetuned", "peak MiB", "examples/s", "/ 1 finetuned", "load s"]))
    print("\nimports and tokenizer only: " + ", ".join(f"{m} {r['imports']['rss_mb']:.0f} MiB"
                                                     for m, r in records.items()))
    print("\ninterleaved in one process (same batches)")
    print(tabulate(ratio_rows, headers=["model", "serving", "examples/s", "vs plain"]))
    write_json(args.out, {"models": records, "versions": versions(), "cpu_count": os.cpu_count()})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
