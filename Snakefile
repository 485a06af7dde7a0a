# maskbench: the paper's grid as cached targets (Zhao et al., EMNLP 2020, "Masking as an efficient alternative
# to finetuning"). `snakemake --cores 2` runs the demo (config.yaml); `snakemake --configfile config/paper.yaml
# --profile profiles/slurm` runs the paper's grid. Stages, one file each: download → data → train → select →
# ensemble → evaluate → tables → analyses. Result paths are defined in workflow/rules/common.smk; the work is done
# by maskbench.

import os
import shlex
import sys
from pathlib import Path

# `run:` blocks and this file use the maskbench of this checkout, as shell jobs do (PYTHONPATH below), not
# whichever maskbench the interpreter has installed (e.g. an editable install of another checkout)
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from maskbench.io.locations import shell_exports

# config.yaml (the demo) only when no --configfile is given: Snakemake would otherwise merge the two. A
# --configfile that does not exist is Snakemake's own error: it reads the file before this Snakefile, and ends
# with the line "FileNotFoundError: [Errno 2] No such file or directory: '<file>'" after a traceback of its CLI
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/software.smk"
include: "workflow/rules/inputs.smk"


# shell jobs use the maskbench of this checkout, also inside a --use-conda environment, with the absolute data
# directory and caches and the hub switched off (common.smk: ENVIRONMENT; the download stage switches it back).
# Every value is quoted: a checkout path may hold spaces or shell characters.
shell.prefix(
    (
        f"export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))}\"${{PYTHONPATH:+:$PYTHONPATH}}\" "
        f"TOKENIZERS_PARALLELISM=false TQDM_MININTERVAL=30; {shell_exports(ENVIRONMENT.jobs())}"
    )
    .replace("{", "{{")
    .replace("}", "}}")  # the prefix is formatted like a command
)


# the main process puts the resolved data directory and caches into its environment when it starts running jobs:
# cluster jobs inherit them (sbatch --export=ALL) and resolve the same paths (common.smk); planning changes nothing
onstart:
    os.environ.update(ENVIRONMENT.shared())


include: "workflow/rules/download.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/sizes.smk"
include: "workflow/rules/serving.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/analysis.smk"


# bookkeeping steps run on the submitting machine, never as cluster jobs
localrules:
    all,
    download,
    select_lr,
    choose_lr,
    aggregate,
    ensemble,
    evaluate,
    table,
    summary,
    fig3_memory,
    dev_vs_bytes,
    fig1_sparsity,
    fig2_layers,
    table3_generalization,
    fig6_mode_connectivity,
    fig7_bezier,


rule all:
    default_target: True
    input:
        final_targets(),
        analysis_targets(),
        run_targets,
