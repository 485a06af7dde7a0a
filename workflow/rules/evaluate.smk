# Stage 4 and 6: mean ± std over seeds at the chosen lr (dev and test); test scores of single models and of the
# ensemble chosen on dev (a task without a labelled test split records has_test: false); and the measured
# sizes of the saved artefacts that the memory columns need.


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
