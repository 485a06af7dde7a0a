"""What a workflow configuration will cost, before it is submitted (``maskbench estimate --configfile ...``).

Counted from the configuration alone, as the workflow plans it (``workflow/rules/common.smk``), without building
Snakemake's DAG:

- **planned** training jobs: per (model, task, method) cell the initial lr grid × the selection seeds — the
  ``train`` jobs that ``snakemake -n`` lists for a clean ``results_dir`` — plus the masking runs of the analyses
  of Figs. 1/2 (``train_analysis``; a run the grid already has is not counted twice);
- **worst case**: each cell's grid also extended ``lr_extension.max_extensions`` times (one lr × the selection
  seeds per round; the cap), and the seeds outside ``selection_seeds`` run at the chosen lr;
- training examples: worst-case runs × ``epochs`` (early stopping only shortens a run) × the train split
  (``max_train_examples`` caps it). The train split is the one the runs will load (:func:`train_split`): where the
  task's original files are local (the configuration's ``data_dir``, else ``$MASKBENCH_DATA_DIR``, resolved as the
  workflow and the training resolve them: :func:`maskbench.data.tasks.registry.local_task_dir`), the size of their
  train split after the reader's own dev carve (AG News' 5k subset: 4,000; read once per task, not tokenised);
  otherwise the full-scale (hub) size of :data:`TRAIN_EXAMPLES`. Each row names its basis.

Hours come from measured throughput, each labelled with where it was measured:

- CPU: the committed reference runs (``results/reference/runs``, the offline MiniLM; ``train_examples_per_s`` of
  each run, the median per task and method), single-threaded, so the figures are core-hours. A task or method
  without a record takes the slowest measured task of that method (of the full-weights method, finetuning, for a
  method without records: ``MethodInfo.full_weights``).
- GPU: the H200 step time the project measured (README, "Benchmarks": ``benchmarks/gpu_check.sh``): bert-base,
  batch 32, 128 wordpieces, fp32 with TF32, 30–34 ms per step — the slow end is used, and every example is taken
  at the configured ``max_length`` (worst case: dynamic padding makes most batches shorter), times the method's
  ``MethodInfo.relative_step_cost`` (its step time over finetuning's there: masking 1.03; the PEFT methods, not
  measured, are costed as finetuning).

Both scale with model size as non-embedding parameters × tokens (bert-base ≈ 85 M, MiniLM-L6 ≈ 10.6 M); a
multiple-choice example (SWAG) is 4 sequences. Dev evaluation after each epoch and the analysis steps that only
read trained models (Table 3, Figs. 4–7) are not included.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maskbench.io.errors import ConfigError, MaskbenchError
from maskbench.io.locations import resolve_data_dir
from maskbench.records import run_record_paths
from maskbench.training.method_registry import method_info, registered

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
REFERENCE_RUNS = REPO / "results" / "reference" / "runs"

#: train split sizes at full scale (hub / original files; maskbench.data.tasks.registry descriptions)
TRAIN_EXAMPLES = {
    "sst2": 67_349, "mrpc": 3_668, "cola": 8_551, "rte": 2_490, "qnli": 104_743, "sem": 4_346, "trec": 4_904,
    "ag_news": 96_000, "pos": 3_068, "conll2003": 14_041, "swag": 73_546, "imdb": 22_500,
}  # fmt: skip
#: where a row's train split size comes from (:attr:`Row.train_basis`)
LOCAL_BASIS = "local data"
FULL_SCALE_BASIS = "full-scale size"
#: sequences per example (a multiple-choice example is one sequence per ending)
SEQUENCES = {"swag": 4}

#: (layers, hidden, intermediate) of models the estimate knows without loading their config
ARCHITECTURES = {
    "bert-base-uncased": (12, 768, 3072), "bert-base-cased": (12, 768, 3072), "roberta-base": (12, 768, 3072),
    "distilbert-base-uncased": (6, 768, 3072), "distilbert-base-cased": (6, 768, 3072),
    "bert-large-uncased": (24, 1024, 4096), "bert-large-cased": (24, 1024, 4096), "roberta-large": (24, 1024, 4096),
}  # fmt: skip


@dataclass(frozen=True)
class GpuFigure:
    """A step time measured on a GPU, and what it was measured with."""

    device: str
    model: str
    parameters: int  # non-embedding parameters of ``model``
    batch_size: int
    tokens: int  # wordpieces per example
    step_s: float  # finetuning's (a method's: times its MethodInfo.relative_step_cost)
    source: str

    @property
    def examples_per_s(self) -> float:
        return self.batch_size / self.step_s


#: README "Benchmarks": measured 2026-12-04 with benchmarks/gpu_check.sh (torch 2.11, transformers 5.17)
H200 = GpuFigure(device="H200 (fp32+TF32)", model="bert-base", parameters=12 * (4 * 768**2 + 2 * 768 * 3072),
                 batch_size=32, tokens=128, step_s=0.034,
                 source="README 'Benchmarks' (benchmarks/gpu_check.sh, 2026-12-04): bert-base 30-34 ms per step "
                        "at batch 32 x 128 wordpieces; 34 ms used")  # fmt: skip


@dataclass(frozen=True)
class CpuFigure:
    """Training examples/s of one (task, method) measured on a CPU for a model of ``parameters``."""

    examples_per_s: float
    device: str
    parameters: int
    basis: str  # "measured" or what it was taken from


@dataclass
class Row:
    """The cost of one (model, task) part: the grid, or the analyses' own runs."""

    model: str
    task: str
    part: str  # "grid" | "analyses"
    planned_jobs: int
    worst_case_jobs: int
    train_examples: int  # worst case
    train_split: int  # examples per epoch: the train split a run loads, capped by max_train_examples
    train_basis: str  # where the split's size comes from: LOCAL_BASIS or FULL_SCALE_BASIS (+ the cap where it cuts)
    cpu_hours: float
    gpu_hours: float
    cpu_basis: str


@dataclass
class Estimate:
    rows: list[Row]
    cpu_device: str
    gpu_device: str
    notes: list[str]

    def totals(self) -> dict[str, float]:
        keys = ("planned_jobs", "worst_case_jobs", "train_examples", "cpu_hours", "gpu_hours")
        return {key: sum(getattr(row, key) for row in self.rows) for key in keys}

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(row) for row in self.rows], "totals": self.totals(), "cpu_device": self.cpu_device,
                "gpu_device": self.gpu_device, "notes": self.notes}


# --- configuration -------------------------------------------------------------------------------------------


def load_config(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The workflow configuration of ``paths`` (later files override earlier ones key by key, as Snakemake merges
    --configfile), validated against the workflow's schema with its defaults filled in."""
    import yaml
    from snakemake.utils import update_config

    config: dict[str, Any] = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the configuration ({error.strerror or error})") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of configuration keys, got {type(data).__name__}")
        update_config(config, data)
    if SCHEMA.is_file():
        _validate(config, paths)
    missing = [method for method in config["methods"] if method not in config["lr_grid"]]
    if missing:
        raise ConfigError(f"invalid configuration at 'lr_grid': no grid for method(s) {missing} listed in 'methods'")
    return config


def _validate(config: dict[str, Any], paths: Sequence[str | Path]) -> None:
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(SCHEMA), set_default=True)
    except WorkflowError as wrapped:
        error = wrapped.__context__
        if not isinstance(error, jsonschema.ValidationError):
            raise ConfigError(f"{', '.join(map(str, paths))}: {str(wrapped).splitlines()[0]}") from None
        location = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"invalid configuration at '{location}' ({', '.join(map(str, paths))}): "
                          f"{error.message}") from None


def _training(config: Mapping[str, Any], task: str) -> dict[str, Any]:
    from maskbench.training.settings import options

    defaults = {option.name: option.default for option in options()}
    return {**defaults, **(config.get("training") or {}), **((config.get("task_settings") or {}).get(task) or {})}


# --- runs ----------------------------------------------------------------------------------------------------


def grid_runs(config: Mapping[str, Any]) -> dict[tuple[str, str], tuple[int, int, dict[str, int]]]:
    """(model, task) -> (planned runs, worst-case runs, worst-case runs per method) of the lr grid."""
    from maskbench.results.selection import format_lr
    from maskbench.results.tables import Layout

    seeds = list(config["seeds"])
    selection_seeds = list(config.get("selection_seeds") or seeds)
    extensions = int((config.get("lr_extension") or {}).get("max_extensions", 3))
    result: dict[tuple[str, str], tuple[int, int, dict[str, int]]] = {}
    for model, task, method in Layout.from_config(config).cells():
        grid = len({format_lr(lr) for lr in config["lr_grid"][method]})
        planned = grid * len(selection_seeds)
        # a single-lr grid has no border to extend (maskbench.results.selection.select_lr)
        rounds = extensions if grid >= 2 else 0
        worst = (grid + rounds) * len(selection_seeds) + len(seeds) - len(selection_seeds)
        before = result.get((model, task), (0, 0, {}))
        result[(model, task)] = (before[0] + planned, before[1] + worst, {**before[2], method: worst})
    return result


def analysis_runs(config: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """(model, task) -> masking runs of Figs. 1/2 that the grid does not already have (``train_analysis``)."""
    from maskbench.results.selection import format_lr

    analyses = config.get("analyses") or {}
    sweeps = []
    if "sparsity" in analyses:
        spec = analyses["sparsity"]
        sweeps += [(spec["model"], task, float(s), spec["blocks"], format_lr(spec["lr"]), seed)
                   for task in spec["tasks"] for s in spec["initial_sparsities"] for seed in spec["seeds"]]
    if "layers" in analyses:
        spec = analyses["layers"]
        sweeps += [(spec["model"], task, float(s), blocks, format_lr(spec["lr"]), seed)
                   for task in spec["tasks"] for blocks in spec["block_sets"] for s in spec["initial_sparsities"]
                   for seed in spec["seeds"]]
    masking_grid = {format_lr(lr) for lr in config["lr_grid"].get("masking", [])}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for model, task, sparsity, blocks, lr, seed in set(sweeps):
        configured = _training(config, task)["initial_sparsity"]
        in_grid = (task in config["tasks"] and "masking" in config["methods"] and seed in config["seeds"]
                   and lr in masking_grid and sparsity == float(configured)
                   and blocks == config["models"][model].get("blocks"))
        if not in_grid:
            counts[(model, task)] += 1
    return dict(counts)


# --- train split ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSplit:
    """The size of a task's train split as a run will load it, and where that size comes from."""

    examples: int
    basis: str  # LOCAL_BASIS or FULL_SCALE_BASIS
    note: str | None = None  # why local files were not counted, where they exist but a run could not read them


def train_split(task: str, data_dir: str | Path | None, allow_partial: bool = False) -> TrainSplit:
    """The train split of ``task`` (before ``max_train_examples``) that a run with this ``data_dir`` (the
    configuration's; None: ``$MASKBENCH_DATA_DIR``) and ``allow_partial`` loads: the local files' (after the
    reader's dev carve) where the task's directory is there, else the full-scale (hub) size.

    Local files that a run could not read (a configured ``data_dir`` without the task, a missing or malformed
    file) are not an error here: the full-scale size is used and :attr:`TrainSplit.note` says why."""
    full_scale = TrainSplit(TRAIN_EXAMPLES[task], FULL_SCALE_BASIS)
    if resolve_data_dir(data_dir) is None:  # no local data at all: no need to import datasets
        return full_scale
    from maskbench.data import tasks
    from maskbench.data.tasks.registry import local_task_dir

    try:
        if local_task_dir(tasks.get_task(task), data_dir) is None:
            return full_scale  # the run loads it from the hub
        return TrainSplit(len(tasks.load(task, data_dir, allow_partial=allow_partial)["train"]), LOCAL_BASIS)
    except MaskbenchError as error:
        return TrainSplit(full_scale.examples, full_scale.basis,
                          f"{task}: {error} (the full-scale size is counted; a run would stop here)")


# --- throughput ----------------------------------------------------------------------------------------------


def non_embedding_parameters(name: str) -> int:
    """Parameters of a model's transformer blocks (attention and feed-forward weights): what a token costs."""
    if name in ARCHITECTURES:
        layers, hidden, intermediate = ARCHITECTURES[name]
    else:
        from maskbench.data.models import model_config

        try:
            config = model_config(name)
        except ConfigError as error:
            raise ConfigError(f"{error} (the estimate reads the model's config.json: name a local model, or run "
                              f"the workflow's download stage first)") from None
        layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
        hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None)
        intermediate = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None)
        if not (layers and hidden and intermediate):
            raise ConfigError(f"model {name!r}: cannot read its size (layers, hidden and intermediate size) from "
                              f"its config")
    return int(layers * (4 * hidden * hidden + 2 * hidden * intermediate))


def measured_cpu(runs_dir: Path = REFERENCE_RUNS) -> tuple[dict[tuple[str, str], float], str, str]:
    """(task, method) -> median training examples/s of the reference runs, their device and model name."""
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    devices, models = set(), set()
    for path in run_record_paths(runs_dir):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rate = record.get("train_examples_per_s")
        if not isinstance(rate, (int, float)) or rate <= 0 or not str(record.get("device", "")).startswith("cpu"):
            continue
        rates[(record["task"], record["method"])].append(float(rate))
        devices.add(record["device"])
        models.add(record["model"])
    if not rates:
        raise ConfigError(f"{runs_dir}: no run records with a CPU throughput (train_examples_per_s) to estimate from")
    if len(models) > 1:
        raise ConfigError(f"{runs_dir}: records of several models ({sorted(models)}); expected one")
    device = " / ".join(sorted(devices))
    return {key: statistics.median(values) for key, values in rates.items()}, device, models.pop()


def cpu_figure(task: str, method: str, rates: Mapping[tuple[str, str], float], device: str,
               parameters: int) -> CpuFigure:  # fmt: skip
    """The measured examples/s of (task, method), else the slowest measured task of the method (or of the full-weights
    method, finetuning)."""
    if (task, method) in rates:
        return CpuFigure(rates[(task, method)], device, parameters, "measured")
    full_weights = [name for name, info in registered().items() if info.full_weights]
    for source in (method, *full_weights):
        measured = {t: rate for (t, m), rate in rates.items() if m == source}
        if measured:
            slowest = min(measured, key=measured.get)
            rate = measured[slowest] / SEQUENCES.get(task, 1)
            return CpuFigure(rate, device, parameters, f"as {slowest}/{source}")
    raise ConfigError(f"no CPU throughput measured for method {method!r} nor {' nor '.join(full_weights)}")


# --- the estimate --------------------------------------------------------------------------------------------


def estimate(config: Mapping[str, Any], runs_dir: Path = REFERENCE_RUNS, gpu: GpuFigure = H200) -> Estimate:
    """Jobs, worst-case training examples and CPU/GPU hours per (model, task) of a validated configuration."""
    rates, cpu_device, measured_model = measured_cpu(runs_dir)
    measured_parameters = non_embedding_parameters(measured_model)
    sizes = {key: non_embedding_parameters(model["name"]) for key, model in config["models"].items()}
    rows = []
    splits: dict[str, TrainSplit] = {}
    grid = grid_runs(config)
    analyses = analysis_runs(config)
    parts: list[tuple[str, str, str, int, int, dict[str, int]]] = [
        (model, task, "grid", planned, worst, per_method)
        for (model, task), (planned, worst, per_method) in grid.items()
    ] + [(model, task, "analyses", count, count, {"masking": count}) for (model, task), count in analyses.items()]
    for model, task, part, planned, worst, per_method in parts:
        settings = _training(config, task)
        if task not in splits:  # one load per task
            splits[task] = train_split(task, config.get("data_dir"), bool(config.get("allow_partial_data")))
        split = splits[task]
        cap = settings.get("max_train_examples")
        per_run = min(split.examples, cap or split.examples)
        basis = split.basis + (", capped by max_train_examples" if per_run < split.examples else "")
        examples_per_run = per_run * int(settings.get("epochs") or 10)
        cpu_s = gpu_s = 0.0
        bases = set()
        for method, runs in per_method.items():
            examples = runs * examples_per_run
            figure = cpu_figure(task, method, rates, cpu_device, measured_parameters)
            bases.add(figure.basis)
            cpu_s += examples / (figure.examples_per_s * measured_parameters / sizes[model])
            tokens = int(settings.get("max_length") or 128) * SEQUENCES.get(task, 1)
            gpu_rate = gpu.examples_per_s * (gpu.parameters * gpu.tokens) / (sizes[model] * tokens)
            gpu_s += examples / gpu_rate * method_info(method).relative_step_cost
        rows.append(Row(model, task, part, planned, worst, worst * examples_per_run, per_run, basis, cpu_s / 3600,
                        gpu_s / 3600, ", ".join(sorted(bases))))
    data_root = resolve_data_dir(config.get("data_dir"))
    source = "data_dir" if config.get("data_dir") is not None else "$MASKBENCH_DATA_DIR"
    where = (f"the task's files in {data_root} ({source})" if data_root is not None
             else "local files (none here: neither data_dir nor $MASKBENCH_DATA_DIR is set)")
    notes = [
        f"train split (examples per epoch): '{LOCAL_BASIS}' is the train split a run loads from {where}, after the "
        f"loader's dev carve; '{FULL_SCALE_BASIS}' is the full-scale (hub) train split, for a task without local "
        f"files; max_train_examples caps either",
        *(split.note for split in splits.values() if split.note),
        f"CPU: core-hours at the throughput of the committed reference runs ({measured_model}, {cpu_device}; "
        f"median per task and method), scaled by non-embedding parameters ({measured_model} "
        f"{measured_parameters / 1e6:.1f} M)",
        f"GPU: hours on one {gpu.device}, from {gpu.source}; every example at max_length wordpieces, scaled by "
        f"non-embedding parameters ({gpu.model} {gpu.parameters / 1e6:.1f} M) x tokens",
        "planned jobs: what `snakemake -n` lists as train/train_analysis jobs for an empty results_dir; worst case: "
        "every lr grid extended to lr_extension.max_extensions (one lr x the selection seeds per round) and the "
        "other seeds at the chosen lr; examples and hours are for the worst case, every run for all its epochs",
        "not included: dev evaluation after each epoch, data preparation, and the analysis steps that only read "
        "trained models (Table 3, Figs. 4-7)",
    ]
    return Estimate(rows, cpu_device, gpu.device, notes)


def render(result: Estimate, labels: Mapping[str, str] | None = None) -> str:
    """The estimate as a text table (one row per model, task and part) with totals and notes."""
    from tabulate import tabulate

    header = ["model", "task", "part", "jobs (planned)", "jobs (worst case)", "train split", "split basis",
              "train examples", "CPU core-h", "GPU-h", "CPU basis"]
    body = [[row.model, row.task, row.part, row.planned_jobs, row.worst_case_jobs, f"{row.train_split:,}",
             row.train_basis, f"{row.train_examples:,}", _hours(row.cpu_hours), _hours(row.gpu_hours), row.cpu_basis]
            for row in result.rows]
    totals = result.totals()
    body.append(["total", "", "", totals["planned_jobs"], totals["worst_case_jobs"], "", "",
                 f"{int(totals['train_examples']):,}", _hours(totals["cpu_hours"]), _hours(totals["gpu_hours"]),
                 ""])
    lines = [tabulate(body, headers=header, tablefmt="simple", disable_numparse=True), ""]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines)


def _hours(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.3f}"
