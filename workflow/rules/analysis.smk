# Stage 8: the paper's analyses (maskbench.analysis), each present in the config's `analyses:` a target.
# Figs. 1/2 add masking runs of their own settings (train_analysis; grid runs are reused where they match);
# Table 3 and Figs. 4-7 read the grid's runs at the selected lr; a committed run kept without its artefact (masks,
# weights) gets it back from `rebuild`: trained again and checked against its record. Paths: workflow/rules/common.smk.


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


rule rebuild:
    input:
        record=ancient(RUN_METRICS),  # a committed record: the run is trained again, not because it is newer
        prepared=PREPARED,
        downloaded=downloaded(),
    output:
        directory(f"{RUN}/{{artefact}}"),
    log:
        log_file("rebuild", "{model}/{task}/{method}/lr{lr}_seed{seed}_{artefact}"),
    wildcard_constraints:
        artefact=r"[a-z0-9_]+",
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: config["resources"]["train"]["threads"]  # the recorded run's threads: the same numbers
    resources:
        gpu=config["resources"]["train"]["gpu"],
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=train_runtime,
    params:
        arguments=lambda wildcards, input, output: step_arguments(
            run=str(Path(input.record).parent), prepared=input.prepared
        ),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench step rebuild "
        "{params.arguments:q} > {log:q} 2>&1"


rule fig1_sparsity:
    input:
        sparsity_runs,
    output:
        png=report(FIGURE.format(name="fig1_sparsity.png"), caption="../report/fig1.rst", category="Analyses"),
        csv=FIGURE.format(name="fig1_sparsity.csv"),
    log:
        log_file("analysis", "fig1_sparsity"),
    params:
        task_labels=LAYOUT.task_labels,
    run:
        from maskbench.analysis import sweeps

        logged_step(log, sweeps.write_sparsity_figure, input, output.png, output.csv, params.task_labels)


rule fig2_layers:
    input:
        layer_runs,
    output:
        png=report(FIGURE.format(name="fig2_layers.png"), caption="../report/fig2.rst", category="Analyses"),
        csv=FIGURE.format(name="fig2_layers.csv"),
        md=TABLE.format(name="table7_layers.md"),
        tex=TABLE.format(name="table7_layers.tex"),
        table_csv=TABLE.format(name="table7_layers.csv"),
        html=report(TABLE.format(name="table7_layers.html"), caption="../report/table7.rst", category="Analyses"),
    log:
        log_file("analysis", "fig2_layers"),
    params:
        block_order=lambda wildcards: ANALYSES["layers"]["block_sets"],
        task_labels=LAYOUT.task_labels,
    run:
        from maskbench.analysis import sweeps

        logged_step(
            log,
            sweeps.write_layers,
            input,
            params.block_order,
            output.png,
            output.csv,
            [output.md, output.tex, output.table_csv, output.html],
            params.task_labels,
        )


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
    log:
        log_file("analysis", "table3_generalization"),
    params:
        label=lambda wildcards: config["models"][ANALYSES["generalization"]["model"]].get(
            "label", ANALYSES["generalization"]["model"]
        ),
        task_labels=LAYOUT.task_labels,
    run:
        from maskbench.analysis import generalization

        logged_step(log, generalization.write_generalization_table, input, params.label, output, params.task_labels)


rule fig4_tsne:
    input:
        unpack(model_analysis_inputs("tsne", lambda wildcards: FIGURE.format(name="fig4_tsne.csv"))),
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
        artefacts=lambda wildcards: missing_artefacts(*(runs(wildcards) for runs in mask_similarity_runs().values())),
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
            run_dirs=[named_input(input, task) for task in ANALYSES["mask_similarity"]["tasks"]],
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
        unpack(
            model_analysis_inputs(
                "mode_connectivity", lambda wildcards: CONNECTIVITY.format(**dict(wildcards.items()))
            )
        ),
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
    log:
        log_file("analysis", "fig6_mode_connectivity"),
    run:
        from maskbench.analysis import connectivity

        logged_step(log, connectivity.write_lines_figure, input, output.png, output.csv)


rule bezier:
    input:
        unpack(model_analysis_inputs("bezier", lambda wildcards: BEZIER.format(**dict(wildcards.items())))),
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
    log:
        log_file("analysis", "fig7_bezier"),
    run:
        from maskbench.analysis import connectivity

        logged_step(log, connectivity.write_bezier_figure, input, output.png, output.csv)
