"""Serving many tasks: one backbone with per-task masks, LoRA adapters, IA3 adapters or BitFit biases
(:class:`maskbench.MultiTaskModel`) vs one finetuned model per task.

For the offline model ('minilm'; add ``--models bert-base`` for a randomly initialised bert-base-sized BERT, which
takes several times longer), with 1, 4 and 11 tasks, each serving is measured for:

- resident memory (RSS) after loading, reading every weight once (see :func:`touch`) and serving batches of
  every task, each configuration in a fresh process (the weights of Hugging Face checkpoints are memory-mapped,
  so every finetuned model is its own file, as it would be in practice), as is and after ``malloc_trim`` (see
  :func:`trimmed_rss_mb`), and its peak;
- bytes on disk per task (the tensor files of its artefact, ``Method.artefact_bytes``), and for all tasks together
  with the base model that a MultiTaskModel loads once;
- throughput (examples/s, tokenisation included) on the same batches, all of one task;
- switch latency: the time of ``MultiTaskModel.activate`` when the next batch is for another task, cycling through
  all tasks (the first round is left out: it decodes each task's masks for the first time). Switching masks puts
  back the previous task's zeroed weights and zeroes the next task's; switching adapters enables another peft
  adapter in the wrapped layers (nothing is merged); switching BitFit copies biases. A finetuned model per task
  has nothing to switch.

Then, in one process and interleaved batch by batch so that machine noise hits all alike: one plain (finetuned)
model, every MultiTaskModel on one task and switching task on every batch, and the masks applied in the forward
(``MaskedLinear``, W * mask per request); and every MultiTaskModel's switch latency, switch by switch in turn.
An adapter is not merged, so LoRA and IA3 pay for their extra operations in every forward.

Masks are random (about 5 % zeros, the paper's initial sparsity) and stored compressed; finetuned checkpoints are
the merged masked models. LoRA (r = 8, alpha = 8), IA3 and BitFit artefacts use the methods' default settings
(the blocks masking uses, 2 to the last) and are written by ``maskbench.training.methods`` as a training run writes
them, with random weights: LoRA's B and IA3's vectors away from their initial zeros and ones, so that they change the
outputs (see :func:`build_adapter`). Assets are cached in ``--work-dir``. On a machine that other jobs keep busy,
``--threads 1`` avoids the stalls of torch's threads waiting for each other, which cost per operation and so hit
the adapters' extra operations hardest. Prints tables and writes JSON (default
``results/benchmarks/multitask.json``).

    python benchmarks/multitask.py [--models minilm bert-base] [--tasks 1 4 11]
        [--servings masks lora ia3 bitfit] [--threads N]
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
#: what serves the tasks, in table order: one finetuned model per task, then one MultiTaskModel (one backbone) with
#: per-task masks, LoRA adapters, IA3 adapters or BitFit biases
SERVINGS = ("finetuned", "masks", "lora", "ia3", "bitfit")
MULTITASK = SERVINGS[1:]
ADAPTERS = ("lora", "ia3", "bitfit")
#: the maskbench method whose artefact each serving stores per task (for its bytes)
METHOD_OF = {"finetuned": "finetuning", "masks": "masking", "lora": "lora", "ia3": "ia3", "bitfit": "bitfit"}
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


def base_bytes(base: str) -> int:
    """Bytes of the base model's weight files (what a MultiTaskModel stores once for all tasks)."""
    from maskbench.io.locations import resolve_model

    return sum(path.stat().st_size for path in Path(resolve_model(base)).glob("*.safetensors"))


def build_adapter(method_name: str, base: str, directory: Path, index: int, labels: tuple[str, ...]) -> None:
    """One task's LoRA/IA3/BitFit artefact with the method's default settings, as a training run saves it.

    The adapter starts as peft initialises it (LoRA: B = 0; IA3: vectors of ones), which would leave the backbone
    unchanged, so its weights are drawn at random instead (LoRA's B ~ N(0, 0.02), IA3's vectors ~ N(1, 0.05);
    BitFit's biases get N(0, 0.02) added); the head is the freshly initialised one.
    """
    from maskbench.data.models import load_model
    from maskbench.training.methods import get_method
    from maskbench.training.methods.base import head_modules
    from maskbench.training.settings import TrainConfig

    method = get_method(method_name)
    torch.manual_seed(index)
    config = TrainConfig(method=method_name, model=base, task="sst2", seed=index)
    plain = load_model(base, "single", labels)
    heads = tuple(f"{name}." for name in head_modules(plain))
    model = method.prepare(plain, config)
    generator = torch.Generator().manual_seed(1000 + index)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            inner = name.removeprefix("base_model.model.")
            if not parameter.requires_grad or inner.startswith(heads) or "modules_to_save" in name:
                continue
            noise = torch.empty_like(parameter).normal_(0.0, 1.0, generator=generator)
            if "lora_B" in name:
                parameter.copy_(0.02 * noise)
            elif "ia3_l" in name:
                parameter.copy_(1.0 + 0.05 * noise)
            elif method_name == "bitfit":
                parameter.add_(0.02 * noise)
    method.save(model.eval(), directory, base=base, config=config,
                extra={"task": directory.name, "kind": "single", "label_names": list(labels), "seed": index})


def build_assets(model: str, tasks: int, work_dir: Path, servings: list[str]) -> dict[str, Any]:
    """Base model and ``tasks`` artefacts per serving (finetuned checkpoints, compressed masks, adapters), with the
    bytes each stores per task; cached in ``work_dir``."""
    from transformers import BertConfig, BertModel

    from maskbench import MaskConfig, load_masked_model, mask_model, save_masks
    from maskbench.data.models import load_model, load_tokenizer
    from maskbench.training.masking.coding import COMPRESSED
    from maskbench.training.methods import get_method

    root = work_dir / model
    base = "minilm"
    if model == "bert-base":
        base = str(root / "base")
        if not (root / "base" / "config.json").is_file():
            torch.manual_seed(0)
            BertModel(BertConfig()).save_pretrained(root / "base")
            load_tokenizer("minilm").save_pretrained(root / "base")  # the same uncased 30522-word vocabulary
    artefacts: dict[str, list[str]] = {serving: [] for serving in SERVINGS if serving in servings}
    for index in range(tasks):
        name = f"task{index:02d}"
        labels = LABELS[index % len(LABELS)]
        masks = root / "masks" / name
        if not (masks / "maskbench.json").is_file():  # finetuned checkpoints are the merged masked models
            torch.manual_seed(index)
            masked = load_model(base, "single", labels)
            mask_model(masked, MaskConfig(), generator=torch.Generator().manual_seed(index))
            save_masks(masked, masks, base=base, mask_format=COMPRESSED,
                       extra={"task": name, "kind": "single", "label_names": list(labels), "seed": index})
        for serving, paths in artefacts.items():
            directory = root / serving / name
            if serving == "finetuned" and not (directory / "config.json").is_file():
                load_masked_model(masks).save_pretrained(directory)
            elif serving in ADAPTERS and not (directory / "maskbench.json").is_file():
                build_adapter(serving, base, directory, index, labels)
            paths.append(str(directory))
    disk = {serving: statistics.mean(get_method(METHOD_OF[serving]).artefact_bytes(path) for path in paths)
            for serving, paths in artefacts.items()}
    return {"base": base, "artefacts": artefacts, "bytes_per_task": disk, "base_bytes": base_bytes(base)}


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


def switch_times(multitask: Any, rounds: int = 3) -> list[float]:
    """Seconds of each switch (``activate``) while cycling through every task ``rounds`` times; the first round is
    left out (it decodes each task's masks for the first time)."""
    tasks = list(multitask.tasks)
    seconds = [timed(multitask.activate, tasks[(index + 1) % len(tasks)]) for index in range(rounds * len(tasks))]
    return seconds[len(tasks):]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    return {"median": 1000 * statistics.median(seconds), "max": 1000 * max(seconds)}


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    from maskbench import MultiTaskModel
    from maskbench.data.models import load_tokenizer

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    settings = SETTINGS[spec["model"]]
    tokenizer = load_tokenizer(spec["base"])
    batches = make_batches(tokenizer, settings["batches"], settings["batch_size"], settings["words"])
    result: dict[str, Any] = {}
    started = time.perf_counter()
    if spec["kind"] == "imports":
        return {"rss_mb": rss_mb(), "rss_trimmed_mb": trimmed_rss_mb(), "peak_mb": peak_mb(),
                "threads": torch.get_num_threads()}
    if spec["kind"] == "interleaved":  # throughput ratios and switch latencies within one process
        return interleaved(spec, tokenizer, batches)
    artefacts = spec["artefacts"][spec["kind"]][:spec["tasks"]]
    multitask = None
    if spec["kind"] == "finetuned":
        models = [Plain(AutoModelForSequenceClassification.from_pretrained(path), tokenizer) for path in artefacts]
        touch([model.model for model in models])
        serve = [model.__call__ for model in models]
    else:  # one MultiTaskModel: masks, or adapters of one method
        multitask = MultiTaskModel.from_masks(spec["base"], artefacts)
        touch([multitask.activate(task) for task in multitask.tasks])
        serve = [lambda texts, task=task: multitask.predict(task, texts, len(texts)) for task in multitask.tasks]
    result["load_s"] = time.perf_counter() - started
    for function in serve:  # every model/task serves once: its weights are touched and its buffers exist
        function(batches[0])
    result["rss_load_mb"] = rss_mb()
    seconds = sum(timed(serve[0], batch) for batch in batches)
    result["examples_per_s"] = sum(len(batch) for batch in batches) / seconds
    if multitask is not None and len(multitask.tasks) > 1:
        result["switch_ms"] = summary_ms(switch_times(multitask))
    result["rss_mb"], result["peak_mb"] = rss_mb(), peak_mb()
    result["rss_trimmed_mb"] = trimmed_rss_mb()
    return result


def interleaved(spec: dict[str, Any], tokenizer: Any, batches: list[list[str]]) -> dict[str, Any]:
    """Per-batch times of the plain model, every MultiTaskModel (one task / switching) and masks in the forward;
    then the switch latency of every MultiTaskModel, switch by switch in turn."""
    from transformers import AutoModelForSequenceClassification

    from maskbench import MultiTaskModel, load_masked_model

    artefacts = spec["artefacts"]
    multitasks = {serving: MultiTaskModel.from_masks(spec["base"], artefacts[serving])
                  for serving in MULTITASK if serving in artefacts}
    plain = Plain(AutoModelForSequenceClassification.from_pretrained(artefacts["finetuned"][0]), tokenizer)
    masked = Plain(load_masked_model(artefacts["masks"][0], merge=False), tokenizer) if "masks" in artefacts else None
    for multitask in multitasks.values():  # every task once: masks decoded, buffers allocated
        for task in multitask.tasks:
            multitask.predict(task, batches[0][:2], 2)
    times: dict[str, list[float]] = {}
    for index, batch in enumerate([batches[0], *batches]):  # the first batch warms up
        measured = {"plain": timed(plain, batch)}
        for serving, multitask in multitasks.items():
            tasks = list(multitask.tasks)
            multitask.activate(tasks[0])
            measured[f"{serving}, one task"] = timed(multitask.predict, tasks[0], batch, len(batch))
            measured[f"{serving}, switching"] = timed(multitask.predict, tasks[1 + index % (len(tasks) - 1)], batch,
                                                      len(batch))
        if masked is not None:
            measured["masks in forward"] = timed(masked, batch)
        if index:
            for key, value in measured.items():
                times.setdefault(key, []).append(value)
    switches: dict[str, list[float]] = {serving: [] for serving in multitasks}
    rounds = 4
    for step in range(rounds * max((len(multitask.tasks) for multitask in multitasks.values()), default=0)):
        for serving, multitask in multitasks.items():
            tasks = list(multitask.tasks)
            seconds = timed(multitask.activate, tasks[(step + 1) % len(tasks)])
            if step >= len(tasks):  # the first round is left out
                switches[serving].append(seconds)
    examples = sum(len(batch) for batch in batches)
    return {"examples_per_s": {key: examples / sum(value) for key, value in times.items()},
            "ratio_to_plain": {key: sum(times["plain"]) / sum(value) for key, value in times.items()},
            "switch_ms": {serving: {**summary_ms(seconds), "tasks": len(multitasks[serving].tasks)}
                          for serving, seconds in switches.items()}}


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    process = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                             text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    if process.returncode:
        raise RuntimeError(f"worker {spec['kind']} failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


# --- report ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm"], choices=list(SETTINGS))
    parser.add_argument("--tasks", nargs="+", type=int, default=[1, 4, 11])
    parser.add_argument("--servings", nargs="+", default=list(SERVINGS), choices=list(SERVINGS),
                        help="finetuned models and MultiTaskModels to compare (finetuned is always included)")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: torch's default)")
    parser.add_argument("--work-dir", default="/tmp/maskbench-multitask")
    parser.add_argument("--out", default="results/benchmarks/multitask.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from tabulate import tabulate

    from maskbench.io.fileio import write_json
    from maskbench.io.provenance import versions

    servings = [serving for serving in SERVINGS if serving == "finetuned" or serving in args.servings]
    records: dict[str, Any] = {}
    rows, ratio_rows, switch_rows = [], [], []
    for model in args.models:
        assets = build_assets(model, max(*args.tasks, 2), Path(args.work_dir), servings)  # switching needs two
        spec = {"model": model, "threads": args.threads, **assets}
        record: dict[str, Any] = {"settings": SETTINGS[model], "bytes_per_task": assets["bytes_per_task"],
                                  "base_bytes": assets["base_bytes"],
                                  "imports": run_worker({**spec, "kind": "imports"})}
        for tasks in args.tasks:
            for serving in servings:
                record[f"{serving}-{tasks}"] = entry = run_worker({**spec, "kind": serving, "tasks": tasks})
                print(f"{model} {serving} x{tasks}: {entry}", file=sys.stderr)
        record["interleaved"] = run_worker({**spec, "kind": "interleaved"})
        one_model = record["finetuned-1"]
        for tasks in args.tasks:
            for serving in servings:
                entry = record[f"{serving}-{tasks}"]
                disk = assets["bytes_per_task"][serving]
                total = tasks * disk + (0 if serving == "finetuned" else assets["base_bytes"])
                switch = entry.get("switch_ms")
                rows.append([model, tasks, serving,
                             f"{entry['rss_mb']:.0f}", f"{entry['rss_mb'] / one_model['rss_mb']:.3f}",
                             f"{entry['rss_trimmed_mb']:.0f}",
                             f"{entry['rss_trimmed_mb'] / one_model['rss_trimmed_mb']:.3f}", f"{entry['peak_mb']:.0f}",
                             f"{disk / 2**10:.0f}", f"{total / 2**20:.1f}",
                             f"{entry['examples_per_s']:.1f}",
                             f"{entry['examples_per_s'] / one_model['examples_per_s']:.2f}",
                             "" if switch is None else f"{switch['median']:.1f} / {switch['max']:.1f}",
                             f"{entry['load_s']:.1f}"])
        inter = record["interleaved"]
        for key, value in inter["examples_per_s"].items():
            ratio_rows.append([model, key, f"{value:.1f}", f"{inter['ratio_to_plain'][key]:.3f}"])
        for serving, switch in inter["switch_ms"].items():
            switch_rows.append([model, serving, switch["tasks"], f"{switch['median']:.2f}", f"{switch['max']:.2f}"])
        records[model] = record
    print(tabulate(rows, headers=["model", "tasks", "serving", "RSS MiB", "/ 1 finetuned", "trimmed MiB",
                                  "/ 1 finetuned", "peak MiB", "disk KiB/task", "disk MiB all", "examples/s",
                                  "/ 1 finetuned", "switch ms med / max", "load s"]))
    print("\nimports and tokenizer only: " + ", ".join(f"{m} {r['imports']['rss_mb']:.0f} MiB"
                                                     for m, r in records.items())
          + f"; torch threads: {next(iter(records.values()))['imports']['threads']}")
    print("\ninterleaved in one process (same batches)")
    print(tabulate(ratio_rows, headers=["model", "serving", "examples/s", "vs plain"]))
    print("\ntask switch (activate), in one process, switch by switch in turn")
    print(tabulate(switch_rows, headers=["model", "serving", "tasks", "median ms", "max ms"]))
    write_json(args.out, {"models": records, "versions": versions(), "cpu_count": os.cpu_count()})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
