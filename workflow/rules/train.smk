# Stage 2: one training run per (model, task, method, lr, seed). The run directory also holds the masks
# (masking) next to the two declared outputs; metrics.json is written last, so it marks a finished run.
# A train job's options are generated from the run's settings (maskbench.training.settings.command_line): the job runs
# exactly the TrainConfig that expected_config builds; these come from wildcards and paths instead.


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics=RUN_METRICS,
        predictions=RUN_PREDICTIONS,
    log:
        log_file("train", "{model}/{task}/{method}/lr{lr}_seed{seed}"),
    benchmark:
        BENCHMARK.format(stage="train", name="{model}/{task}/{method}/lr{lr}_seed{seed}")
    conda:
        CONDA_ENV
    container:
        CONTAINER
    threads: config["resources"]["train"]["threads"]
    resources:
        gpu=config["resources"]["train"]["gpu"],
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=train_runtime,
    params:
        method=lambda wildcards, output: wildcards.method,  # derived (takes output): not a rerun trigger
        options=train_options,  # a list of arguments, left out of the params trigger (train_options)
        run_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        prepared=lambda wildcards: PREPARED.format(model=wildcards.model, task=wildcards.task),
    shell:
        "OMP_NUM_THREADS={threads:q} MKL_NUM_THREADS={threads:q} python -m maskbench train "
        "--method {params.method:q} --task {wildcards.task:q} --seed {wildcards.seed:q} --lr {wildcards.lr:q} "
        "--prepared {params.prepared:q} {params.options:q} --out {params.run_dir:q} > {log:q} 2>&1"
