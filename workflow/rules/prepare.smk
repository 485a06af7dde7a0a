# Stage 1: a task's splits tokenised for a model's tokenizer, cached once for every run that uses them.


rule prepare:
    input:
        downloaded(),
    output:
        directory(PREPARED),
    log:
        log_file("prepare", "{model}/{task}"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    resources:
        mem_mb=lambda wildcards, attempt: config["resources"]["prepare"]["mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: config["resources"]["prepare"]["runtime"] * attempt,
    params:
        model=lambda wildcards: config["models"][wildcards.model]["name"],
        max_length=lambda wildcards: eval_target(wildcards.task)["max_length"],
        # the arguments (quoted one by one); a derived param (it takes `output`), left out of the params trigger,
        # which compares data_setting instead (common.smk)
        data=lambda wildcards, output: data_options(wildcards),
        data_setting=data_setting,
        # not in the command, but a change of the task's data (maskbench.data.fingerprint) prepares it again
        fingerprint=data_fingerprint,
    shell:
        "python -m maskbench prepare --task {wildcards.task:q} --model {params.model:q} "
        "--max-length {params.max_length:q} {params.data:q} --out {output:q} > {log:q} 2>&1"
