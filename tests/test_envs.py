"""The software of the jobs: the CUDA environment is pinned to one CUDA build of torch from conda-forge, the
Apptainer definition installs exactly that file (one source of pins), and the config's `software:` picks the
environment and the container of every rule that runs maskbench in a shell. (Building them needs the internet and
conda/apptainer, which CI has not: these tests check what can be checked without.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

ENVS = REPO / "workflow" / "envs"
CUDA_ENV = ENVS / "maskbench-cuda.yaml"
CPU_ENV = ENVS / "maskbench.yaml"
DEFINITION = ENVS / "maskbench.def"


def _specs(path: Path) -> dict[str, str]:
    """package -> the rest of its conda spec (version and build), of an environment file's conda dependencies."""
    specs = {}
    for item in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(item, str):
            name, _, rest = re.match(r"^([A-Za-z0-9_.-]+)(\W?)(.*)$", item).groups()
            specs[name] = item[len(name):]
    return specs


def _sections(definition: str) -> dict[str, list[str]]:
    """An Apptainer definition's header (key ``header``) and %sections, as lists of stripped non-comment lines."""
    sections: dict[str, list[str]] = {"header": []}
    current = "header"
    for line in definition.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("%"):
            current = stripped[1:].split()[0]
            sections[current] = []
        else:
            sections[current].append(stripped)
    return sections


def test_cuda_environment_pins_one_cuda_build_of_torch_from_conda_forge():
    env = yaml.safe_load(CUDA_ENV.read_text())
    assert env["channels"] == ["conda-forge"], "only conda-forge (the `pytorch` channel is not used)"
    specs = _specs(CUDA_ENV)
    torch = re.fullmatch(r"=(\d+\.\d+\.\d+)=cuda(\d+)\*", specs["pytorch"])
    assert torch, f"pytorch must be pinned to a version and a CUDA build: pytorch{specs['pytorch']}"
    cuda = re.fullmatch(r"=(\d+)\.(\d+)", specs["cuda-version"])
    assert cuda, specs["cuda-version"]
    assert torch.group(2) == cuda.group(1) + cuda.group(2), "the torch build and cuda-version name the same CUDA"
    assert specs["python"] == "=3.11"
    # every dependency of the CPU environment is there too (the jobs need the same packages)
    assert set(_specs(CPU_ENV)) - {"pytorch"} <= set(specs), set(_specs(CPU_ENV)) - set(specs)
    pip = [item for item in env["dependencies"] if isinstance(item, dict)][0]["pip"]
    cpu_pip = [item for item in yaml.safe_load(CPU_ENV.read_text())["dependencies"] if isinstance(item, dict)][0]["pip"]
    assert pip == cpu_pip


def test_container_installs_exactly_the_cuda_environment():
    sections = _sections(DEFINITION.read_text())
    header = dict(line.split(":", 1) for line in sections["header"])
    assert header["Bootstrap"].strip() == "docker"
    assert re.fullmatch(r"mambaorg/micromamba:\d+\.\d+\.\d+", header["From"].strip()), "a pinned base image"
    # %files copies the environment file (path relative to the checkout's root) into the image ...
    copies = dict(line.split() for line in sections["files"])
    source = REPO / next(iter(copies))
    assert source.resolve() == CUDA_ENV.resolve(), copies
    target = copies[next(iter(copies))]
    # ... and %post installs that file, nothing else, for the environment's CUDA release
    post = " ".join(sections["post"])
    installs = re.findall(r"micromamba install [^;]*?--file (\S+)", post)
    assert installs == [target], post
    assert not re.search(r"(pip|conda|mamba) install (?!.*--file)", post.replace("micromamba install", "")), post
    cuda = _specs(CUDA_ENV)["cuda-version"].lstrip("=")
    assert f"CONDA_OVERRIDE_CUDA={cuda}" in post, "the solver must target the environment's CUDA without a GPU"
    assert "torch.version.cuda" in " ".join(sections["test"]), "the image checks that torch is a CUDA build"


_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
repo, workdir, software = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(), storage_settings=StorageSettings(), snakefile=repo / "Snakefile",
        config_settings=ConfigSettings(configfiles=[repo / "config" / "ci.yaml"], config=software), workdir=workdir)
    print("RULES " + json.dumps({rule.name: [rule.conda_env, rule.container_img, bool(rule.shellcmd)]
                                 for rule in workflow._workflow.rules}))
"""


@pytest.mark.parametrize("software, env, container", [
    ({}, "../envs/maskbench.yaml", None),
    ({"software": {"env": "cuda", "container": "maskbench.sif"}}, "../envs/maskbench-cuda.yaml", "maskbench.sif"),
])
def test_config_picks_the_environment_and_container_of_every_shell_rule(software, env, container, tmp_path, data_dir):
    result = subprocess.run([sys.executable, "-c", _RULES, str(REPO), str(tmp_path), json.dumps(software)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "MASKBENCH_DATA_DIR": str(data_dir)})
    line = [line for line in result.stdout.splitlines() if line.startswith("RULES ")]
    assert result.returncode == 0 and line, result.stderr[-3000:]
    rules = json.loads(line[0][len("RULES "):])
    shell_rules = {name for name, (_, _, shell) in rules.items() if shell}
    assert {"train", "prepare", "train_analysis"} <= shell_rules
    for name in shell_rules:
        assert rules[name][:2] == [env, container], (name, rules[name])
    assert (ENVS / Path(env).name).is_file()
