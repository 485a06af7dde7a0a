"""Measured memory of serving several tasks in one process: one :class:`~maskbench.MultiTaskModel` (the backbone
once, plus each task's compressed masks and head) vs one full model per task (what finetuning needs).

Each configuration runs in a fresh Python process (``python -m maskbench.serving.memory``), so that one measurement's
allocations do not leak into the next. A process loads its models, reads every weight once and serves one batch
per task, then reports its resident set size after glibc returned freed heap pages (``malloc_trim``), and the same
for a process that only imported the libraries and the tokenizer. The full model per task is the task's masked
model merged into plain weights: it has exactly the tensors of a finetuned model. Used by the workflow's Fig. 3 and
Table 8 next to the saved files' sizes, and by ``benchmarks/multitask.py``.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskbench.io.errors import MaskbenchError
from maskbench.io.fileio import write_json

#: task kinds MultiTaskModel serves
SERVED_KINDS = ("single", "pair")
_TEXTS = ["a gripping and funny film", "the plot makes no sense at all", "it was fine , i guess",
          "one of the best performances of the year"]


def resident_mb() -> float:
    """Resident set size in MiB after ``malloc_trim`` (without the allocator's cache of freed activations)."""
    import psutil

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS as is
        pass
    return psutil.Process().memory_info().rss / 2**20


def _texts(kind: str) -> list:
    return [(text, text[::-1]) for text in _TEXTS] if kind == "pair" else list(_TEXTS)


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from maskbench.data.models import load_tokenizer
    from maskbench.serving.multitask import MultiTaskModel
    from maskbench.training.masking.serialization import load_masked_model, read_mask_description

    tokenizer = load_tokenizer(spec["base"])
    if spec["kind"] == "imports":
        return {"rss_mb": resident_mb()}
    directories = spec["masks"][:spec["tasks"]]
    kinds = [read_mask_description(d).get("kind", "single") for d in directories]
    with torch.inference_mode():
        if spec["kind"] == "multitask":
            model = MultiTaskModel.from_masks(spec["base"], directories)
            for task, kind in zip(model.tasks, kinds):
                for parameter in model.activate(task).parameters():
                    parameter.sum()
                model.predict(task, _texts(kind))
        else:
            models = [load_masked_model(d, base=spec["base"]) for d in directories]
            for network, kind in zip(models, kinds):
                for parameter in network.parameters():
                    parameter.sum()
                texts = _texts(kind)
                inputs = tokenizer(*map(list, zip(*texts))) if kind == "pair" else tokenizer(texts)
                network(**tokenizer.pad(inputs, return_tensors="pt"))
    return {"rss_mb": resident_mb()}


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    process = subprocess.run([sys.executable, "-m", "maskbench.serving.memory", json.dumps(spec)], capture_output=True,
                             text=True)
    if process.returncode:
        raise MaskbenchError(f"serving measurement {spec['kind']} x{spec.get('tasks')} failed: "
                             f"{process.stderr.strip().splitlines()[-1] if process.stderr.strip() else 'no output'}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def measure_serving(base: str, mask_dirs: Sequence[str | Path], counts: Sequence[int] | None = None) -> dict:
    """RSS of serving the first n tasks of ``mask_dirs`` for each n in ``counts`` (default 1..all), both ways."""
    from maskbench.training.masking.serialization import read_mask_description

    served, skipped = [], []
    for directory in mask_dirs:
        description = read_mask_description(directory)
        (served if description.get("kind", "single") in SERVED_KINDS else skipped).append(str(directory))
    counts = list(counts or range(1, len(served) + 1))
    imports = _run({"kind": "imports", "base": base})["rss_mb"]
    points = []
    for count in counts:
        for kind, method in (("multitask", "masking"), ("models", "finetuning")):
            rss = _run({"kind": kind, "base": base, "masks": served, "tasks": count})["rss_mb"]
            points.append({"method": method, "tasks": count, "rss_mb": rss, "model_rss_mb": rss - imports})
    return {"base": base, "served": served, "skipped": skipped, "imports_rss_mb": imports, "points": points,
            "note": "RSS after malloc_trim, each configuration in a fresh process; finetuning = one full model "
                    "per task (the merged masked model has a finetuned model's tensors)"}


def write_serving(base: str, runs: Sequence[str | Path], out: str | Path) -> dict:
    """Workflow step: serving memory with the masks of the given masking runs (run directories or their
    ``metrics.json``; tasks it cannot serve are skipped)."""
    from maskbench.io.provenance import versions
    from maskbench.records import run_directory

    result = measure_serving(base, [run_directory(run) / "masks" for run in runs])
    write_json(out, {**result, "versions": versions()})
    return result


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
