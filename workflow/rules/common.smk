# Configuration check, result paths (defined here and nowhere else), wildcard constraints, and the input
# functions that turn the configuration and the lr-selection checkpoints into file lists.
#
# Planning must stay fast and offline (the paper's grid plans ~1,700 jobs in seconds): nothing here loads a
# model or parses data (the task files are only checksummed, maskbench.fingerprint: ~0.2 s for all of them), and
# only maskbench's torch-free modules are imported (maskbench.settings, .locations, .fingerprint, .records).

import json
import os
import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from maskbench.errors import MaskbenchError, RecordError, SettingError
from maskbench.fingerprint import data_changes, task_fingerprint
from maskbench.locations import check_path_settings, restore_offline_arguments, workflow_environment
from maskbench.locks import hold_results_dir
from maskbench.records import read_run_record, read_selection_round
from maskbench.settings import (
    BLOCK_METHODS,
    METHODS as REGISTERED_METHODS,
    command_line,
    options,
    recorded_transfer,
    run_config,
    run_identity,
)
from maskbench.select import folder_labels, format_lr
from maskbench.tables import Layout

# --- configuration ----------------------------------------------------------------------------------------


# a number in exponent form without a dot (1e-5): YAML 1.1 (PyYAML) reads it as text
_EXPONENT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+")


def _config_files():
    return ", ".join(map(str, workflow.config_settings.configfiles)) or "config.yaml"


def _type_hint(error):
    """What to write instead, for text where the schema expects a number (YAML's exponent form, quotes)."""
    if error.validator != "type" or not isinstance(error.instance, str):
        return ""
    expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    text = error.instance.strip()
    if "number" in expected and _EXPONENT_TEXT.fullmatch(text):
        return " (YAML reads 1e-5 as text: write 1.0e-5)"
    if {"number", "integer"} & set(expected) and not _EXPONENT_TEXT.fullmatch(text):
        try:
            float(text)
        except ValueError:
            return ""
        return " (the value is text: write the number without quotes)"
    return ""


def _config_error(error):
    """One message that names the offending key, from a jsonschema error wrapped by snakemake's validate()."""
    location = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"invalid configuration at '{location}' ({_config_files()}): {error.message}{_type_hint(error)}"


def _setting_error(error):
    """The message of a :class:`maskbench.errors.SettingError` in the form of :func:`_config_error`."""
    return WorkflowError(f"invalid configuration at '{error.key}' ({_config_files()}): {error.problem}")


def check_config(config):
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except WorkflowError as wrapped:
        # validate() formats the jsonschema error into its message; the error itself is the context
        if not isinstance(wrapped.__context__, jsonschema.ValidationError):
            raise
        raise WorkflowError(_config_error(wrapped.__context__)) from None
    for key, names in (("methods", config["methods"]), ("lr_grid", config["lr_grid"])):
        unknown = [name for name in names if name not in REGISTERED_METHODS]
        if unknown:
            raise WorkflowError(
                f"invalid configuration at '{key}': unknown method(s) {unknown}; registered: {list(REGISTERED_METHODS)}"
            )
    missing = [method for method in config["methods"] if method not in config["lr_grid"]]
    if missing:
        raise WorkflowError(
            f"invalid configuration at 'lr_grid': no grid for method(s) {missing} listed in " f"'methods'"
        )
    try:
        # paths: no control characters, `~` expanded here for Snakemake and the jobs alike, results_dir not
        # the filesystem root, the home directory or this checkout (maskbench.locations)
        config.update(check_path_settings(config, Path.cwd(), Path(workflow.basedir)))
        # values that name run folders (lr<lr>, masking_s<sparsity>_b<blocks>): one folder per value
        for method, grid in config["lr_grid"].items():
            folder_labels(f"lr_grid.{method}", grid)
        for name, spec in config["analyses"].items():
            if "initial_sparsities" in spec:
                folder_labels(f"analyses.{name}.initial_sparsities", spec["initial_sparsities"])
    except SettingError as error:
        raise _setting_error(error) from None


check_config(config)

RESULTS = config["results_dir"]  # `~` expanded (check_config)
# one workflow per results_dir (maskbench.locks): a run's main process holds it for its lifetime, before anything
# is planned; its jobs get its token (environment), a second workflow or a standalone maskbench writer is refused
if workflow.is_main_process and not workflow.output_settings.dryrun:
    try:
        hold_results_dir(RESULTS)
    except MaskbenchError as error:
        raise WorkflowError(str(error)) from None
MODELS = list(config["models"])
TASKS = list(config["tasks"])
METHODS = list(config["methods"])
SEEDS = list(config["seeds"])
# the seeds whose runs choose the lr (all by default); the other seeds run at the chosen lr only
SELECTION_SEEDS = list(config.get("selection_seeds") or SEEDS)
if not set(SELECTION_SEEDS) <= set(SEEDS):
    raise WorkflowError(
        f"invalid configuration at 'selection_seeds': {SELECTION_SEEDS} must be a subset of 'seeds' {SEEDS}"
    )
for _method, _tasks in (config.get("method_tasks") or {}).items():
    if _method not in METHODS or not set(_tasks) <= set(TASKS):
        raise WorkflowError(
            f"invalid configuration at 'method_tasks.{_method}': the method must be in 'methods' {METHODS} and "
            f"its tasks {_tasks} in 'tasks' {TASKS}"
        )
# the (model, task, method) cells of the grid, in table order (a method may run on some tasks only)
LAYOUT = Layout.from_config(config)
CELLS = LAYOUT.cells()
MASKED_TASKS = [task for task in TASKS if "masking" in METHODS and LAYOUT.runs(task, "masking")]


# --- where task files, models and caches are ----------------------------------------------------------------
# Resolved once, by the main process: a relative `data_dir`, `cache_dir` or $MASKBENCH_DATA_DIR is taken relative
# to the directory Snakemake was launched from (not --directory, not a job's directory on a compute node). Every
# process gets the absolute paths; jobs also get the hub switched off (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1):
# they read what the download stage (download.smk) fetched. Cluster jobs inherit the main process's environment
# (sbatch --export=ALL) and re-read this file, which then sets the same variables in the job's own process (for
# `run:` steps); shell steps get them from the shell prefix (Snakefile).

# the launching shell's hub switches, for the download stage (it runs online unless the user switched it off):
# the arguments of an `env` command
DOWNLOAD_HUB_SETTINGS = restore_offline_arguments(os.environ)
ENVIRONMENT = workflow_environment(
    config["data_dir"],
    config["cache_dir"],
    os.environ,
    Path.cwd(),
    main_process=workflow.is_main_process,
    directory_given=workflow.overwrite_workdir is not None,
)
os.environ.update(ENVIRONMENT.shared() if workflow.is_main_process else ENVIRONMENT.jobs())
if workflow.remote_exec:  # one line in each cluster job's log: where it reads from
    print(ENVIRONMENT.describe_job(), file=sys.stderr)


def initial_grid(method):
    return sorted({format_lr(lr) for lr in config["lr_grid"][method]}, key=float)


def initial_grid_of_method(wildcards):
    return initial_grid(wildcards.method)


# --- result paths -----------------------------------------------------------------------------------------
# Every file the workflow writes, in one place. Layout: results/<stage>/<model>/<task>/...

DOWNLOAD_MANIFEST = f"{RESULTS}/download/manifest.json"
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
SERVING = f"{RESULTS}/artefacts/{{model}}/serving_memory.json"
TABLE = f"{RESULTS}/tables/{{name}}"
FIGURE = f"{RESULTS}/figures/{{name}}"
LOG = f"{RESULTS}/logs/{{stage}}/{{name}}.log"
BENCHMARK = f"{RESULTS}/logs/{{stage}}/{{name}}.benchmark.tsv"  # wall and CPU seconds, peak memory of a job

TABLE_NAMES = ["table1_dev", "table2_test", "table4_lr", "table5_sizes", "table8_memory", "table9_bytes"]
# .html: the page `snakemake --report` shows (caption, table, notes)
TABLE_FORMATS = [".md", ".tex", ".csv", ".html"]


def downloaded():
    """Input of every step that loads a pretrained model or task data: the download stage ran first. Its age does
    not count (ancient): re-fetching, e.g. for a model added to the config, does not redo what was made before."""
    return ancient(DOWNLOAD_MANIFEST)


def download_tasks():
    """Every task the configuration prepares data for: the grid's and the analyses' (Figs. 1/2, Table 3 targets)."""
    tasks = list(TASKS)
    for spec in config["analyses"].values():
        tasks += [
            *spec.get("tasks", []),
            *([spec["task"]] if "task" in spec else []),
            *spec.get("sources", []),
            *spec.get("targets", []),
        ]
    return list(dict.fromkeys(tasks))


def table_files(name):
    return [TABLE.format(name=name + suffix) for suffix in TABLE_FORMATS]


def log_file(stage, name):
    return LOG.format(stage=stage, name=name)


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    task=r"[a-z0-9_]+",
    method="|".join(REGISTERED_METHODS),
    lr=r"[0-9][0-9.e+-]*",
    seed=r"[0-9]+",
    round=r"[0-9]+",
    variant=r"masking_s[0-9][0-9.e+-]*_b[0-9a-z,-]+",
    source=r"[a-z0-9_]+",


# --- training settings ------------------------------------------------------------------------------------

# the options a train job gets: generated from the run's settings (maskbench.settings.command_line), so that
# the job runs exactly the TrainConfig that expected_config builds; these come from wildcards and paths instead
# a run setting that the config leaves out has its default from maskbench.settings (the dataclasses)
SETTING_DEFAULTS = {option.name: option.default for option in options()}
RUN_ARGUMENTS = ("method", "task", "seed", "lr", "out", "prepared")


def training_settings(task):
    """The training keys of ``task``: ``training`` overridden by ``task_settings[task]``."""
    return {**config["training"], **config["task_settings"].get(task, {})}


def max_length(task):
    return training_settings(task).get("max_length", SETTING_DEFAULTS["max_length"])


def train_options(wildcards, output, mask_overrides=None, method=None):
    """The ``maskbench train`` options of a run besides method, task, seed, lr and paths: one list item per
    argument, for ``{params.options:q}`` (Snakemake quotes a list's items one by one).

    ``mask_overrides`` (initial_sparsity, blocks) replace the configured values: the analysis runs of Figs. 1/2.

    ``output`` is not used: a params function that takes ``input``, ``output``, ``threads`` or ``resources``
    is a *derived* param for Snakemake (``Rule._is_deriving_function``), and derived params are left out of its
    ``params`` rerun trigger (``Persistence._params`` compares ``job.non_derived_params``). Whether a finished
    run is the run asked for is decided by its settings (:func:`finished_run`), not by how a version of
    maskbench spells its command line (tests/test_shell_quoting.py checks that this param stays derived).
    """
    run = expected_config(wildcards, method or wildcards.method, mask_overrides)
    return command_line(run, exclude=RUN_ARGUMENTS)


def expected_config(wildcards, method, mask_overrides=None):
    """The TrainConfig of this run (what ``maskbench train`` builds from :func:`train_options`)."""
    model = config["models"][wildcards.model]
    return run_config(
        training_settings(wildcards.task),
        method=method,
        model=model["name"],
        task=wildcards.task,
        seed=int(wildcards.seed),
        lr=float(wildcards.lr),
        blocks=model.get("blocks"),
        mask_overrides=mask_overrides,
        save_weights=method == "finetuning" and (wildcards.model, wildcards.task) in weight_cells(),
        transfer=None if mask_overrides else transfer_settings(wildcards.model, wildcards.task),
    )


def transfer_settings(model, task):
    """The ``transfer*`` settings of a grid run that Table 3 scores on other tasks: the run scores itself on the
    targets and records it (maskbench.analysis.generalization), so the table needs no saved model of the run."""
    spec = ANALYSES.get("generalization")
    if not spec or spec["model"] != model or task not in spec["sources"]:
        return None
    return {
        "transfer": ",".join(spec["targets"]),
        "transfer_split": spec["split"],
        "transfer_prepared": str(Path(PREPARED.format(model=model, task=task)).parent),
    }


def finished_run(metrics_path, expected):
    """True when ``metrics_path`` holds a finished run with the settings of ``expected``.

    Such a run is a finished target whatever the age of its files or the code that made it (a committed run
    on a clean checkout, a run made before a refactoring). A finished run of other settings is refused.
    """
    path = Path(metrics_path)
    if not path.is_file():
        return False
    record = run_record(path)
    recorded = record["config"]
    if run_identity(recorded) != run_identity(expected.to_dict()):
        raise WorkflowError(
            f"{path} holds a finished run of other settings than this configuration asks for "
            f"(it was not made by this configuration, or the configuration changed); move or "
            f"delete its directory to train it again, or use another 'results_dir'"
        )
    # the data it read is part of its identity (maskbench.fingerprint): refused when the data changed
    changed = data_changes(path, record, expected.to_dict(), ENVIRONMENT.data_dir)
    if changed is not None:
        raise WorkflowError(
            f"{path} holds a finished run that {changed} move or delete its directory to train it again, "
            f"or use another 'results_dir'"
        )
    return True


def data_fingerprint(wildcards):
    """The fingerprint of a task's current files (null for hub data): a prepare job's params, so that a prepared
    cache made from other data is made again."""
    found = task_fingerprint(wildcards.task, ENVIRONMENT.data_dir, config["allow_partial_data"])
    return json.dumps(found, sort_keys=True)


def run_record(path):
    """The checked record of a finished run (maskbench.records). An invalid one (truncated, wrong shape, NaN
    score...) stops the workflow at planning: Snakemake takes an existing output for made and would neither retrain
    the run nor let anything read it safely, so the user deletes the run folder and the next invocation trains it."""
    try:
        return read_run_record(path)
    except RecordError as error:
        raise WorkflowError(f"{error} — delete {Path(path).parent} to train this run again") from None


def checked_selection_round(path):
    """A selection round's checked record (maskbench.records); an invalid one stops the workflow naming it."""
    try:
        return read_selection_round(path)
    except RecordError as error:
        raise WorkflowError(f"{error} — delete it to run this lr selection round again") from None


def train_inputs(wildcards, method=None, mask_overrides=None, pattern=None):
    """The prepared data and the download manifest, or nothing for a run that is already finished with the same
    settings."""
    method = method or wildcards.method
    metrics = (pattern or RUN_METRICS).format(**dict(wildcards.items()))
    if finished_run(metrics, expected_config(wildcards, method, mask_overrides)):
        return {}
    inputs = {"prepared": PREPARED.format(model=wildcards.model, task=wildcards.task), "downloaded": downloaded()}
    transfer = None if mask_overrides else transfer_settings(wildcards.model, wildcards.task)
    if transfer:  # the prepared data of the tasks the run scores itself on
        inputs["transfer"] = [
            PREPARED.format(model=wildcards.model, task=target) for target in transfer["transfer"].split(",")
        ]
    return inputs


def data_options(wildcards):
    """The data options of the download and prepare jobs: one list item per argument (``{params.data:q}``)."""
    options = []
    if ENVIRONMENT.data_dir_configured:  # the config's data_dir (absolute): the task's directory must be there
        options += ["--data-dir", str(ENVIRONMENT.data_dir)]
    if config["allow_partial_data"]:
        options.append("--allow-partial-data")
    return options


def data_setting(wildcards):
    """:func:`data_options` as one text, for the ``params`` rerun trigger of the prepare step (a changed data
    directory prepares again): the text earlier versions gave the command, so their prepared data is not made
    again (and the analyses that read it not rerun) only because the command now takes a list."""
    return shlex.join(data_options(wildcards))


def train_runtime(wildcards, attempt):
    resources = config["resources"]["train"]
    return resources["runtime_per_task"].get(wildcards.task, resources["runtime"]) * attempt


# --- learning-rate selection (checkpoint rounds) -------------------------------------------------------------


def run_files(pattern, wildcards, lrs, seeds=None):
    return [
        pattern.format(model=wildcards.model, task=wildcards.task, method=wildcards.method, lr=lr, seed=seed)
        for lr in lrs
        for seed in (SEEDS if seeds is None else seeds)
    ]


def selection_round(wildcards, index):
    """The output of selection round ``index`` of this (model, task, method); raises until it has run."""
    return checkpoints.select_lr.get(
        model=wildcards.model, task=wildcards.task, method=wildcards.method, round=str(index)
    ).output[0]


def round_grid(wildcards):
    """The grid of this round: the initial grid, or the previous round's grid plus the lr it proposed."""
    index = int(wildcards.round)
    if index == 0:
        return initial_grid(wildcards.method)
    previous = checked_selection_round(selection_round(wildcards, index - 1))
    if previous["next_lr"] is None:
        raise WorkflowError(
            f"selection round {index} of {wildcards.model}/{wildcards.task}/{wildcards.method} "
            f"was requested, but round {index - 1} is final"
        )
    return sorted([*previous["grid"], previous["next_lr"]], key=float)


def round_inputs(wildcards):
    inputs = {"runs": run_files(RUN_METRICS, wildcards, round_grid(wildcards), SELECTION_SEEDS)}
    if int(wildcards.round) > 0:
        inputs["previous"] = selection_round(wildcards, int(wildcards.round) - 1)
    return inputs


def final_selection(wildcards):
    """Walk the rounds until one is final (the cap on extensions guarantees one is)."""
    index = 0
    while True:
        path = selection_round(wildcards, index)
        if checked_selection_round(path)["final"]:
            return path
        index += 1


def chosen_lr(wildcards):
    return checked_selection_round(final_selection(wildcards))["best_lr"]


def chosen_runs(wildcards):
    """The metrics and predictions of every seed at the chosen lr."""
    lr = [chosen_lr(wildcards)]
    return {"runs": run_files(RUN_METRICS, wildcards, lr), "predictions": run_files(RUN_PREDICTIONS, wildcards, lr)}


# --- tables and figures -------------------------------------------------------------------------------------


def cell_files(pattern):
    """One file per (model, task, method), in the order maskbench.tables.Layout.cells() expects."""
    return [pattern.format(model=m, task=t, method=k) for m, t, k in CELLS]


def reference_files():
    """One file per (model, task), in the order maskbench.tables.Layout.pairs() expects."""
    return [REFERENCE.format(model=m, task=t) for m in MODELS for t in TASKS]


def serving_files():
    """One measured serving-memory record per model, in layout order (none without masking runs)."""
    return [SERVING.format(model=model) for model in MODELS] if "masking" in METHODS else []


def serving_runs():
    """Named inputs, one function per task: the masks served, each task's masking run (selected lr, first seed)."""
    return {
        task: lambda wildcards, task=task: chosen_run(wildcards.model, task, "masking", SEEDS[0])
        for task in MASKED_TASKS
    }


def table_layout():
    return LAYOUT.to_dict()


def final_targets():
    """Tables, figures, and every per-cell record; the runs come from :func:`run_targets`."""
    comparison = table_files("paper_comparison") if {"finetuning", "masking"} <= set(METHODS) else []
    return [
        *(path for name in TABLE_NAMES for path in table_files(name)),
        *comparison,
        TABLE.format(name="summary.csv"),
        FIGURE.format(name="fig3_memory.png"),
        FIGURE.format(name="fig3_memory.csv"),
        *cell_files(CHOSEN),
        *cell_files(AGGREGATE),
        *cell_files(ENSEMBLE),
        *cell_files(EVALUATION),
        *reference_files(),
    ]


def run_targets(wildcards):
    """Every selection round and every training run of the (possibly extended) grids.

    Snakemake only regenerates a deleted file when a target needs it, not when an up-to-date downstream file
    was made from it. Listing every stage's files as targets makes a deleted run (or record) come back on the
    next invocation, together with everything made from it.
    """
    files = []
    for model, task, method in CELLS:
        cell = SimpleNamespace(model=model, task=task, method=method)
        path, index = None, 0
        while True:
            path = selection_round(cell, index)
            files.append(path)
            selection = checked_selection_round(path)
            if selection["final"]:
                break
            index += 1
        files += run_files(RUN_METRICS, cell, selection["grid"], SELECTION_SEEDS)
        files += run_files(RUN_PREDICTIONS, cell, selection["grid"], SELECTION_SEEDS)
        files += run_files(RUN_METRICS, cell, [selection["best_lr"]])
        files += run_files(RUN_PREDICTIONS, cell, [selection["best_lr"]])
    return files


# --- analyses (workflow/rules/analysis.smk) ------------------------------------------------------------------
# Figs. 1 and 2 train masking runs of their own settings; a run whose settings equal a grid run's (same task,
# seed, lr in the initial grid, initial sparsity and blocks) is that grid run. Table 3 and Figs. 4-7 read the
# grid's runs at the selected lr, so their tasks must be in `tasks` with both methods and their seed in `seeds`.

ANALYSES = config["analyses"]
RUN_VARIANT = f"{RESULTS}/runs/{{model}}/{{task}}/{{variant}}/lr{{lr}}/seed{{seed}}"
ANALYSIS = f"{RESULTS}/analysis/{{name}}"
GENERALIZATION = f"{RESULTS}/analysis/generalization/{{model}}/{{method}}/{{source}}.json"
CONNECTIVITY = f"{RESULTS}/analysis/connectivity/{{model}}/{{task}}.json"
BEZIER = f"{RESULTS}/analysis/bezier/{{model}}/{{task}}.json"

# analysis -> what it writes (the user-facing names)
ANALYSIS_OUTPUTS = {
    "sparsity": ["figures/fig1_sparsity.png", "figures/fig1_sparsity.csv"],
    "layers": [
        "figures/fig2_layers.png",
        "figures/fig2_layers.csv",
        "tables/table7_layers.md",
        "tables/table7_layers.tex",
        "tables/table7_layers.csv",
        "tables/table7_layers.html",
    ],
    "generalization": [
        "tables/table3_generalization.md",
        "tables/table3_generalization.tex",
        "tables/table3_generalization.csv",
        "tables/table3_generalization.html",
    ],
    "tsne": ["figures/fig4_tsne.png", "figures/fig4_tsne.csv"],
    "mask_similarity": ["figures/fig5_mask_dissimilarity.png", "figures/fig5_mask_dissimilarity.csv"],
    "mode_connectivity": ["figures/fig6_mode_connectivity.png", "figures/fig6_mode_connectivity.csv"],
    "bezier": ["figures/fig7_bezier.png", "figures/fig7_bezier.csv"],
}


def analysis_tasks(analysis):
    spec = ANALYSES[analysis]
    return list(spec["tasks"]) if "tasks" in spec else [spec["task"]] if "task" in spec else list(spec["sources"])


def check_analyses():
    """Keys of `analyses` that refer to the rest of the configuration (the schema checks the rest)."""
    for name, spec in ANALYSES.items():
        where = f"invalid configuration at 'analyses.{name}"
        if spec["model"] not in config["models"]:
            raise WorkflowError(f"{where}.model': {spec['model']!r} is not a key of 'models' ({MODELS})")
        if name in ("sparsity", "layers"):
            continue
        missing = [task for task in analysis_tasks(name) if task not in TASKS]
        if missing:
            raise WorkflowError(
                f"{where}': task(s) {missing} must be in 'tasks' (the analysis reads the grid's "
                f"runs at the selected lr)"
            )
        needed = ["masking"] if name == "mask_similarity" else ["finetuning", "masking"]
        if name == "generalization":
            needed = [m for m in METHODS if all(LAYOUT.runs(task, m) for task in analysis_tasks(name))]
        if any(method not in METHODS for method in needed):
            raise WorkflowError(f"{where}': needs the methods {needed} in 'methods'")
        not_run = [(task, m) for task in analysis_tasks(name) for m in needed if not LAYOUT.runs(task, m)]
        if not_run:
            raise WorkflowError(f"{where}': needs runs of {not_run} (task, method), left out by 'method_tasks'")
        if "seed" in spec and spec["seed"] not in SEEDS:
            raise WorkflowError(f"{where}.seed': {spec['seed']} is not in 'seeds' {SEEDS}")
        if name == "mask_similarity" and len(spec["tasks"]) < 2:
            raise WorkflowError(f"{where}.tasks': needs at least two tasks to compare")


check_analyses()


def weight_cells():
    """(model, task) whose finetuning runs save their weights: the analyses rebuild those models."""
    cells = set()
    for name in ("generalization", "tsne", "mode_connectivity", "bezier"):
        if name in ANALYSES:
            cells.update((ANALYSES[name]["model"], task) for task in analysis_tasks(name))
    return cells


def variant_name(initial_sparsity, blocks):
    return f"masking_s{format_lr(initial_sparsity)}_b{blocks}"


def variant_overrides(variant):
    """The mask settings a variant directory name stands for (inverse of variant_name)."""
    sparsity, blocks = variant[len("masking_s") :].split("_b", 1)
    return {"initial_sparsity": sparsity, "blocks": blocks}


def check_finished_runs():
    """Refuse, before any job is planned, a finished run under ``results_dir`` that this configuration would use
    at its path but that holds other settings (:func:`finished_run`).

    The train jobs' input functions check this too, but Snakemake drops a producer job whose input function fails
    when the file it would make exists: with a selection older than its runs (a fresh checkout's modification
    times) such a run would be read as a plain input file, i.e. reused silently under the changed settings.
    """
    root = Path(RESULTS) / "runs"
    variant_tasks = {  # (model, task) where the analyses train mask variants (Figs. 1 and 2)
        (ANALYSES[name]["model"], task)
        for name in ("sparsity", "layers")
        if name in ANALYSES
        for task in analysis_tasks(name)
    }
    for metrics in sorted(root.glob("*/*/*/lr*/seed*/metrics.json")):
        model, task, method, lr, seed = metrics.parent.relative_to(root).parts
        wildcards = SimpleNamespace(model=model, task=task, lr=lr[len("lr") :], seed=seed[len("seed") :])
        try:
            float(wildcards.lr), int(wildcards.seed)
        except ValueError:
            continue  # not a path this workflow makes
        if model not in config["models"]:
            continue
        if method in METHODS and task in TASKS and LAYOUT.runs(task, method):
            finished_run(metrics, expected_config(wildcards, method))
        elif method.startswith("masking_s") and "_b" in method and (model, task) in variant_tasks:
            finished_run(metrics, expected_config(wildcards, "masking", variant_overrides(method)))


check_finished_runs()


def sweep_run(model, task, initial_sparsity, blocks, lr, seed):
    """metrics.json of a masking run with these mask settings: the grid's own run where the settings match."""
    lr = format_lr(lr)
    configured = training_settings(task).get("initial_sparsity", SETTING_DEFAULTS["initial_sparsity"])
    if (
        task in TASKS
        and "masking" in METHODS
        and seed in SEEDS
        and lr in initial_grid("masking")
        and float(initial_sparsity) == float(configured)
        and blocks == config["models"][model].get("blocks")
    ):
        return RUN_METRICS.format(model=model, task=task, method="masking", lr=lr, seed=seed)
    return f"{RUN_VARIANT}/metrics.json".format(
        model=model, task=task, lr=lr, seed=seed, variant=variant_name(initial_sparsity, blocks)
    )


def sparsity_runs(wildcards):
    spec = ANALYSES["sparsity"]
    return [
        sweep_run(spec["model"], task, sparsity, spec["blocks"], spec["lr"], seed)
        for task in spec["tasks"]
        for sparsity in spec["initial_sparsities"]
        for seed in spec["seeds"]
    ]


def layer_runs(wildcards):
    spec = ANALYSES["layers"]
    return [
        sweep_run(spec["model"], task, sparsity, blocks, spec["lr"], seed)
        for task in spec["tasks"]
        for blocks in spec["block_sets"]
        for sparsity in spec["initial_sparsities"]
        for seed in spec["seeds"]
    ]


def chosen_run(model, task, method, seed):
    """metrics.json of the grid's run at the selected lr (known once that cell's lr selection has run)."""
    cell = SimpleNamespace(model=model, task=task, method=method)
    return RUN_METRICS.format(model=model, task=task, method=method, lr=chosen_lr(cell), seed=seed)


def step_arguments(**arguments):
    """The keyword arguments of a ``maskbench step`` job as one JSON object (paths as text)."""
    return json.dumps(arguments, default=str)


def named_input(input, name, many=False):
    """A named input's path (``many``: paths) for a step's arguments; empty while a selection checkpoint has yet
    to name it (the job is made again, with its arguments, once the checkpoint is done)."""
    value = getattr(input, name, None)
    if value is None:
        return [] if many else ""
    return [str(path) for path in value] if many else str(value)


def model_name(wildcards):
    """The hub id or local path of the wildcards' model."""
    return config["models"][wildcards.model]["name"]


def generalization_targets(wildcards):
    """Table 3's target tasks of a source: how each is scored, and its prepared data."""
    return {
        target: {**eval_target(target), "prepared": PREPARED.format(model=wildcards.model, task=target)}
        for target in ANALYSES["generalization"]["targets"]
    }


def bezier_options():
    """Fig. 7's curve settings given in the config (the others: maskbench.analysis.connectivity's defaults)."""
    keys = ("bends", "epochs", "lr", "batch_size", "max_train_examples", "points")
    return {key: ANALYSES["bezier"][key] for key in keys if key in ANALYSES["bezier"]}


def eval_target(task):
    """How an analysis scores a model on ``task``: the prepared data and the fixed subset the runs are scored on."""
    return {"max_length": max_length(task), "limit": training_settings(task).get("max_eval_examples")}


def generalization_inputs(wildcards):
    """The source's runs at the chosen lr; the targets' prepared data only when a run has not recorded its own
    scores on them (it is then scored from its saved model): finished runs need no data preparation."""
    spec = ANALYSES["generalization"]
    runs = [chosen_run(wildcards.model, wildcards.source, wildcards.method, seed) for seed in SEEDS]
    if all(transfer_recorded(run) for run in runs):
        return {"runs": runs}
    return {
        "runs": runs,
        "prepared": [PREPARED.format(model=wildcards.model, task=target) for target in spec["targets"]],
        "downloaded": downloaded(),
    }


def transfer_recorded(metrics_path):
    """Whether the run at ``metrics_path`` is finished and recorded its scores on every target of Table 3, made
    as the table asks (split, max length, subset)."""
    if not Path(metrics_path).is_file():
        return False
    record = run_record(metrics_path)
    spec = ANALYSES["generalization"]
    return all(
        recorded_transfer(record, target, spec["split"], **eval_target(target)) is not None
        for target in spec["targets"]
    )


def generalization_files():
    spec = ANALYSES["generalization"]
    return [
        GENERALIZATION.format(model=spec["model"], method=method, source=source)
        for method in METHODS
        for source in spec["sources"]
        if LAYOUT.runs(source, method)
    ]


# Input functions that read a selection checkpoint name one (model, task, method) cell each: Snakemake then
# schedules the lr selections of all cells an analysis needs at once, instead of discovering them one by one.


def _analysis_task(analysis, wildcards):
    return getattr(wildcards, "task", None) or ANALYSES[analysis]["task"]


def pair_run(analysis, method):
    """Input function: the ``method`` run of the analysis's task (selected lr, the analysis's seed)."""
    return lambda wildcards: chosen_run(
        ANALYSES[analysis]["model"], _analysis_task(analysis, wildcards), method, ANALYSES[analysis]["seed"]
    )


def analysis_prepared(analysis):
    return lambda wildcards: PREPARED.format(
        model=ANALYSES[analysis]["model"], task=_analysis_task(analysis, wildcards)
    )


def mask_similarity_runs():
    """Named inputs, one function per task: the masking runs (selected lr, the analysis's seed)."""
    if "mask_similarity" not in ANALYSES:
        return {}
    spec = ANALYSES["mask_similarity"]
    return {
        task: lambda wildcards, task=task: chosen_run(spec["model"], task, "masking", spec["seed"])
        for task in spec["tasks"]
    }


def analysis_resources(key, attempt=1):
    """A resource of the analysis steps that load models; memory and runtime grow with the attempt."""
    value = config["resources"]["analysis"][key]  # the schema's defaults fill in what the config leaves out
    return value * attempt if key in ("mem_mb", "runtime") else value


def analysis_targets():
    return [f"{RESULTS}/{path}" for name in ANALYSES for path in ANALYSIS_OUTPUTS[name]]
