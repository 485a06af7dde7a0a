# The resident memory of serving the tasks' masks on one base model, measured (maskbench.serving.memory).


rule serving_memory:
    input:
        **serving_runs(),
        downloaded=downloaded(),
    output:
        SERVING,
    log:
        log_file("serving_memory", "{model}"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: analysis_resources("mem_mb", attempt),
        runtime=lambda wildcards, attempt: analysis_resources("runtime", attempt),
    params:
        arguments=lambda wildcards, input, output: step_arguments(
            base=model_name(wildcards), runs=[named_input(input, task) for task in MASKED_TASKS], out=output[0]
        ),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench step serving-memory "
        "{params.arguments:q} > {log:q} 2>&1"
