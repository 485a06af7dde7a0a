"""The workflow on a real SLURM cluster: a single-node cluster with accounting (tests/cluster/) runs the CI config
through `snakemake --profile profiles/slurm-test`, and SLURM's accounting (sacct) must hold every job that
Snakemake submitted, COMPLETED; a job that fails on its first attempt is resubmitted and succeeds on the second.
As on a cluster whose compute nodes have no internet: the download stage runs on the submitting host, every
compute job runs with the hub switched off, and a relative $MASKBENCH_DATA_DIR is resolved where snakemake was
launched, not in the jobs' directory.

The module installs the Debian packages if missing (tests/cluster/install.sh), starts munged, mariadbd, slurmdbd,
slurmctld and slurmd in a scratch directory (start.sh) and stops them by PID afterwards (stop.sh), also when a
test fails or pytest gets SIGTERM. It needs root and apt; it is skipped elsewhere, and with
MASKBENCH_SKIP_SLURM=1. Every subprocess is bounded: the scripts by `timeout --foreground` (the daemons stay in
pytest's process group, so a kill of the whole test run reaches them), snakemake by `timeout -k` (its own group:
snakemake and everything it started are killed together).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from maskbench.io.locations import OFFLINE_VARIABLES

CLUSTER = REPO / "tests" / "cluster"
PROFILE = REPO / "profiles" / "slurm-test"
SNAKEFILE = REPO / "Snakefile"
CI_CONFIG = REPO / "config" / "ci.yaml"
RETRY_SNAKEFILE = CLUSTER / "retry" / "Snakefile"

# seconds; the CI limit for the whole suite is 90 min
INSTALL_TIMEOUT = 900       # apt-get update + install, ~1 min on a fresh machine
START_TIMEOUT = 300         # start.sh, ~15 s
STOP_TIMEOUT = 180
WORKFLOW_TIMEOUT = 1200     # the CI config through SLURM: ~6 min on a loaded 2-core machine
RETRY_TIMEOUT = 420         # two attempts of one job, ~1 min


def _skip_reason() -> str | None:
    if os.environ.get("MASKBENCH_SKIP_SLURM") == "1":
        return "MASKBENCH_SKIP_SLURM=1"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the SLURM cluster test needs root (it installs packages and starts daemons)"
    if not Path("/etc/debian_version").is_file() or not (shutil.which("apt-get") and shutil.which("dpkg-query")):
        return "the SLURM cluster test needs a Debian system with apt"
    if not all(shutil.which(tool) for tool in ("timeout", "setpriv", "bash")):
        return "the SLURM cluster test needs coreutils' timeout, util-linux' setpriv and bash"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')"
    return None


pytestmark = [pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
              pytest.mark.xdist_group("slurm")]  # one cluster: its tests share one pytest-xdist worker


@dataclasses.dataclass
class Cluster:
    scratch: Path
    env: dict[str, str]
    install_s: float
    start_s: float

    def sacct(self, run_uuid: str, since: str) -> list[dict[str, str]]:
        """The allocations (-X: no job steps) of one Snakemake run, one dict per job."""
        fields = ["JobID", "JobName", "State", "ExitCode", "Comment"]
        result = subprocess.run(
            ["sacct", "-X", "--parsable2", "--noheader", "--starttime", since, "--name", run_uuid,
             f"--format={','.join(fields)}"],
            capture_output=True, text=True, env=self.env, timeout=60)
        assert result.returncode == 0, result.stderr
        return [dict(zip(fields, line.split("|"))) for line in result.stdout.splitlines() if line.strip()]


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _script(name: str, *args: str, timeout: int, log: Path) -> subprocess.CompletedProcess:
    """Run tests/cluster/<name> with output to ``log`` (a file, not a pipe: daemons outlive the script)."""
    command = ["timeout", "--foreground", "-k", "10", str(timeout), "bash", str(CLUSTER / name), *args]
    env = {**os.environ, "PYTHON": sys.executable}
    with log.open("a") as out:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout + 60)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node SLURM cluster with accounting; stopped by PID when the module's tests are done."""
    logs = Path(tempfile.mkdtemp(prefix="mb-slurm-logs-"))
    started = time.perf_counter()
    install = _script("install.sh", timeout=INSTALL_TIMEOUT, log=logs / "install.log")
    assert install.returncode == 0, f"tests/cluster/install.sh failed:\n{_tail(logs / 'install.log')}"

    install_s = time.perf_counter() - started
    # a short path: the munge and mysql sockets live in it (a socket path has at most 107 characters)
    scratch = Path(tempfile.mkdtemp(prefix="mb-slurm-"))
    # pytest's default SIGTERM handling would skip the teardown and leave the daemons running
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        started = time.perf_counter()
        start = _script("start.sh", str(scratch), timeout=START_TIMEOUT, log=logs / "start.log")
        start_s = time.perf_counter() - started
        assert start.returncode == 0, f"tests/cluster/start.sh failed:\n{_tail(logs / 'start.log', 200)}"
        env = {**os.environ,
               "SLURM_CONF": str(scratch / "etc" / "slurm.conf"),
               # start.sh's srun wrapper (see there); jobs inherit PATH, so they also use this python
               "PATH": f"{scratch / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        yield Cluster(scratch, env, install_s, start_s)
    finally:
        stop = _script("stop.sh", str(scratch), timeout=STOP_TIMEOUT, log=logs / "stop.log")
        signal.signal(signal.SIGTERM, previous_handler)
        assert stop.returncode == 0, f"tests/cluster/stop.sh failed:\n{_tail(logs / 'stop.log')}"
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


def _snakemake(cluster: Cluster, snakefile: Path, workdir: Path, *args: str, timeout: int,
               env: dict[str, str | None] | None = None, launch: Path | None = None) -> tuple[int, str]:
    """Run snakemake with the test profile in ``workdir``, started from ``launch`` (default: ``workdir``) as a shell
    would start it (working directory and $PWD); ``env`` adds variables, None values remove them. Returns (exit
    status, its output)."""
    launch = launch or workdir
    log = workdir.parent / f"{workdir.name}.snakemake.out"
    command = ["timeout", "-k", "30", str(timeout), sys.executable, "-m", "snakemake", "--snakefile", str(snakefile),
               "--profile", str(PROFILE), "--directory", str(workdir), *args]
    environ = {**cluster.env, "PWD": str(launch), **(env or {})}
    environ = {name: value for name, value in environ.items() if value is not None}
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=launch, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=environ)
        try:
            code = process.wait(timeout=timeout + 90)
        except BaseException:
            # pytest-timeout, Ctrl-C or SIGTERM: `timeout` leads its own process group (snakemake and all it
            # started); SIGTERM to the group lets snakemake cancel its SLURM jobs, SIGKILL follows
            _kill_group(process)
            raise
    return code, log.read_text(errors="replace")


def _kill_group(process: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _sacct_since() -> str:
    return (datetime.now() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")


def _run_uuid(output: str) -> str:
    match = re.search(r"SLURM run ID: ([0-9a-f-]{36})", output)
    assert match, f"no SLURM run ID in snakemake's output:\n{output[-3000:]}"
    return match.group(1)


def _submissions(output: str) -> list[tuple[int, str]]:
    """(snakemake job id, SLURM job id) of every sbatch submission, in order."""
    return [(int(job), slurm) for job, slurm in
            re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)]


def _comment_rule(comment: str) -> str:
    """The rule in the plugin's job comment ``rule_<rule>[_wildcards_<values>]`` (the comment if it is not one)."""
    match = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", comment)
    return match.group(1) if match else comment


def _report(capsys, cluster: Cluster, message: str) -> None:
    with capsys.disabled():
        print(f"\n[slurm] (cluster: install check {cluster.install_s:.0f} s, start {cluster.start_s:.0f} s) "
              f"{message}")


@pytest.mark.slow(seconds=200)
@pytest.mark.timeout(INSTALL_TIMEOUT + START_TIMEOUT + WORKFLOW_TIMEOUT + 300)
def test_ci_workflow_runs_every_cluster_job_through_slurm(slurm_cluster, tmp_path, data_dir, capsys):
    if not SNAKEFILE.is_file() or not CI_CONFIG.is_file():
        pytest.skip(f"the workflow is not there yet ({SNAKEFILE.name} or config/ci.yaml missing)")
    # launched from one directory with the data directory given relative to it (as in the README:
    # MASKBENCH_DATA_DIR=../shared/data), working in another; the jobs run in the working directory
    launch, workdir = tmp_path / "launch", tmp_path / "work"
    launch.mkdir()
    workdir.mkdir()
    relative_data_dir = os.path.relpath(data_dir.resolve(), launch)
    since = _sacct_since()
    started = time.perf_counter()
    # the submitting host is online (no hub switches set); the compute jobs must run with the hub switched off,
    # reading the models and data the download stage resolved. Jobs inherit the environment (sbatch
    # --export=ALL) the workflow prepares: absolute data directory, offline switches, this python
    code, output = _snakemake(
        slurm_cluster, SNAKEFILE, workdir, "--configfile", str(CI_CONFIG), timeout=WORKFLOW_TIMEOUT, launch=launch,
        env={"MASKBENCH_DATA_DIR": relative_data_dir, "TOKENIZERS_PARALLELISM": "false",
             **{name: None for name in OFFLINE_VARIABLES}})
    wall = time.perf_counter() - started
    assert code == 0, f"snakemake exited with {code}:\n{output[-6000:]}"
    for name in ("table1_dev.md", "table2_test.md", "summary.csv"):
        assert (workdir / "results" / "tables" / name).stat().st_size > 0, name

    # the download stage ran on the submitting host (online there), resolving the relative data directory once
    assert re.search(r"^localrule download:$", output, flags=re.MULTILINE), output[-3000:]
    manifest = json.loads((workdir / "results" / "download" / "manifest.json").read_text())
    assert manifest["data_dir"] == str(data_dir.resolve()) and manifest["hub_offline"] is False, manifest
    assert {name: record["source"] for name, record in manifest["tasks"].items()} == {"trec": "local"}, manifest
    assert manifest["models"]["minilm"]["source"] == "local", manifest

    # every job Snakemake ran as a cluster job ("rule X:"; bookkeeping steps print "localrule X:") was submitted
    # once, and SLURM accounting holds exactly those jobs, all COMPLETED with exit code 0
    cluster_rules = collections.Counter(re.findall(r"^rule (\w+):$", output, flags=re.MULTILINE))
    local_rules = collections.Counter(re.findall(r"^localrule (\w+):$", output, flags=re.MULTILINE))
    submissions = _submissions(output)
    assert "Trying to restart job" not in output, "a job needed a retry"
    assert len(submissions) == sum(cluster_rules.values()) > 0, (cluster_rules, submissions)
    config = yaml.safe_load(CI_CONFIG.read_text())
    initial_runs = (len(config["models"]) * len(config["tasks"]) * len(config["seeds"])
                    * sum(len(config["lr_grid"][method]) for method in config["methods"]))
    assert cluster_rules["train"] >= initial_runs, (cluster_rules, initial_runs)
    assert cluster_rules["prepare"] >= 1, cluster_rules
    assert local_rules and not set(local_rules) & set(cluster_rules), (local_rules, cluster_rules)

    run_uuid = _run_uuid(output)
    rows = slurm_cluster.sacct(run_uuid, since)
    table = "\n".join("|".join(row.values()) for row in rows)
    assert sorted(row["JobID"] for row in rows) == sorted(slurm for _, slurm in submissions), table
    assert all(row["State"] == "COMPLETED" and row["ExitCode"] == "0:0" for row in rows), table
    assert all(row["JobName"] == run_uuid for row in rows), table
    # the plugin comments each job with its rule (and wildcards): rule_<rule>[_wildcards_<values>]
    by_comment = collections.Counter(_comment_rule(row["Comment"]) for row in rows)
    assert by_comment == cluster_rules, (by_comment, cluster_rules)
    # every compute job ran with the hub switched off and the absolute data directory (each job's log says so)
    expected = (f"maskbench job environment: {' '.join(f'{name}=1' for name in OFFLINE_VARIABLES)}, "
                f"data_dir={data_dir.resolve()}, ")
    logs = {path.stem: path.read_text(errors="replace")
            for path in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    for _, slurm_id in submissions:
        assert slurm_id in logs and expected in logs[slurm_id], (slurm_id, expected, logs.get(slurm_id, "")[-2000:])
    _report(capsys, slurm_cluster,
            f"CI workflow through SLURM: {wall:.0f} s wall, {len(rows)} SLURM jobs COMPLETED ({dict(cluster_rules)}), "
            f"{sum(local_rules.values())} local bookkeeping steps; sacct:\n{table}")


@pytest.mark.timeout(INSTALL_TIMEOUT + START_TIMEOUT + RETRY_TIMEOUT + 300)
def test_job_failing_on_first_attempt_succeeds_on_retry(slurm_cluster, tmp_path, capsys):
    workdir = tmp_path / "retry"
    workdir.mkdir()
    since = _sacct_since()
    started = time.perf_counter()
    code, output = _snakemake(slurm_cluster, RETRY_SNAKEFILE, workdir, timeout=RETRY_TIMEOUT)
    wall = time.perf_counter() - started
    assert code == 0, f"snakemake exited with {code}:\n{output[-6000:]}"
    assert (workdir / "flaky.done").read_text().strip() == "succeeded on attempt 2"

    submissions = _submissions(output)
    assert len(submissions) == 2 and submissions[0][0] == submissions[1][0], submissions
    first, second = (slurm for _, slurm in submissions)
    assert "Trying to restart job" in output
    # each attempt ran inside its own SLURM job
    attempts = [line.split() for line in (workdir / "attempts.txt").read_text().splitlines()]
    assert attempts == [["1", first], ["2", second]], attempts

    rows = {row["JobID"]: row for row in slurm_cluster.sacct(_run_uuid(output), since)}
    table = "\n".join("|".join(row.values()) for row in rows.values())
    assert set(rows) == {first, second}, table
    assert rows[first]["State"] == "FAILED" and rows[first]["ExitCode"] != "0:0", table
    assert rows[second]["State"] == "COMPLETED" and rows[second]["ExitCode"] == "0:0", table
    assert rows[first]["Comment"] == rows[second]["Comment"] == "rule_flaky", table
    _report(capsys, slurm_cluster, f"retry workflow through SLURM: {wall:.0f} s wall; sacct:\n{table}")


SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
SUBMISSION_TIMEOUT = 600    # two prepare jobs in one group job, then one training job: ~2-3 min


@pytest.mark.slow(seconds=150)
@pytest.mark.timeout(INSTALL_TIMEOUT + START_TIMEOUT + SUBMISSION_TIMEOUT + 300)
def test_training_job_gets_its_sbatch_arguments_and_short_jobs_are_one_group_job(slurm_cluster, tmp_path, data_dir,
                                                                                 capsys):
    """A training job is submitted with the profile's partition, account, GPU type (--gpus=<model>:1), node
    feature (-C), runtime, memory and threads, as SLURM's accounting records them; two data preparation jobs,
    grouped as profiles/slurm groups them, are one SLURM job."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    groups = profile["groups"]
    assert groups["prepare"] == groups["reference_model"] == groups["serving_memory"], groups
    config = yaml.safe_load(CI_CONFIG.read_text())
    lr = "0.0003"  # config/ci.yaml's finetuning grid
    assert config["lr_grid"]["finetuning"] == [3.0e-4]
    targets = ["results/prepared/minilm/trec", "results/prepared/minilm/mrpc",
               f"results/runs/minilm/trec/finetuning/lr{lr}/seed1/metrics.json"]
    since = _sacct_since()
    started = time.perf_counter()
    code, output = _snakemake(
        slurm_cluster, SNAKEFILE, workdir, "--configfile", str(CI_CONFIG), "--config", "tasks=[trec,mrpc]",
        "--groups", *(f"{rule}={group}" for rule, group in groups.items()),
        "--group-components", *(f"{group}={n}" for group, n in profile["group-components"].items()),
        "--verbose", *targets, timeout=SUBMISSION_TIMEOUT,
        env={"MASKBENCH_DATA_DIR": str(data_dir), "TOKENIZERS_PARALLELISM": "false"})
    wall = time.perf_counter() - started
    assert code == 0, f"snakemake exited with {code}:\n{output[-6000:]}"
    assert (workdir / targets[2]).is_file()

    # the executor's own log of each sbatch call
    calls = [call.split(" --wrap=")[0]
             for call in re.findall(r"^sbatch call: (sbatch .*)$", output, flags=re.MULTILINE)]
    # (a group job's Snakemake id is a UUID, which _submissions leaves out)
    submitted = re.findall(r"^Job (\S+) has been submitted with SLURM jobid (\d+)", output, flags=re.MULTILINE)
    assert len(calls) == 2 == len(submitted), (calls, submitted)
    train_call = next(call for call in calls if "rule_train_" in call)
    test_profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    expected = {"-p debug", "-A maskbench", "-t 10", "--gpus=stand_in:1", "-C stand_in", "--cpus-per-task=1"}
    assert all(part in train_call for part in expected), (expected, train_call)
    assert test_profile["set-resources"]["train"]["gpu_model"] == "stand_in"
    group_call = next(call for call in calls if "rule_train_" not in call)
    assert "--gpus" not in group_call and "-C " not in group_call, group_call

    # what SLURM recorded: one group job (both prepare jobs) and the training job with its resources
    fields = ["JobID", "State", "Comment", "Partition", "Account", "TimelimitRaw", "ReqTRES", "Constraints"]
    result = subprocess.run(
        ["sacct", "-X", "--parsable2", "--noheader", "--starttime", since, "--name", _run_uuid(output),
         f"--format={','.join(fields)}"], capture_output=True, text=True, env=slurm_cluster.env, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = [dict(zip(fields, line.split("|"))) for line in result.stdout.splitlines() if line.strip()]
    table = "\n".join("|".join(row.values()) for row in rows)
    assert len(rows) == 2 and all(row["State"] == "COMPLETED" for row in rows), table
    train = next(row for row in rows if row["Comment"].startswith("rule_train_"))
    group = next(row for row in rows if row is not train)
    assert group["Comment"].startswith(f"rule_{groups['prepare']}"), table  # rule_<group>_<its rules>
    assert (train["Partition"], train["Account"], train["TimelimitRaw"], train["Constraints"]) == (
        "debug", "maskbench", "10", "stand_in"), table
    tres = dict(item.split("=", 1) for item in train["ReqTRES"].split(","))
    assert tres["cpu"] == "1" and tres.get("gres/gpu:stand_in") == "1", tres
    assert int(tres["mem"].rstrip("M")) >= config["resources"]["train"]["mem_mb"], tres
    # both prepare jobs ran inside the one group job
    assert (workdir / "results/prepared/minilm/trec").is_dir() and (workdir / "results/prepared/minilm/mrpc").is_dir()
    assert re.search(r"^prepare\s+2$", output, flags=re.MULTILINE), output[-3000:]  # Snakemake's job counts
    _report(capsys, slurm_cluster, f"sbatch arguments and group job: {wall:.0f} s wall; sacct:\n{table}")
