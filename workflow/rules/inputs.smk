# The input functions of the stage rules (train, select, serving, tables, analysis): what each rule reads, from
# the configuration and the lr-selection checkpoints. Functions only: Snakemake's linter wants rules and functions
# in separate files (common.smk holds the paths, wildcards and shared settings they use).


def logged_step(log, function, *args, **kwargs):
    """Run a light library step of a ``run:`` rule (in the main process) and write to the rule's log what ran."""
    function(*args, **kwargs)
    Path(log[0]).write_text(f"{function.__module__}.{function.__qualname__}: done\n")


# --- train (train.smk) ------------------------------------------------------------------------------------------


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


# --- select (select.smk) ----------------------------------------------------------------------------------------


def run_files(pattern, cell, lrs, seeds=None):
    seeds = SEEDS if seeds is None else seeds
    return [
        pattern.format(model=cell.model, task=cell.task, method=cell.method, lr=lr, seed=seed)
        for lr in lrs
        for seed in seeds
    ]


def selection_round(cell, index):
    """Selection round ``index`` of this (model, task, method), checked (maskbench.records); raises until it ran."""
    path = checkpoints.select_lr.get(model=cell.model, task=cell.task, method=cell.method, round=str(index)).output[0]
    return path, planned(read_selection_round, path)


def round_inputs(wildcards):
    index = int(wildcards.round)
    previous = selection_round(wildcards, index - 1) if index > 0 else None
    grid = planned(next_round_grid, config["lr_grid"][wildcards.method], previous and previous[1])
    inputs = {"runs": run_files(RUN_METRICS, wildcards, grid, SELECTION_SEEDS)}
    return {**inputs, "previous": previous[0]} if previous else inputs


def selection_rounds(cell):
    """The rounds of a cell until the final one (the cap on extensions guarantees one): [(path, record), ...]."""
    rounds = [selection_round(cell, 0)]
    while not rounds[-1][1]["final"]:
        rounds.append(selection_round(cell, len(rounds)))
    return rounds


def final_selection(wildcards):
    return selection_rounds(wildcards)[-1][0]


def chosen_lr(cell):
    return selection_rounds(cell)[-1][1]["best_lr"]


def chosen_runs(wildcards):
    """The metrics and predictions of every seed at the chosen lr."""
    lr = [chosen_lr(wildcards)]
    return {"runs": run_files(RUN_METRICS, wildcards, lr), "predictions": run_files(RUN_PREDICTIONS, wildcards, lr)}


def chosen_run(model, task, method, seed):
    """metrics.json of the grid's run at the selected lr (known once that cell's lr selection has run)."""
    cell = SimpleNamespace(model=model, task=task, method=method)
    return RUN_METRICS.format(model=model, task=task, method=method, lr=chosen_lr(cell), seed=seed)


def run_targets(wildcards):
    """Every selection round and every training run of the (possibly extended) grids: a deleted run (or record)
    comes back on the next invocation, with everything made from it (Snakemake regenerates only targets' inputs)."""
    files = []
    for model, task, method in CELLS:
        cell = SimpleNamespace(model=model, task=task, method=method)
        rounds = selection_rounds(cell)
        files += [path for path, _ in rounds]
        selection = rounds[-1][1]
        for pattern in (RUN_METRICS, RUN_PREDICTIONS):
            files += run_files(pattern, cell, selection["grid"], SELECTION_SEEDS)
        for pattern in (RUN_METRICS, RUN_PREDICTIONS):
            files += run_files(pattern, cell, [selection["best_lr"]])
    return files


# --- serving (serving.smk) --------------------------------------------------------------------------------------


def serving_runs():
    """Named inputs, one function per task: the masks served, each task's masking run (selected lr, first seed)."""
    return {
        task: lambda wildcards, task=task: chosen_run(wildcards.model, task, "masking", SEEDS[0])
        for task in MASKED_TASKS
    }


# --- tables (tables.smk) ----------------------------------------------------------------------------------------


#: the figure CSV of each analysis with one data file (maskbench.results.tables.ANALYSIS_KINDS), by analysis key
ANALYSIS_FIGURES = {
    "sparsity": "fig1_sparsity.csv",
    "layers": "fig2_layers.csv",
    "tsne": "fig4_tsne.csv",
    "mask_similarity": "fig5_mask_dissimilarity.csv",
    "mode_connectivity": "fig6_mode_connectivity.csv",
    "bezier": "fig7_bezier.csv",
}


def analysis_data_files():
    """The analyses' data files a table may read, by kind (maskbench.results.tables.ANALYSIS_KINDS): none for an
    analysis the configuration does not run."""
    figures = {kind: [FIGURE.format(name=name)] if kind in ANALYSES else [] for kind, name in ANALYSIS_FIGURES.items()}
    return {
        "memory": [FIGURE.format(name="fig3_memory.csv")],
        **figures,
        "generalization": generalization_files() if "generalization" in ANALYSES else [],
    }


def table_inputs(wildcards):
    """The files a registered table reads, by kind (maskbench.results.tables.RECORD_KINDS and ANALYSIS_KINDS)."""
    files = {"choices": CHOSEN, "aggregates": AGGREGATE, "ensembles": ENSEMBLE, "evaluations": EVALUATION}
    files = {kind: cell_files(pattern) for kind, pattern in files.items()}
    files.update(references=reference_files(), serving=serving_files(), **analysis_data_files())
    return {kind: files[kind] for kind in TABLES[wildcards.name].inputs}


# every table of maskbench.results.tables.TABLES (table1_dev, table2_test, ..., paper_comparison): what it reads, how it is
# built and its report caption come from its TableSpec (CONTRIBUTING.md: "Add a table")


# --- analysis (analysis.smk) ------------------------------------------------------------------------------------


def sweep_run(model, task, initial_sparsity, blocks, lr, seed):
    """metrics.json of a masking run with these mask settings: the grid's own run where the settings match."""
    lr = format_lr(lr)
    configured = training_settings(task).get("initial_sparsity", SETTING_DEFAULTS["initial_sparsity"])
    if (
        task in TASKS
        and "masking" in METHODS
        and seed in SEEDS
        and lr in sorted_grid(config["lr_grid"]["masking"])
        and float(initial_sparsity) == float(configured)
        and blocks == config["models"][model].get("blocks")
    ):
        return RUN_METRICS.format(model=model, task=task, method="masking", lr=lr, seed=seed)
    return f"{RUN_VARIANT}/metrics.json".format(
        model=model, task=task, lr=lr, seed=seed, variant=plan.variant_name(initial_sparsity, blocks)
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


def generalization_inputs(wildcards):
    """The source's runs at the chosen lr; when a run has not recorded its own scores on every target (it is then
    scored from its saved model, and the step adds the scores to its record: maskbench.records.add_transfer_scores),
    also the targets' prepared data and the artefacts to rebuild first
    (:func:`missing_artefacts`). A record that already scored these targets is not remade for lack of models (a
    committed Table 3 on a fresh checkout): its runs are then ``ancient`` inputs."""
    spec = ANALYSES["generalization"]
    output = GENERALIZATION.format(model=wildcards.model, method=wildcards.method, source=wildcards.source)
    planned(plan.check_generalization_record, output, spec["targets"], spec["split"])  # of other targets: refused
    runs = [chosen_run(wildcards.model, wildcards.source, wildcards.method, seed) for seed in SEEDS]
    unrecorded = [run for run in runs if not transfer_recorded(run)]
    if not unrecorded:
        return {"runs": runs}
    missing = missing_artefacts(*unrecorded)
    if missing and Path(output).is_file():  # it covers these targets (checked above)
        return {"runs": [ancient(run) for run in runs]}
    return {
        "runs": runs,
        "prepared": [PREPARED.format(model=wildcards.model, task=target) for target in spec["targets"]],
        "downloaded": downloaded(),
        "artefacts": missing,
    }


def transfer_recorded(metrics_path):
    """Whether the run at ``metrics_path`` is finished and recorded its scores on every target of Table 3, made
    as the table asks (split, max length, subset)."""
    if not Path(metrics_path).is_file():
        return False
    record = planned(plan.checked_run_record, metrics_path)
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


def missing_artefacts(*runs):
    """The artefact folders (masks, adapter, ``model/`` weights) that finished runs among ``runs`` (metrics.json
    paths) lack — a committed record keeps none; the ``rebuild`` rule retrains them and checks the record — and
    nothing for a run still to be trained (training writes its artefact)."""
    folders = []
    for metrics in runs:
        if metrics and Path(metrics).is_file():
            from maskbench.training.rebuild import artefact_folder  # the method's implementation (torch)

            folder = Path(metrics).parent / artefact_folder(Path(metrics).parent.parent.parent.name)
            if not folder.is_dir():
                folders.append(str(folder))
    return folders


def model_analysis_inputs(analysis, output):
    """Input function of an analysis that loads the finetuned and the masked model of a task (Figs. 4, 6, 7): the two
    runs' records (``finetuned``, ``masked``), the task's prepared data and the artefacts to rebuild first
    (:func:`missing_artefacts`). An analysis whose output (``output(wildcards)``) exists while its runs' artefacts
    do not — a committed analysis on a fresh checkout — is not remade for that: its inputs are then only the two
    records, ``ancient`` (delete the output to remake it, models rebuilt)."""

    def inputs(wildcards):
        runs = {
            "finetuned": pair_run(analysis, "finetuning")(wildcards),
            "masked": pair_run(analysis, "masking")(wildcards),
        }
        missing = missing_artefacts(*runs.values())
        if missing and Path(output(wildcards)).is_file():
            return {name: ancient(path) for name, path in runs.items()}
        prepared = analysis_prepared(analysis)(wildcards)
        return {**runs, "prepared": prepared, "downloaded": downloaded(), "artefacts": missing}

    return inputs


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
