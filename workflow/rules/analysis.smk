# Stage 8: the paper's analyses (maskbench.analysis), each present in the config's `analyses:` a target.
# Figs. 1/2 add masking runs of their own settings (train_analysis; grid runs are reused where they match);
# Table 3 and Figs. 4-7 read the grid's runs at the selected lr. Paths: workflow/rules/common.smk.


rule train_analysis:
    input:
        unpack(lambda wildcards: train_inputs(wildcards, "masking", variant_overrides(wildcards.variant),
                                              f"{RUN_VARIANT}/metrics.json")),
    output:
        metrics=f"{RUN_VARIANT}/metrics.json",
        predictions=f"{RUN_VARIANT}/predictions.safetensors",
    params:
        options=lambda wildcards: train_options(wildcards, variant_overrides(wildcards.variant), "masking"),
        run_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        prepared=lambda wildcards: PREPARED.format(model=wildcards.model, task=wildcards.task),
    log:
        log_file("train", "{model}/{task}/{variant}/lr{lr}_seed{seed}"),
    benchmark:
        BENCHMARK.format(stage="train", name="{model}/{task}/{variant}/lr{lr}_seed{seed}")
    threads: config["resources"]["train"]["threads"]
    resources:
        gpu=config["resources"]["train"]["gpu"],
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=train_runtime,
    conda:
        "../envs/maskbench.yaml"
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} python -m maskbench.cli train --method masking "
        "--task {wildcards.task} --seed {wildcards.seed} --lr {wildcards.lr} --prepared {params.prepared} "
        "{params.options} --out {params.run_dir} > {log} 2>&1"


rule fig1_sparsity:
    input:
        sparsity_runs,
    output:
        png=report(FIGURE.format(name="fig1_sparsity.png"), caption="../report/analysis.rst", category="Analyses"),
        csv=FIGURE.format(name="fig1_sparsity.csv"),
    log:
        log_file("analysis", "fig1_sparsity"),
    run:
        from maskbench.analysis import sweeps

        sweeps.write_sparsity_figure(input, output.png, output.csv)


rule fig2_layers:
    input:
        layer_runs,
    output:
        png=report(FIGURE.format(name="fig2_layers.png"), caption="../report/analysis.rst", category="Analyses"),
        csv=FIGURE.format(name="fig2_layers.csv"),
        tables=[TABLE.format(name=f"table7_layers{suffix}") for suffix in TABLE_FORMATS],
    params:
        block_order=lambda wildcards: ANALYSES["layers"]["block_sets"],
    log:
        log_file("analysis", "fig2_layers"),
    run:
        from maskbench.analysis import sweeps

        sweeps.write_layers(input, params.block_order, output.png, output.csv, output.tables)


rule generalization:
    input:
        unpack(generalization_inputs),
        downloaded=downloaded(),
    output:
        GENERALIZATION,
    params:
        targets=lambda wildcards: {target: {**eval_target(target),
                                            "prepared": PREPARED.format(model=wildcards.model, task=target)}
                                   for target in ANALYSES["generalization"]["targets"]},
        model=lambda wildcards: config["models"][wildcards.model]["name"],
        split=lambda wildcards: ANALYSES["generalization"].get("split", "dev"),
    log:
        log_file("analysis", "generalization/{model}/{method}/{source}"),
    threads: analysis_resources("threads")
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
        gpu=analysis_resources("gpu"),
    run:
        from maskbench.analysis import generalization

        generalization.write_transfer(input.runs, params.targets, params.model, output[0], params.split)


rule table3_generalization:
    input:
        lambda wildcards: generalization_files(),
    output:
        md=TABLE.format(name="table3_generalization.md"),
        tex=TABLE.format(name="table3_generalization.tex"),
        csv=report(TABLE.format(name="table3_generalization.csv"), caption="../report/analysis.rst",
                   category="Analyses"),
    params:
        label=lambda wildcards: config["models"][ANALYSES["generalization"]["model"]].get(
            "label", ANALYSES["generalization"]["model"]),
    log:
        log_file("analysis", "table3_generalization"),
    run:
        from maskbench.analysis import generalization

        generalization.write_generalization_table(input, params.label, output)


rule fig4_tsne:
    input:
        finetuned=pair_run("tsne", "finetuning"),
        masked=pair_run("tsne", "masking"),
        prepared=analysis_prepared("tsne"),
        downloaded=downloaded(),
    output:
        png=report(FIGURE.format(name="fig4_tsne.png"), caption="../report/analysis.rst", category="Analyses"),
        csv=FIGURE.format(name="fig4_tsne.csv"),
    params:
        target=lambda wildcards: eval_target(ANALYSES["tsne"]["task"]),
    log:
        log_file("analysis", "fig4_tsne"),
    threads: analysis_resources("threads")
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
        gpu=analysis_resources("gpu"),
    run:
        from maskbench.analysis import tsne

        tsne.write_tsne(input.finetuned, input.masked, input.prepared, params.target["max_length"], output.png,
                        output.csv, params.target["limit"])


rule fig5_mask_dissimilarity:
    input:
        **mask_similarity_runs(),
    output:
        png=report(FIGURE.format(name="fig5_mask_dissimilarity.png"), caption="../report/analysis.rst",
                   category="Analyses"),
        csv=FIGURE.format(name="fig5_mask_dissimilarity.csv"),
    params:
        roles=lambda wildcards: ANALYSES["mask_similarity"].get("layers", ["W_O"]),
        blocks=lambda wildcards: ANALYSES["mask_similarity"].get("blocks"),
    log:
        log_file("analysis", "fig5_mask_dissimilarity"),
    threads: analysis_resources("threads")
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
    run:
        from maskbench.analysis import mask_similarity

        mask_similarity.write_mask_similarity(input, params.roles, params.blocks, output.png, output.csv)


rule mode_connectivity:
    input:
        finetuned=pair_run("mode_connectivity", "finetuning"),
        masked=pair_run("mode_connectivity", "masking"),
        prepared=analysis_prepared("mode_connectivity"),
        downloaded=downloaded(),
    output:
        CONNECTIVITY,
    params:
        target=lambda wildcards: eval_target(wildcards.task),
        points=lambda wildcards: ANALYSES["mode_connectivity"].get("points", 11),
    log:
        log_file("analysis", "connectivity/{model}/{task}"),
    threads: analysis_resources("threads")
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
        gpu=analysis_resources("gpu"),
    run:
        from maskbench.analysis import connectivity

        connectivity.write_line_scores(input.finetuned, input.masked, input.prepared, params.target["max_length"],
                                       output[0], params.points, params.target["limit"])


rule fig6_mode_connectivity:
    input:
        lambda wildcards: [CONNECTIVITY.format(model=ANALYSES["mode_connectivity"]["model"], task=task)
                           for task in ANALYSES["mode_connectivity"]["tasks"]],
    output:
        png=report(FIGURE.format(name="fig6_mode_connectivity.png"), caption="../report/analysis.rst",
                   category="Analyses"),
        csv=FIGURE.format(name="fig6_mode_connectivity.csv"),
    log:
        log_file("analysis", "fig6_mode_connectivity"),
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
    params:
        target=lambda wildcards: eval_target(wildcards.task),
        options=lambda wildcards: {key: ANALYSES["bezier"][key] for key in
                                   ("bends", "epochs", "lr", "batch_size", "max_train_examples", "points")
                                   if key in ANALYSES["bezier"]},
    log:
        log_file("analysis", "bezier/{model}/{task}"),
    threads: analysis_resources("threads")
    resources:
        # the curve holds its bends, both end points and Adam's state: several copies of the model
        mem_mb=lambda wildcards, attempt: ANALYSES["bezier"].get("mem_mb", 24000) * attempt,
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
        gpu=analysis_resources("gpu"),
    run:
        from maskbench.analysis import connectivity

        connectivity.write_bezier(input.finetuned, input.masked, input.prepared, params.target["max_length"],
                                  output[0], limit=params.target["limit"], **params.options)


rule fig7_bezier:
    input:
        lambda wildcards: [BEZIER.format(model=ANALYSES["bezier"]["model"], task=task)
                           for task in ANALYSES["bezier"]["tasks"]],
    output:
        png=report(FIGURE.format(name="fig7_bezier.png"), caption="../report/analysis.rst", category="Analyses"),
        csv=FIGURE.format(name="fig7_bezier.csv"),
    log:
        log_file("analysis", "fig7_bezier"),
    run:
        from maskbench.analysis import connectivity

        connectivity.write_bezier_figure(input, output.png, output.csv)
