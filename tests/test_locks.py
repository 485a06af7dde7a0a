"""One writer per output (issue 31, finding 2): ``train --out``, ``prepare --out``, ``predict --output`` and a
workflow's ``results_dir`` are each held by one process; a second one is refused with one line naming the holder.

Every case makes the first writer wait deterministically: a small process that holds the lock with the library
API (as train, prepare, predict or the workflow's main process do) and lets go when told, or a real ``maskbench
train`` paused at its output check, never a race of timings. On the code before maskbench.io.locks, every case fails:
the second writer runs (exit 0, or a workflow that plans and runs jobs), no message names a holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA_DIR, REPO, needs_data
from maskbench.cli import main
from maskbench.io.locks import TOKEN_ENV, OutputInUse, holder_file, lock_file

pytestmark = pytest.mark.xdist_group("locks")

#: the stand-in first writer: holds an output's lock (``output``) or a workflow's results_dir (``results``, printing
#: the token its jobs get), then waits for a line on stdin (or a signal)
HOLDER = textwrap.dedent("""
    import sys
    from maskbench.io.locks import OutputLock, hold_results_dir

    kind, path = sys.argv[1], sys.argv[2]
    if kind == "results":
        print(hold_results_dir(path), flush=True)  # released at exit
        sys.stdin.readline()
    else:
        lock = OutputLock(path).acquire()
        print("held", flush=True)
        sys.stdin.readline()
        lock.release()
""")

#: a real first ``maskbench train``: pauses after its output check (it holds the lock from the start) until told
PAUSED_TRAIN = textwrap.dedent("""
    import sys
    import maskbench.training.train as train_module

    real_check = train_module.check_run_directory

    def check_run_directory(*args, **kwargs):
        real_check(*args, **kwargs)
        print("paused", flush=True)
        sys.stdin.readline()

    train_module.check_run_directory = check_run_directory
    from maskbench.cli import main

    sys.argv = ["maskbench", *sys.argv[1:]]
    sys.exit(main(sys.argv[1:]))
""")


def _environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != TOKEN_ENV}
    env.update(PYTHONPATH=str(REPO / "src"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _started(process: subprocess.Popen, expected: str | None = None) -> str:
    """The first line the process prints (it has the lock then); fails with its stderr when it exits instead."""
    line = process.stdout.readline().strip()
    if not line or (expected is not None and line != expected):
        process.kill()
        raise AssertionError(f"holder did not start: {line!r} {process.stderr.read()[-3000:]}")
    return line


@contextlib.contextmanager
def holding(path: Path, kind: str = "output") -> Iterator[tuple[subprocess.Popen, str]]:
    """Another process holds ``path``'s lock (``kind`` output) or a workflow's results_dir (``results``) in the
    block; yields it and its first line (the workflow's token). It lets go (exits) at the end of the block."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment())
    try:
        yield process, _started(process)
    finally:
        if process.poll() is None:
            process.stdin.write("\n")
            process.stdin.flush()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
        process.stdin.close()


def _refusal(capsys) -> str:
    """The last line of stderr, checked to be maskbench's one-line error without a traceback."""
    err = capsys.readouterr().err.strip()
    line = err.splitlines()[-1]
    assert line.startswith("maskbench: error:") and "Traceback" not in err, err
    return line


def _holder_named(line: str, path: Path, pid: int, command: str) -> None:
    """``line`` is the refusal of ``path`` naming the holder ``pid`` on this host, its command and since when."""
    assert f"{path}: " in line and "in use by another maskbench process" in line, line
    assert f"(pid {pid} on host {socket.gethostname()}, '" in line and command in line and ", since 20" in line, line


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _no_lock_files(folder: Path) -> None:
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.lock*"))
    assert left == [], f"lock files left behind: {left}"


def _train_args(model: Path, data: Path, out: Path, lr: str, epochs: str = "1") -> list[str]:
    return ["train", "--method", "masking", "--task", "rte", "--lr", lr, "--epochs", epochs, "--model", str(model),
            "--data-dir", str(data), "--max-train-examples", "8", "--max-eval-examples", "8", "--max-length", "32",
            "--device", "cpu", "--out", str(out)]


# --- the CLI: train, prepare, predict ---------------------------------------------------------------------------


@needs_data
def test_two_train_processes_with_different_lrs_on_one_out(tiny_bert_dir, tmp_path, capsys):
    """The issue's case: both exited 0 and one silently replaced the other. Now the second exits 2 naming the
    first, and the first finishes with its own results."""
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-c", PAUSED_TRAIN, *_train_args(tiny_bert_dir, DATA_DIR, out, "1e-3")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_environment())
    try:
        _started(first, "paused")
        assert main(_train_args(tiny_bert_dir, DATA_DIR, out, "2e-3")) == 1  # held elsewhere: exit 1
        _holder_named(_refusal(capsys), out, first.pid, "'maskbench train --method masking --task rte --lr 1e-3")
        first.stdin.write("\n")
        first.stdin.flush()
        stdout, stderr = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["task"] == "rte"
    assert json.loads((out / "metrics.json").read_text())["lr"] == 1e-3  # the first's run, not the second's
    assert (out / "predictions.safetensors").is_file()
    _no_lock_files(tmp_path)


@needs_data
def test_prepare_refuses_a_held_folder_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "prepared" / "rte"
    with holding(out) as (holder, _):
        assert main(["prepare", "--task", "rte", "--data-dir", str(DATA_DIR), "--out", str(out)]) == 1
        _holder_named(_refusal(capsys), out, holder.pid, "'python -c")
        assert not out.exists()
    assert main(["prepare", "--task", "rte", "--data-dir", str(DATA_DIR), "--out", str(out)]) == 0  # let go: runs
    assert (out / "prepared.json").is_file()
    _no_lock_files(tmp_path)


def test_predict_refuses_a_held_output_file(tiny_bert_dir, tmp_path, capsys):
    from maskbench import MaskConfig, mask_model, save_masks
    from maskbench.data.models import load_model

    torch.manual_seed(0)
    model = load_model(str(tiny_bert_dir), "single", ("neg", "pos"))
    mask_model(model, MaskConfig(blocks="all"))
    masks = save_masks(model, tmp_path / "masks", base=str(tiny_bert_dir),
                       extra={"task": "sent", "kind": "single", "label_names": ["neg", "pos"]})
    requests = tmp_path / "in.jsonl"
    requests.write_text(json.dumps({"task": "sent", "text": "a fine film"}) + "\n")
    output = tmp_path / "out.jsonl"
    argv = ["predict", "--base", str(tiny_bert_dir), "--masks", str(masks), "--input", str(requests),
            "--output", str(output), "--device", "cpu"]
    with holding(output) as (holder, _):
        assert main(argv) == 1
        _holder_named(_refusal(capsys), output, holder.pid, "'python -c")
        assert not output.exists()
    assert main(argv) == 0 and json.loads(output.read_text())["label"] in ("neg", "pos")
    _no_lock_files(tmp_path)


@needs_data
def test_the_library_train_takes_the_lock(tiny_bert_dir, tmp_path):
    """``maskbench.training.train.train(config)`` (not only the CLI) refuses a held run folder, before any work."""
    from maskbench.training.train import TrainConfig, train

    out = tmp_path / "run"
    config = TrainConfig(method="masking", task="rte", model=str(tiny_bert_dir), lr=1e-3, epochs=1,
                         max_train_examples=8, max_eval_examples=8, max_length=32, device="cpu",
                         data_dir=str(DATA_DIR), out=str(out))
    with holding(out) as (holder, _):
        with pytest.raises(OutputInUse, match=rf"in use by another maskbench process \(pid {holder.pid} "):
            train(config)
        assert not out.exists()
    assert train(config)["lr"] == 1e-3
    _no_lock_files(tmp_path)


@needs_data
def test_a_killed_holder_releases_the_lock(tmp_path, capsys):
    """flock: a holder killed with SIGKILL (no clean-up) leaves its lock file, and the next run proceeds."""
    out = tmp_path / "prepared"
    with holding(out) as (holder, _):
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert lock_file(out).exists() and holder_file(out).exists()  # left by the killed holder
    assert main(["prepare", "--task", "rte", "--data-dir", str(DATA_DIR), "--out", str(out)]) == 0
    assert (out / "prepared.json").is_file()
    _no_lock_files(tmp_path)


# --- every name of an output, and every output inside a held folder (hypothesis) ------------------------------

BOUNDED = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow])


@pytest.fixture(scope="module")
def held_tree(tmp_path_factory) -> Iterator[tuple[Path, subprocess.Popen]]:
    """``ROOT/real/out`` held by another process; ``ROOT/link`` is a symbolic link to ``ROOT/real``."""
    root = tmp_path_factory.mktemp("held")
    (root / "real" / "sub").mkdir(parents=True)
    (root / "link").symlink_to(root / "real")
    with holding(root / "real" / "out") as (holder, _):
        yield root, holder


@BOUNDED
@given(parent=st.sampled_from(["real", "link", "real/sub/..", "link/sub/..", "./real", "real/."]),
       trailing=st.booleans(), relative=st.booleans())
def test_every_name_of_a_held_output_is_refused(held_tree, monkeypatch, parent, trailing, relative):
    """Symbolic links, '..', '.', a trailing slash, a relative path: one output, one lock."""
    from maskbench.data.prepare import prepare

    root, holder = held_tree
    name = f"{parent}/out" + ("/" if trailing else "")
    if relative:
        monkeypatch.chdir(root)
    path = name if relative else f"{root}/{name}"
    with pytest.raises(OutputInUse, match=rf"in use by another maskbench process \(pid {holder.pid} "):
        prepare("no-such-task", "minilm", path)  # refused before anything else (its task is checked next)


@BOUNDED
@given(parts=st.lists(st.sampled_from(["runs", "minilm", "rte", "masking", "lr0.001", "seed1", "x.jsonl"]),
                      min_size=1, max_size=5),
       via_link=st.booleans())
def test_every_output_inside_a_held_folder_is_refused(held_tree, parts, via_link):
    """Inside a folder another process holds (a run folder, a workflow's results_dir): refused, naming it."""
    from maskbench.data.prepare import prepare

    root, holder = held_tree
    inside = root / ("link" if via_link else "real") / "out" / Path(*parts)
    with pytest.raises(OutputInUse, match=rf"inside {root / 'real' / 'out'}, which is in use by another maskbench "
                                          rf"process \(pid {holder.pid} "):
        prepare("no-such-task", "minilm", inside)
    assert not (root / "real" / "out").exists()  # nothing created for a refused output


# --- the workflow -----------------------------------------------------------------------------------------------


def _checkout(destination: Path) -> Path:
    """A copy of this checkout's workflow (another clone of the repository)."""
    destination.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, destination / name)
    for name in ("workflow", "src"):
        shutil.copytree(REPO / name, destination / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    return destination


def _config(path: Path, results: Path, **training: int) -> Path:
    import yaml

    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config["results_dir"] = str(results)
    config["training"].update(training)
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(checkout: Path, workdir: Path, *args: str, background: bool = False):
    workdir.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(checkout / "Snakefile"), "--directory",
               str(workdir), *args]
    env = _environment(MASKBENCH_DATA_DIR=str(DATA_DIR))
    if background:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def _finished_run(results: Path) -> Path:
    """A finished run of the first workflow (its records; their contents do not matter here)."""
    run = results / "runs" / "minilm" / "trec" / "masking" / "lr0.001" / "seed1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"task": "trec", "method": "masking", "config_hash": "first"}))
    (run / "predictions.safetensors").write_bytes(b"the first workflow's predictions")
    return run


def _refused_before_any_job(result: subprocess.CompletedProcess, results: Path, what: str, pid: int) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert f"{what}" in output and "in use by another maskbench process" in output, output[-3000:]
    assert f"(pid {pid} on host {socket.gethostname()}, 'python -c" in output, output[-3000:]
    assert "rule " not in output and "Select jobs to execute" not in output, output[-3000:]  # no job started


def test_a_second_workflow_on_one_results_dir_is_refused_before_any_job(tmp_path):
    """The issue's case: two checkouts, other settings, one results_dir; the second's refused train job made
    Snakemake delete the first's finished records. The first's main process holds the results_dir (here the
    stand-in); the second workflow stops at parse time, naming it, and touches nothing."""
    results = tmp_path / "shared" / "results"
    _finished_run(results)
    before = _snapshot(results)
    second = _checkout(tmp_path / "second-checkout")
    config = _config(tmp_path / "second.yaml", results, max_train_examples=24)
    with holding(results, "results") as (holder, token):
        assert len(token) == 32
        result = _snakemake(second, tmp_path / "second-work", "--cores", "1", "--configfile", str(config))
        _refused_before_any_job(result, results, f"{results}: in use", holder.pid)
        assert _snapshot(results) == before
        # a dry run plans without the lock (and takes none): it gets as far as the records, and stops at the
        # stand-in record, which is no valid run record (maskbench.records), naming it — not at the lock
        planned = _snakemake(second, tmp_path / "second-work", "-n", "--configfile", str(config))
        output = planned.stdout + planned.stderr
        assert "in use by another maskbench process" not in output, output[-3000:]
        assert planned.returncode != 0 and "metrics.json" in output and "to train this run again" in output, \
            output[-3000:]
    assert _snapshot(results) == before
    _no_lock_files(tmp_path / "shared")


def test_a_workflow_is_refused_while_a_standalone_run_writes_inside_its_results_dir(tmp_path):
    """The other order: a standalone ``maskbench train`` already writes a run inside the results_dir; a workflow
    that would train that run (and delete its outputs when its own job is refused) does not start."""
    results = tmp_path / "results"
    run = results / "runs" / "minilm" / "trec" / "masking" / "lr0.001" / "seed1"
    config = _config(tmp_path / "ci.yaml", results)
    with holding(run) as (holder, _):
        result = _snakemake(REPO, tmp_path / "work", "--cores", "1", "--configfile", str(config))
        _refused_before_any_job(result, results, f"{run} is in use", holder.pid)
    assert not run.exists()


@needs_data
def test_a_standalone_writer_inside_a_held_results_dir_is_refused_but_the_workflows_jobs_are_not(
        tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    out = results / "prepared" / "minilm" / "rte"
    argv = ["prepare", "--task", "rte", "--data-dir", str(DATA_DIR), "--out", str(out)]
    with holding(results, "results") as (holder, token):
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        assert main(argv) == 1
        line = _refusal(capsys)
        assert f"{out}: inside {results}, which is in use by another maskbench process (pid {holder.pid} " in line
        monkeypatch.setenv(TOKEN_ENV, "0" * 32)  # another workflow's token
        assert main(argv) == 1
        monkeypatch.setenv(TOKEN_ENV, token)  # a job of the holding workflow
        assert main(argv) == 0
    assert (out / "prepared.json").is_file()
    _no_lock_files(tmp_path)


@needs_data
def test_a_running_workflow_holds_its_results_dir_while_its_jobs_write_there(tmp_path, capsys):
    """A real workflow (download and prepare jobs): its main process holds the results_dir from parse time until
    it exits; its jobs write there (they carry its token); a standalone writer meanwhile is refused."""
    results = tmp_path / "results"
    config = _config(tmp_path / "ci.yaml", results)
    target = results / "prepared" / "minilm" / "trec"
    workflow = _snakemake(REPO, tmp_path / "work", str(target), "--cores", "1", "--configfile", str(config),
                          background=True)
    try:
        holder = holder_file(results)
        deadline = time.monotonic() + 300
        while not holder.is_file():
            assert workflow.poll() is None, f"the workflow ended without holding {results}: {workflow.stdout.read()}"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        record = json.loads(holder.read_text())
        assert record["pid"] == workflow.pid and record["command"].startswith("snakemake") and record["token"]
        other = results / "prepared" / "minilm" / "rte"
        assert main(["prepare", "--task", "rte", "--data-dir", str(DATA_DIR), "--out", str(other)]) == 1
        assert f"inside {results}, which is in use by another maskbench process (pid {workflow.pid} " in \
            _refusal(capsys)
        output, _ = workflow.communicate(timeout=600)
    finally:
        workflow.kill()
    assert workflow.returncode == 0, output[-3000:]
    assert (target / "prepared.json").is_file() and not other.exists()
    _no_lock_files(tmp_path)


@pytest.mark.skipif(not (REPO / ".git").exists() or shutil.which("git") is None, reason="not a git checkout")
def test_lock_files_never_reach_a_commit():
    """Left behind by a killed holder, lock and holder files are ignored, also among the committed results."""
    lr = "results/reference/runs/minilm/mrpc/masking/lr0.001"
    paths = [f"{lr}/.seed1.lock", f"{lr}/.seed1.lock.holder", "results/.reference.lock",
             "results/.reference.lock.holder", "results/reference/prepared/minilm/.mrpc.lock", ".results.lock"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert sorted(result.stdout.split()) == sorted(paths)
