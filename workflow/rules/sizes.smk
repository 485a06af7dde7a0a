# What the memory columns need: the sizes of a pretrained and a finetuned model with each task's head
# (maskbench.training.sizes; the runs' own artefacts are measured by the aggregate step).


rule reference_model:
    input:
        downloaded(),
    output:
        REFERENCE,
    log:
        log_file("reference_model", "{model}/{task}"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    resources:
        mem_mb=lambda wildcards, attempt: config["resources"]["prepare"]["mem_mb"] * attempt,
    params:
        arguments=lambda wildcards, output: step_arguments(
            model=model_name(wildcards), task=wildcards.task, out=output[0]
        ),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench step reference-sizes "
        "{params.arguments:q} > {log:q} 2>&1"
