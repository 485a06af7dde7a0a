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
    log:
        log_file("reference_model", "{model}/{task}"),
    conda:
        "../envs/maskbench.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: config["resources"]["prepare"]["mem_mb"] * attempt,
    params:
        arguments=lambda wildcards, output: step_arguments(
            model=model_name(wildcards), task=wildcards.task, out=output[0]
        ),
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} python -m maskbench step reference-sizes "
        "{params.arguments:q} > {log} 2>&1"


rule serving_memory:
    input:
        **serving_runs(),
        downloaded=downloaded(),
    output:
        SERVING,
    log:
        log_file("serving_memory", "{model}"),
    conda:
        "../envs/maskbench.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
    params:
        arguments=lambda wildcards, input, output: step_arguments(
            base=model_name(wildcards), runs=[named_input(input, task) for task in MASKED_TASKS], out=output[0]
        ),
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} python -m maskbench step serving-memory "
        "{params.arguments:q} > {log} 2>&1"
