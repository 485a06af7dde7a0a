# Stage 0: everything the configuration loads from the Hugging Face hub (models with their tokenizers, task data
# without local files) fetched into the caches, on the submitting machine (a localrule: compute nodes often have
# no internet). Local models and task files are only checked. Every job runs with the hub switched off and reads
# the caches (common.smk); the steps that load a model or task data take the manifest as input (downloaded()).


rule download:
    output:
        DOWNLOAD_MANIFEST,
    log:
        log_file("download", "manifest"),
    conda:
        CONDA_ENV
    container:
        CONTAINER
    params:
        # lists: the shell command quotes each item ({params.x:q})
        models=lambda wildcards: [model["name"] for model in config["models"].values()],
        tasks=lambda wildcards: plan.download_tasks(config),
        data=data_options,
        cache=lambda wildcards: (
            ["--cache-dir", str(ENVIRONMENT.cache_dir)] if ENVIRONMENT.cache_dir is not None else []
        ),
        # not in the command (the environment carries them), but a change fetches again
        data_dir=lambda wildcards: str(ENVIRONMENT.data_dir),
        caches=lambda wildcards: json.dumps(dict(ENVIRONMENT.caches), sort_keys=True),
        # the hub switches of the launching shell, not the jobs' (offline): online unless the user switched it off
        # (the arguments of an `env` command)
        hub=DOWNLOAD_HUB_SETTINGS,
    shell:
        "{params.hub:q} python -m maskbench download --models {params.models:q} --tasks {params.tasks:q} "
        "{params.data:q} {params.cache:q} --out {output:q} > {log:q} 2>&1"
