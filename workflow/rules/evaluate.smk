# Stage 4 and 6: mean ± std over seeds at the chosen lr (dev and test); test scores of single models and of the
# ensemble chosen on dev (a task without a labelled test split records has_test: false); and what the memory
# columns need: the sizes of the saved artefacts, and the resident memory of serving the tasks (measured).


rule aggregate:
    input:
        unpack(chosen_runs),
        chosen=CHOSEN,
    output:
        AGGREGATE,
    log:
        log_file("aggregate", "{model}/{task}/{method}"),
    run:
        from maskbench import aggregate

        aggregate.write_aggregate(input.runs, output[0])


rule evaluate:
    input:
        unpack(chosen_runs),
        ensemble=ENSEMBLE,
    output:
        EVALUATION,
    log:
        log_file("evaluate", "{model}/{task}/{method}"),
    run:
        from maskbench import ensemble

        ensemble.write_evaluation(input.runs, input.ensemble, output[0])


rule reference_model:
    input:
        downloaded(),
    output:
        REFERENCE,
    params:
        model=lambda wildcards: config["models"][wildcards.model]["name"],
    log:
        log_file("reference_model", "{model}/{task}"),
    resources:
        mem_mb=lambda wildcards, attempt: config["resources"]["prepare"]["mem_mb"] * attempt,
    run:
        from maskbench import aggregate

        aggregate.write_reference_sizes(params.model, wildcards.task, output[0])


rule serving_memory:
    input:
        **serving_runs(),
        downloaded=downloaded(),
    output:
        SERVING,
    params:
        model=lambda wildcards: config["models"][wildcards.model]["name"],
    log:
        log_file("serving_memory", "{model}"),
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
    run:
        from maskbench import serving

        serving.write_serving(params.model, [input[task] for task in TASKS], output[0])
