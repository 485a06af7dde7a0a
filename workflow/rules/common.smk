# Configuration check, result paths (defined here and nowhere else), wildcard constraints, and the input
# functions that turn the configuration and the lr-selection checkpoints into file lists.
#
# Planning must stay fast and offline (the paper's grid plans ~1,700 jobs in seconds): nothing here imports
# maskbench (its package imports torch), loads a model or touches data. The rules' run blocks import it.

import json
from pathlib import Path
from types import SimpleNamespace

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


# --- configuration ----------------------------------------------------------------------------------------


def _config_error(error):
    """One message that names the offending key, from a jsonschema error wrapped by snakemake's validate()."""
    location = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    hint = ""
    if error.validator == "type" and isinstance(error.instance, str):
        try:
            float(error.instance)
            hint = " (YAML reads 1e-5 as text: write 1.0e-5)"
        except ValueError:
            pass
    files = ", ".join(map(str, workflow.config_settings.configfiles)) or "config.yaml"
    return f"invalid configuration at '{location}' ({files}): {error.message}{hint}"


def check_config(config):
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except WorkflowError as wrapped:
        # validate() formats the jsonschema error into its message; the error itself is the context
        if not isinstance(wrapped.__context__, jsonschema.ValidationError):
            raise
        raise WorkflowError(_config_error(wrapped.__context__)) from None
    missing = [method for method in config["methods"] if method not in config["lr_grid"]]
    if missing:
        raise WorkflowError(f"invalid configuration at 'lr_grid': no grid for method(s) {missing} listed in "
                            f"'methods'")


check_config(config)

RESULTS = config["results_dir"]
MODELS = list(config["models"])
TASKS = list(config["tasks"])
METHODS = list(config["methods"])
SEEDS = list(config["seeds"])


def format_lr(lr):
    """The canonical text of an lr in paths; the same as maskbench.select.format_lr (a test checks)."""
    return f"{float(lr):.6g}"


def initial_grid(method):
    return sorted({format_lr(lr) for lr in config["lr_grid"][method]}, key=float)


def initial_grid_of_method(wildcards):
    return initial_grid(wildcards.method)


# --- result paths -----------------------------------------------------------------------------------------
# Every file the workflow writes, in one place. Layout: results/<stage>/<model>/<task>/...

PREPARED = f"{RESULTS}/prepared/{{model}}/{{task}}"
RUN = f"{RESULTS}/runs/{{model}}/{{task}}/{{method}}/lr{{lr}}/seed{{seed}}"
RUN_METRICS = f"{RUN}/metrics.json"
RUN_PREDICTIONS = f"{RUN}/predictions.safetensors"
SELECTION_ROUND = f"{RESULTS}/selection/{{model}}/{{task}}/{{method}}/round{{round}}.json"
CHOSEN = f"{RESULTS}/selection/{{model}}/{{task}}/{{method}}/chosen.json"
AGGREGATE = f"{RESULTS}/aggregate/{{model}}/{{task}}/{{method}}.json"
ENSEMBLE = f"{RESULTS}/ensembles/{{model}}/{{task}}/{{method}}.json"
EVALUATION = f"{RESULTS}/evaluation/{{model}}/{{task}}/{{method}}.json"
REFERENCE = f"{RESULTS}/artefacts/{{model}}/{{task}}/reference_sizes.json"
TABLE = f"{RESULTS}/tables/{{name}}"
FIGURE = f"{RESULTS}/figures/{{name}}"
LOG = f"{RESULTS}/logs/{{stage}}/{{name}}.log"
BENCHMARK = f"{RESULTS}/logs/{{stage}}/{{name}}.benchmark.tsv"  # wall and CPU seconds, peak memory of a job

TABLE_NAMES = ["table1_dev", "table2_test", "table4_lr", "table5_sizes", "table8_memory"]
TABLE_FORMATS = [".md", ".tex", ".csv"]


def table_files(name):
    return [TABLE.format(name=name + suffix) for suffix in TABLE_FORMATS]


def log_file(stage, name):
    return LOG.format(stage=stage, name=name)


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    task=r"[a-z0-9_]+",
    method=r"masking|finetuning",
    lr=r"[0-9][0-9.e+-]*",
    seed=r"[0-9]+",
    round=r"[0-9]+",


# --- training settings ------------------------------------------------------------------------------------

# training key -> maskbench train option; booleans map to a flag given when the value is the one shown
_TRAIN_OPTIONS = {"batch_size": "--batch-size", "epochs": "--epochs", "patience": "--patience",
                  "max_length": "--max-length", "max_train_examples": "--max-train-examples",
                  "max_eval_examples": "--max-eval-examples"}
_MASK_OPTIONS = {"initial_sparsity": "--initial-sparsity", "threshold": "--threshold"}
_MASK_FLAGS = {"mask_pooler": (False, "--no-mask-pooler"), "mask_classifier": (False, "--no-mask-classifier"),
               "train_classifier": (True, "--train-classifier")}


def training_settings(task):
    """The training keys of ``task``: ``training`` overridden by ``task_settings[task]``."""
    return {**config.get("training", {}), **config["task_settings"].get(task, {})}


def max_length(task):
    return training_settings(task).get("max_length", 128)


def train_options(wildcards):
    """The ``maskbench train`` options of a run besides method, task, seed, lr and paths (unset keys: defaults)."""
    settings = training_settings(wildcards.task)
    model = config["models"][wildcards.model]
    options = ["--model", model["name"], "--max-length", str(max_length(wildcards.task))]
    for key, option in _TRAIN_OPTIONS.items():
        if key != "max_length" and settings.get(key) is not None:
            options += [option, str(settings[key])]
    if wildcards.method == "masking":
        for key, option in _MASK_OPTIONS.items():
            if settings.get(key) is not None:
                options += [option, str(settings[key])]
        for key, (value, flag) in _MASK_FLAGS.items():
            if settings.get(key) is value:
                options.append(flag)
        if model.get("blocks") is not None:
            options += ["--blocks", model["blocks"]]
    return " ".join(options)


def data_options(wildcards):
    options = []
    if config["data_dir"] is not None:
        options += ["--data-dir", config["data_dir"]]
    if config["allow_partial_data"]:
        options.append("--allow-partial-data")
    return " ".join(options)


def train_runtime(wildcards, attempt):
    resources = config["resources"]["train"]
    return resources["runtime_per_task"].get(wildcards.task, resources["runtime"]) * attempt


# --- learning-rate selection (checkpoint rounds) -------------------------------------------------------------


def run_files(pattern, wildcards, lrs):
    return [pattern.format(model=wildcards.model, task=wildcards.task, method=wildcards.method, lr=lr, seed=seed)
            for lr in lrs for seed in SEEDS]


def selection_round(wildcards, index):
    """The output of selection round ``index`` of this (model, task, method); raises until it has run."""
    return checkpoints.select_lr.get(model=wildcards.model, task=wildcards.task, method=wildcards.method,
                                     round=str(index)).output[0]


def round_grid(wildcards):
    """The grid of this round: the initial grid, or the previous round's grid plus the lr it proposed."""
    index = int(wildcards.round)
    if index == 0:
        return initial_grid(wildcards.method)
    previous = json.loads(Path(selection_round(wildcards, index - 1)).read_text())
    if previous["next_lr"] is None:
        raise WorkflowError(f"selection round {index} of {wildcards.model}/{wildcards.task}/{wildcards.method} "
                            f"was requested, but round {index - 1} is final")
    return sorted([*previous["grid"], previous["next_lr"]], key=float)


def round_inputs(wildcards):
    inputs = {"runs": run_files(RUN_METRICS, wildcards, round_grid(wildcards))}
    if int(wildcards.round) > 0:
        inputs["previous"] = selection_round(wildcards, int(wildcards.round) - 1)
    return inputs


def final_selection(wildcards):
    """Walk the rounds until one is final (the cap on extensions guarantees one is)."""
    index = 0
    while True:
        path = selection_round(wildcards, index)
        if json.loads(Path(path).read_text())["final"]:
            return path
        index += 1


def chosen_lr(wildcards):
    return json.loads(Path(final_selection(wildcards)).read_text())["best_lr"]


def chosen_runs(wildcards):
    """The metrics and predictions of every seed at the chosen lr."""
    lr = [chosen_lr(wildcards)]
    return {"runs": run_files(RUN_METRICS, wildcards, lr), "predictions": run_files(RUN_PREDICTIONS, wildcards, lr)}


# --- tables and figures -------------------------------------------------------------------------------------


def cell_files(pattern):
    """One file per (model, task, method), in the order maskbench.tables.Layout.cells() expects."""
    return [pattern.format(model=m, task=t, method=k) for m in MODELS for t in TASKS for k in METHODS]


def reference_files():
    """One file per (model, task), in the order maskbench.tables.Layout.pairs() expects."""
    return [REFERENCE.format(model=m, task=t) for m in MODELS for t in TASKS]


def table_layout():
    return {
        "models": {key: {"name": model["name"], "label": model.get("label", key)}
                   for key, model in config["models"].items()},
        "tasks": TASKS, "methods": METHODS, "seeds": SEEDS,
        "initial_grids": {method: [float(lr) for lr in initial_grid(method)] for method in METHODS},
    }


def final_targets():
    """Tables, figures, and every per-cell record; the runs come from :func:`run_targets`."""
    return [*(path for name in TABLE_NAMES for path in table_files(name)),
            TABLE.format(name="summary.csv"),
            FIGURE.format(name="fig3_memory.png"), FIGURE.format(name="fig3_memory.csv"),
            *cell_files(CHOSEN), *cell_files(AGGREGATE), *cell_files(ENSEMBLE), *cell_files(EVALUATION),
            *reference_files()]


def run_targets(wildcards):
    """Every selection round and every training run of the (possibly extended) grids.

    Snakemake only regenerates a deleted file when a target needs it, not when an up-to-date downstream file
    was made from it. Listing every stage's files as targets makes a deleted run (or record) come back on the
    next invocation, together with everything made from it.
    """
    files = []
    for model in MODELS:
        for task in TASKS:
            for method in METHODS:
                cell = SimpleNamespace(model=model, task=task, method=method)
                path, index = None, 0
                while True:
                    path = selection_round(cell, index)
                    files.append(path)
                    selection = json.loads(Path(path).read_text())
                    if selection["final"]:
                        break
                    index += 1
                files += run_files(RUN_METRICS, cell, selection["grid"])
                files += run_files(RUN_PREDICTIONS, cell, selection["grid"])
    return files

