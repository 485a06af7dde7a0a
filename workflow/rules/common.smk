# Configuration check, result paths (defined here and nowhere else), wildcard constraints, and the input
# functions that turn the configuration and the lr-selection checkpoints into file lists.
#
# Planning must stay fast and offline (the paper's grid plans ~1,700 jobs in seconds): nothing here loads a
# model or parses data (the task files are only checksummed, maskbench.data.fingerprint: ~0.2 s for all of them), and
# only maskbench's torch-free modules are imported (maskbench.training.settings, .locations, .fingerprint, .records).

import json
import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from maskbench.results import plan
from maskbench.io.errors import MaskbenchError, SettingError
from maskbench.data.fingerprint import task_fingerprint
from maskbench.io.locations import check_path_settings, restore_offline_arguments, workflow_environment
from maskbench.io.locks import hold_results_dir
from maskbench.records import read_selection_round
from maskbench.results.selection import format_lr, round_grid as next_round_grid, sorted_grid
from maskbench.training.settings import (
    METHODS as REGISTERED_METHODS,
    command_line,
    options,
    recorded_transfer,
    run_config,
)
from maskbench.results.tables import Layout, registered_tables

# --- configuration ----------------------------------------------------------------------------------------


def planned(check, *args, **kwargs):
    """A library check or reading (maskbench.results.plan, .records ...): its error is the workflow's one-line error."""
    try:
        return check(*args, **kwargs)
    except SettingError as error:
        files = ", ".join(map(str, workflow.config_settings.configfiles)) or "config.yaml"
        raise WorkflowError(f"invalid configuration at '{error.key}' ({files}): {error.problem}") from None
    except MaskbenchError as error:
        raise WorkflowError(str(error)) from None


try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as wrapped:
    # validate() formats the jsonschema error into its message; the error itself is the context
    if not isinstance(wrapped.__context__, jsonschema.ValidationError):
        raise
    files = ", ".join(map(str, workflow.config_settings.configfiles)) or "config.yaml"
    raise WorkflowError(plan.schema_error_message(wrapped.__context__, files)) from None
# paths: no control characters, `~` expanded here for Snakemake and the jobs alike, results_dir not the filesystem
# root, the home directory or this checkout (maskbench.io.locations); lr grids and seeds that fit together
config.update(planned(check_path_settings, config, Path.cwd(), Path(workflow.basedir)))
planned(plan.check_grid, config)

RESULTS = config["results_dir"]  # `~` expanded (check_path_settings)
# one workflow per results_dir (maskbench.io.locks): a run's main process holds it for its lifetime, before anything
# is planned; its jobs get its token (environment), a second workflow or a standalone maskbench writer is refused
if workflow.is_main_process and not workflow.output_settings.dryrun:
    planned(hold_results_dir, RESULTS)
MODELS = list(config["models"])
TASKS = list(config["tasks"])
METHODS = list(config["methods"])
SEEDS = list(config["seeds"])
# the seeds whose runs choose the lr (all by default); the other seeds run at the chosen lr only
SELECTION_SEEDS = list(config.get("selection_seeds") or SEEDS)
# the (model, task, method) cells of the grid, in table order (a method may run on some tasks only)
LAYOUT = Layout.from_config(config)
CELLS = LAYOUT.cells()
MASKED_TASKS = [task for task in TASKS if "masking" in METHODS and LAYOUT.runs(task, "masking")]
ANALYSES = config["analyses"]
planned(plan.check_analyses, config, LAYOUT.runs)
TABLES = registered_tables()  # maskbench.results.tables: name -> what the `table` rule reads and renders


# --- where task files, models and caches are ----------------------------------------------------------------
# Resolved once, by the main process: a relative `data_dir`, `cache_dir` or $MASKBENCH_DATA_DIR is taken relative
# to the directory Snakemake was launched from (maskbench.io.locations.workflow_environment). Shell jobs get the
# absolute paths and the hub switched off from the shell prefix (Snakefile); the main process puts the shared
# variables into its environment when it starts running jobs (Snakefile: onstart), so that cluster jobs, which
# inherit it (sbatch --export=ALL) and re-read this file, resolve the same paths. Planning changes no environment.

# the launching shell's hub switches, for the download stage (the arguments of an `env` command)
DOWNLOAD_HUB_SETTINGS = restore_offline_arguments(os.environ)
ENVIRONMENT = workflow_environment(
    config["data_dir"],
    config["cache_dir"],
    os.environ,
    Path.cwd(),
    main_process=workflow.is_main_process,
    directory_given=workflow.overwrite_workdir is not None,
)
if workflow.remote_exec:  # one line in each cluster job's log: where it reads from
    print(ENVIRONMENT.describe_job(), file=sys.stderr)


# --- result paths -----------------------------------------------------------------------------------------
# Every file the workflow writes, in one place. Layout: results/<stage>/<model>/<task>/...

DOWNLOAD_MANIFEST = f"{RESULTS}/download/manifest.json"
PREPARED = f"{RESULTS}/prepared/{{model}}/{{task}}"
RUN = f"{RESULTS}/runs/{{model}}/{{task}}/{{method}}/lr{{lr}}/seed{{seed}}"
RUN_METRICS = f"{RUN}/metrics.json"
RUN_PREDICTIONS = f"{RUN}/predictions.safetensors"
RUN_VARIANT = f"{RESULTS}/runs/{{model}}/{{task}}/{{variant}}/lr{{lr}}/seed{{seed}}"  # Figs. 1/2's masking runs
SELECTION_ROUND = f"{RESULTS}/selection/{{model}}/{{task}}/{{method}}/round{{round}}.json"
CHOSEN = f"{RESULTS}/selection/{{model}}/{{task}}/{{method}}/chosen.json"
AGGREGATE = f"{RESULTS}/aggregate/{{model}}/{{task}}/{{method}}.json"
ENSEMBLE = f"{RESULTS}/ensembles/{{model}}/{{task}}/{{method}}.json"
EVALUATION = f"{RESULTS}/evaluation/{{model}}/{{task}}/{{method}}.json"
REFERENCE = f"{RESULTS}/artefacts/{{model}}/{{task}}/reference_sizes.json"
SERVING = f"{RESULTS}/artefacts/{{model}}/serving_memory.json"
TABLE = f"{RESULTS}/tables/{{name}}"  # .md, .tex, .csv and .html (the page `snakemake --report` shows)
FIGURE = f"{RESULTS}/figures/{{name}}"
GENERALIZATION = f"{RESULTS}/analysis/generalization/{{model}}/{{method}}/{{source}}.json"
CONNECTIVITY = f"{RESULTS}/analysis/connectivity/{{model}}/{{task}}.json"
BEZIER = f"{RESULTS}/analysis/bezier/{{model}}/{{task}}.json"
LOG = f"{RESULTS}/logs/{{stage}}/{{name}}.log"
BENCHMARK = f"{RESULTS}/logs/{{stage}}/{{name}}.benchmark.tsv"  # wall and CPU seconds, peak memory of a job


def downloaded():
    """Input of every step that loads a pretrained model or task data: the download stage ran first. Its age does
    not count (ancient): re-fetching, e.g. for a model added to the config, does not redo what was made before."""
    return ancient(DOWNLOAD_MANIFEST)


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


# --- run settings (each stage's own input functions are at the top of its rule file) ----------------------
SETTING_DEFAULTS = {option.name: option.default for option in options()}


def training_settings(task):
    """The training keys of ``task``: ``training`` overridden by ``task_settings[task]``."""
    return {**config["training"], **config["task_settings"].get(task, {})}


def eval_target(task):
    """How an analysis scores a model on ``task``: the max length and the fixed subset the runs are scored on."""
    settings = training_settings(task)
    return {
        "max_length": settings.get("max_length", SETTING_DEFAULTS["max_length"]),
        "limit": settings.get("max_eval_examples"),
    }


def data_fingerprint(wildcards):
    """The fingerprint of a task's current files (null for hub data), a prepare job's params: a prepared cache made
    from other data is made again."""
    return json.dumps(
        task_fingerprint(wildcards.task, ENVIRONMENT.data_dir, config["allow_partial_data"]), sort_keys=True
    )


def data_options(wildcards):
    """The data options of the download and prepare jobs: one list item per argument (``{params.data:q}``)."""
    options = ["--data-dir", str(ENVIRONMENT.data_dir)] if ENVIRONMENT.data_dir_configured else []
    return options + (["--allow-partial-data"] if config["allow_partial_data"] else [])


def data_setting(wildcards):
    """:func:`data_options` as the one text earlier versions gave the command: the prepare step's params trigger."""
    return shlex.join(data_options(wildcards))


# --- tables and figures (maskbench.results.tables.TABLES) and the targets -------------------------------------------


def cell_files(pattern):
    """One file per (model, task, method), in the order maskbench.results.tables.Layout.cells() expects."""
    return [pattern.format(model=m, task=t, method=k) for m, t, k in CELLS]


def reference_files():
    """One file per (model, task), in the order maskbench.results.tables.Layout.pairs() expects."""
    return [REFERENCE.format(model=m, task=t) for m in MODELS for t in TASKS]


def serving_files():
    """One measured serving-memory record per model, in layout order (none without masking runs)."""
    return [SERVING.format(model=model) for model in MODELS] if "masking" in METHODS else []


def final_targets():
    """Tables, figures, and every per-cell record; the runs come from :func:`run_targets`."""
    shown = [name for name, spec in TABLES.items() if spec.shown(LAYOUT)]
    return [
        *(TABLE.format(name=name + suffix) for name in shown for suffix in (".md", ".tex", ".csv", ".html")),
        TABLE.format(name="summary.csv"),
        FIGURE.format(name="fig3_memory.png"),
        FIGURE.format(name="fig3_memory.csv"),
        FIGURE.format(name="dev_vs_bytes.png"),
        FIGURE.format(name="dev_vs_bytes.csv"),
        *(path for pattern in (CHOSEN, AGGREGATE, ENSEMBLE, EVALUATION) for path in cell_files(pattern)),
        *reference_files(),
    ]


def analysis_targets():
    """The analyses' figures and tables, and their per-cell records (Table 3's per method and source, Figs. 6/7's
    per task): a record deleted, or added by the configuration (a new Table 3 source), is made on the next
    invocation even while the table or figure made from it is still there (Snakemake plans a missing intermediate
    file only for a job that runs, or for a target)."""
    records = []
    if "generalization" in ANALYSES:
        records += generalization_files()
    for name, pattern in (("mode_connectivity", CONNECTIVITY), ("bezier", BEZIER)):
        if name in ANALYSES:
            spec = ANALYSES[name]
            records += [pattern.format(model=spec["model"], task=task) for task in spec["tasks"]]
    return [f"{RESULTS}/{path}" for path in plan.analysis_outputs(ANALYSES)] + records


# --- heavy steps: `maskbench step NAME ARGUMENTS` (maskbench.cli.STEPS) -------------------------------------


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


def analysis_resources(key, attempt=1):
    """A resource of the steps that load models; memory and runtime grow with the attempt."""
    value = config["resources"]["analysis"][key]  # the schema's defaults fill in what the config leaves out
    return value * attempt if key in ("mem_mb", "runtime") else value
