# The software of the shell jobs, from the config's `software:` (schema defaults: cpu, no container): every rule
# that runs maskbench in a shell names these in its `conda:` and `container:` directives. Paths are relative to
# workflow/rules/, as a rule's conda file is.

CONDA_ENV = {"cpu": "../envs/maskbench.yaml", "cuda": "../envs/maskbench-cuda.yaml"}[config["software"]["env"]]
CONTAINER = config["software"]["container"]
