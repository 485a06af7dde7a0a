# Stage 2: one training run per (model, task, method, lr, seed). The run directory also holds the masks
# (masking) next to the two declared outputs; metrics.json is written last, so it marks a finished run.
# A train job's options are generated from the run's settings (maskbench.training.settings.command_line): the job runs
# exactly the TrainConfig that expected_config builds; these come from wildcards and paths instead.
from maskbench.training.method_registry import method_info

RUN_ARGUMENTS = ("method", "task", "seed", "lr", "out", "prepared")


def train_options(wildcards, output, mask_overrides=None, method=None):
    """The ``maskbench train`` options besides method, task, seed, lr and paths, one list item per argument
    (``{params.options:q}``). ``mask_overrides``: Figs. 1/2's mask settings. ``output`` is unused: it makes this
    a *derived* param, left out of Snakemake's params rerun trigger; whether a finished run is the run asked for
    is decided by its settings (finished_run), not by its command line (tests/test_shell_quoting.py)."""
    return command_line(expected_config(wildcards, method or wildcards.method, mask_overrides), RUN_ARGUMENTS)


def expected_config(wildcards, method, mask_overrides=None):
    """The TrainConfig of this run (what ``maskbench train`` builds from :func:`train_options`)."""
    model, transfer = config["models"][wildcards.model], None
    spec = ANALYSES.get("generalization")  # Table 3 sources score themselves on its targets while training
    if not mask_overrides and spec and spec["model"] == wildcards.model and wildcards.task in spec["sources"]:
        prepared = str(Path(PREPARED.format(model=wildcards.model, task=wildcards.task)).parent)
        transfer = {"transfer": ",".join(spec["targets"]), "transfer_split": spec["split"],
                    "transfer_prepared": prepared}  # fmt: skip
    return run_config(
        training_settings(wildcards.task),
        method=method,
        model=model["name"],
        task=wildcards.task,
        seed=int(wildcards.seed),
        lr=float(wildcards.lr),
        blocks=model.get("blocks"),
        mask_overrides=mask_overrides,
        save_weights=method_info(method).full_weights
        and (wildcards.model, wildcards.task) in plan.weight_cells(ANALYSES),
        transfer=transfer,
    )


def finished_run(metrics, expected):
    """Whether ``metrics`` holds a finished run of ``expected``'s settings; other settings or data are refused."""
    return planned(plan.finished_run, metrics, expected.to_dict(), ENVIRONMENT.data_dir)


def train_inputs(wildcards, method=None, mask_overrides=None, pattern=None):
    """The prepared data and the download manifest (and Table 3's targets' data for its sources), or nothing for a
    run that is already finished with the same settings."""
    run = expected_config(wildcards, method or wildcards.method, mask_overrides)
    if finished_run((pattern or RUN_METRICS).format(**dict(wildcards.items())), run):
        return {}
    inputs = {"prepared": PREPARED.format(model=wildcards.model, task=wildcards.task), "downloaded": downloaded()}
    if run.transfer:
        inputs["transfer"] = [PREPARED.format(model=wildcards.model, task=t) for t in run.transfer.split(",")]
    return inputs


def variant_inputs(wildcards):
    return train_inputs(wildcards, "masking", plan.variant_overrides(wildcards.variant), f"{RUN_VARIANT}/metrics.json")


def variant_options(wildcards, output):
    return train_options(wildcards, output, plan.variant_overrides(wildcards.variant), "masking")


# Refuse, before any job is planned, a finished run under results_dir that this configuration would use at its path
# but that holds other settings: Snakemake drops a producer job whose input function fails when the file it would
# make exists, so with a selection older than its runs (a fresh checkout) such a run would be reused silently.
for _metrics, _run in plan.finished_runs(RESULTS):
    if _run["model"] not in config["models"]:
        continue
    _wildcards = SimpleNamespace(**_run)
    if _run["method"] in METHODS and _run["task"] in TASKS and LAYOUT.runs(_run["task"], _run["method"]):
        finished_run(_metrics, expected_config(_wildcards, _run["method"]))
    elif plan.is_variant(_run["method"]) and (_run["model"], _run["task"]) in plan.sweep_cells(ANALYSES):
        finished_run(_metrics, expected_config(_wildcards, "masking", plan.variant_overrides(_run["method"])))


def train_runtime(wildcards, attempt):
    resources = config["resources"]["train"]
    return resources["runtime_per_task"].get(wildcards.task, resources["runtime"]) * attempt


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics=RUN_METRICS,
        predictions=RUN_PREDICTIONS,
    log:
        log_file("train", "{model}/{task}/{method}/lr{lr}_seed{seed}"),
    benchmark:
        BENCHMARK.format(stage="train", name="{model}/{task}/{method}/lr{lr}_seed{seed}")
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: config["resources"]["train"]["threads"]
    resources:
        gpu=config["resources"]["train"]["gpu"],
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=train_runtime,
    params:
        method=lambda wildcards, output: wildcards.method,  # derived (takes output): not a rerun trigger
        options=train_options,  # a list of arguments, left out of the params trigger (train_options)
        run_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        prepared=lambda wildcards: PREPARED.format(model=wildcards.model, task=wildcards.task),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench train "
        "--method {params.method:q} --task {wildcards.task:q} --seed {wildcards.seed:q} --lr {wildcards.lr:q} "
        "--prepared {params.prepared:q} {params.options:q} --out {params.run_dir:q} > {log:q} 2>&1"
