# Stage 8: the paper's analyses (maskbench.analysis), each present in the config's `analyses:` a target.
# Figs. 1/2 add masking runs of their own settings (train_analysis; grid runs are reused where they match);
# Table 3 and Figs. 4-7 read the grid's runs at the selected lr. Paths: workflow/rules/common.smk.


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


use rule train as train_analysis with:
    input:
        unpack(variant_inputs),
    output:
        metrics=f"{RUN_VARIANT}/metrics.json",
        predictions=f"{RUN_VARIANT}/predictions.safetensors",
    log:
        log_file("train", "{model}/{task}/{variant}/lr{lr}_seed{seed}"),
    benchmark:
        BENCHMARK.format(stage="train", name="{model}/{task}/{variant}/lr{lr}_seed{seed}")
    params:
        method=lambda wildcards, output: "masking",
        options=variant_options,  # a list of arguments, left out of the params trigger (train.smk: train_options)
        run_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        prepared=lambda wildcards: PREPARED.format(model=wildcards.model, task=wildcards.task),


rule fig1_sparsity:
    input:
        sparsity_runs,
    output:
        png=report(FIGURE.format(name="fig1_sparsity.png"), caption="../report/fig1.rst", category="Analyses"),
        csv=FIGURE.format(name="fig1_sparsity.csv"),
    params:
        task_labels=LAYOUT.task_labels,
    run:
        from maskbench.analysis import sweeps

        sweeps.write_sparsity_figure(input, output.png, output.csv, params.task_labels)


rule fig2_layers:
    input:
        layer_runs,
    output:
        png=report(FIGURE.format(name="fig2_layers.png"), caption="../report/fig2.rst", category="Analyses"),
        csv=FIGURE.format(name="fig2_layers.csv"),
        tables=[TABLE.format(name=f"table7_layers{suffix}") for suffix in (".md", ".tex", ".csv", ".html")],
    params:
        block_order=lambda wildcards: ANALYSES["layers"]["block_sets"],
        task_labels=LAYOUT.task_labels,
    run:
        from maskbench.analysis import sweeps

        sweeps.write_layers(input, params.block_order, output.png, output.csv, output.tables, params.task_labels)


rule generalization:
    input:
        unpack(generalization_inputs),
    output:
        GENERALIZATION,
    log:
        log_file("analysis", "generalization/{model}/{method}/{source}"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: analysis_resources("threads")
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
        gpu=analysis_resources("gpu"),
    params:
        arguments=lambda wildcards, input, output: step_arguments(
            run_dirs=named_input(input, "runs", many=True),
            targets=generalization_targets(wildcards),
            model_name=model_name(wildcards),
            out=output[0],
            split=ANALYSES["generalization"]["split"],
        ),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench step generalization "
        "{params.arguments:q} > {log:q} 2>&1"


rule table3_generalization:
    input:
        lambda wildcards: generalization_files(),
    output:
        md=TABLE.format(name="table3_generalization.md"),
        tex=TABLE.format(name="table3_generalization.tex"),
        csv=TABLE.format(name="table3_generalization.csv"),
        html=report(
            TABLE.format(name="table3_generalization.html"), caption="../report/table3.rst", category="Analyses"
        ),
    params:
        label=lambda wildcards: config["models"][ANALYSES["generalization"]["model"]].get(
            "label", ANALYSES["generalization"]["model"]
        ),
        task_labels=LAYOUT.task_labels,
    run:
        from maskbench.analysis import generalization

        generalization.write_generalization_table(input, params.label, output, params.task_labels)


rule fig4_tsne:
    input:
        finetuned=pair_run("tsne", "finetuning"),
        masked=pair_run("tsne", "masking"),
        prepared=analysis_prepared("tsne"),
        downloaded=downloaded(),
    output:
        png=report(FIGURE.format(name="fig4_tsne.png"), caption="../report/fig4.rst", category="Analyses"),
        csv=FIGURE.format(name="fig4_tsne.csv"),
    log:
        log_file("analysis", "fig4_tsne"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: analysis_resources("threads")
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
        gpu=analysis_resources("gpu"),
    params:
        arguments=lambda wildcards, input, output: step_arguments(
            finetuned_run=named_input(input, "finetuned"),
            masked_run=named_input(input, "masked"),
            prepared=named_input(input, "prepared"),
            max_length=eval_target(ANALYSES["tsne"]["task"])["max_length"],
            png=output.png,
            data_csv=output.csv,
            limit=eval_target(ANALYSES["tsne"]["task"])["limit"],
        ),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench step tsne "
        "{params.arguments:q} > {log:q} 2>&1"


rule fig5_mask_dissimilarity:
    input:
        **mask_similarity_runs(),
    output:
        png=report(FIGURE.format(name="fig5_mask_dissimilarity.png"), caption="../report/fig5.rst", category="Analyses"),
        csv=FIGURE.format(name="fig5_mask_dissimilarity.csv"),
    log:
        log_file("analysis", "fig5_mask_dissimilarity"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: analysis_resources("threads")
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
    params:
        arguments=lambda wildcards, input, output: step_arguments(
            run_dirs=list(input),
            roles=ANALYSES["mask_similarity"]["layers"],
            blocks=ANALYSES["mask_similarity"].get("blocks"),
            png=output.png,
            data_csv=output.csv,
        ),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench step mask-similarity "
        "{params.arguments:q} > {log:q} 2>&1"


rule mode_connectivity:
    input:
        finetuned=pair_run("mode_connectivity", "finetuning"),
        masked=pair_run("mode_connectivity", "masking"),
        prepared=analysis_prepared("mode_connectivity"),
        downloaded=downloaded(),
    output:
        CONNECTIVITY,
    log:
        log_file("analysis", "connectivity/{model}/{task}"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: analysis_resources("threads")
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
        gpu=analysis_resources("gpu"),
    params:
        arguments=lambda wildcards, input, output: step_arguments(
            finetuned_run=named_input(input, "finetuned"),
            masked_run=named_input(input, "masked"),
            prepared=named_input(input, "prepared"),
            max_length=eval_target(wildcards.task)["max_length"],
            out=output[0],
            points=ANALYSES["mode_connectivity"]["points"],
            limit=eval_target(wildcards.task)["limit"],
        ),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench step mode-connectivity "
        "{params.arguments:q} > {log:q} 2>&1"


rule fig6_mode_connectivity:
    input:
        lambda wildcards: [
            CONNECTIVITY.format(model=ANALYSES["mode_connectivity"]["model"], task=task)
            for task in ANALYSES["mode_connectivity"]["tasks"]
        ],
    output:
        png=report(FIGURE.format(name="fig6_mode_connectivity.png"), caption="../report/fig6.rst", category="Analyses"),
        csv=FIGURE.format(name="fig6_mode_connectivity.csv"),
    run:
        from maskbench.analysis import connectivity

        connectivity.write_lines_figure(input, output.png, output.csv)


rule bezier:
    input:
        finetuned=pair_run("bezier", "finetuning"),
        masked=pair_run("bezier", "masking"),
        prepared=analysis_prepared("bezier"),
        downloaded=downloaded(),
    output:
        BEZIER,
    log:
        log_file("analysis", "bezier/{model}/{task}"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: analysis_resources("threads")
    resources:
        # the curve holds its bends, both end points and Adam's state: several copies of the model
        mem_mb=lambda wildcards, attempt: ANALYSES["bezier"]["mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
        gpu=analysis_resources("gpu"),
    params:
        arguments=lambda wildcards, input, output: step_arguments(
            finetuned_run=named_input(input, "finetuned"),
            masked_run=named_input(input, "masked"),
            prepared=named_input(input, "prepared"),
            max_length=eval_target(wildcards.task)["max_length"],
            out=output[0],
            limit=eval_target(wildcards.task)["limit"],
            **bezier_options(),
        ),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench step bezier "
        "{params.arguments:q} > {log:q} 2>&1"


rule fig7_bezier:
    input:
        lambda wildcards: [
            BEZIER.format(model=ANALYSES["bezier"]["model"], task=task) for task in ANALYSES["bezier"]["tasks"]
        ],
    output:
        png=report(FIGURE.format(name="fig7_bezier.png"), caption="../report/fig7.rst", category="Analyses"),
        csv=FIGURE.format(name="fig7_bezier.csv"),
    run:
        from maskbench.analysis import connectivity

        connectivity.write_bezier_figure(input, output.png, output.csv)
