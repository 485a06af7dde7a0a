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
        "../envs/maskbench.yaml"
    params:
        models=lambda wildcards: " ".join(shlex.quote(model["name"]) for model in config["models"].values()),
        tasks=lambda wildcards: " ".join(download_tasks()),
        data=data_options,
        cache=lambda wildcards: (
            f"--cache-dir {shlex.quote(str(ENVIRONMENT.cache_dir))}" if ENVIRONMENT.cache_dir is not None else ""
        ),
        # not in the command (the environment carries them), but a change fetches again
        data_dir=lambda wildcards: str(ENVIRONMENT.data_dir),
        caches=lambda wildcards: json.dumps(dict(ENVIRONMENT.caches), sort_keys=True),
        # the hub switches of the launching shell, not the jobs' (offline): online unless the user switched it off
        hub=DOWNLOAD_HUB_SETTINGS,
    shell:
        "{params.hub} python -m maskbench.cli download --models {params.models} --tasks {params.tasks} "
        "{params.data} {params.cache} --out {output} > {log} 2>&1"
