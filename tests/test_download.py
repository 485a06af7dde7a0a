"""The download stage and the environment of the workflow's jobs (issue 13, item 7: clusters without internet on
compute nodes): models and task data fetched (or checked) into the caches on the submitting host, jobs offline,
relative data directories resolved once where the workflow was launched. No network: hub models come from a fake
hub cache (the layout snapshot_download leaves) or a stand-in for snapshot_download, hub data from a stand-in for
datasets.load_dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import huggingface_hub
import pytest
from datasets import Dataset, DatasetDict

from conftest import DATA_DIR, REPO, needs_data
from maskbench.cli import main
from maskbench.data import download as dl
from maskbench.io.errors import ConfigError, DataError, OutputError
from maskbench.io.locations import (
    LAUNCH_DIR_ENV,
    OFFLINE_VARIABLES,
    launch_directory,
    restore_offline_settings,
    shell_exports,
    workflow_environment,
)

HUB_MODEL = "maskbench-test/tiny-bert"  # a hub id that exists only in the fake caches below


def fake_hub_cache(cache: Path, repo_id: str, model_dir: Path, commit: str = "a" * 40) -> Path:
    """``cache`` (a hub cache, HF_HUB_CACHE) holding ``model_dir``'s files as ``repo_id``'s main revision."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in model_dir.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    return snapshot


@pytest.fixture
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


# --- resolving paths once, for every process ----------------------------------------------------------------


def test_launch_directory_is_the_shells_with_directory_and_the_working_directory_without(tmp_path):
    launch, work = tmp_path / "launch", tmp_path / "work"
    launch.mkdir()
    work.mkdir()
    assert launch_directory({"PWD": str(launch)}, work, directory_given=True) == launch
    assert launch_directory({"PWD": str(launch)}, work, directory_given=False) == work  # cwd is exact then
    assert launch_directory({}, work, directory_given=True) == work
    assert launch_directory({"PWD": "relative"}, work, directory_given=True) == work
    assert launch_directory({"PWD": str(tmp_path / "gone")}, work, directory_given=True) == work


def test_relative_paths_resolve_against_the_launch_directory_in_the_main_process_and_in_jobs(tmp_path):
    launch, work, node = tmp_path / "repo", tmp_path / "work", tmp_path / "node"
    for directory in (launch, work, node):
        directory.mkdir()
    environ = {"PWD": str(launch), "MASKBENCH_DATA_DIR": "../shared/data", "HF_HOME": "hf"}
    main_env = workflow_environment(None, None, environ, work, main_process=True, directory_given=True)
    assert main_env.data_dir == tmp_path / "shared" / "data" and not main_env.data_dir_configured
    assert main_env.caches == {"HF_HOME": str(launch / "hf")}
    shared = main_env.shared()
    assert shared[LAUNCH_DIR_ENV] == str(launch) and shared["MASKBENCH_DATA_DIR"] == str(tmp_path / "shared/data")
    assert not set(OFFLINE_VARIABLES) & set(shared)  # the main process (and the download stage) stays online
    assert all(main_env.jobs()[name] == "1" for name in OFFLINE_VARIABLES)

    # a job starts elsewhere (its node, the working directory) with the environment the main process exported,
    # and re-reads the configuration's relative data_dir / cache_dir: it arrives at the same paths
    job_env = workflow_environment("data", "cache", {**environ, **shared}, node, main_process=False)
    main_cfg = workflow_environment("data", "cache", environ, work, main_process=True, directory_given=True)
    assert job_env == main_cfg
    assert main_cfg.data_dir == launch / "data" and main_cfg.data_dir_configured
    assert main_cfg.caches == {"HF_HOME": str(launch / "cache"), "HF_HUB_CACHE": str(launch / "cache" / "hub"),
                               "HF_DATASETS_CACHE": str(launch / "cache" / "datasets")}


def test_the_download_stage_gets_the_launching_shells_hub_switches(tmp_path):
    prefix = restore_offline_settings({"HF_HUB_OFFLINE": "1"})
    assert prefix == "env -u HF_DATASETS_OFFLINE -u TRANSFORMERS_OFFLINE HF_HUB_OFFLINE=1"
    exports = shell_exports({name: "1" for name in OFFLINE_VARIABLES})
    script = f"{exports}{prefix} {sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'"
    seen = json.loads(subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout)
    assert seen.get("HF_HUB_OFFLINE") == "1"
    assert "HF_DATASETS_OFFLINE" not in seen and "TRANSFORMERS_OFFLINE" not in seen
    assert restore_offline_settings({}) == "env -u HF_HUB_OFFLINE -u HF_DATASETS_OFFLINE -u TRANSFORMERS_OFFLINE"
    assert shell_exports({"A": "x y"}) == "export A='x y'; " and shell_exports({}) == ""


# --- models ------------------------------------------------------------------------------------------------


def test_a_local_model_is_checked_not_fetched(tiny_bert_dir, tmp_path):
    assert dl.fetch_model("minilm")["source"] == "local"
    assert dl.fetch_model(str(tiny_bert_dir)) == {"source": "local", "path": str(tiny_bert_dir.resolve())}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        dl.fetch_model(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="does not exist"):
        dl.fetch_model(str(tmp_path / "missing"))


def test_a_cached_hub_model_is_found_offline(tiny_bert_dir, tmp_path, hub_offline):
    snapshot = fake_hub_cache(tmp_path / "cache" / "hub", HUB_MODEL, tiny_bert_dir)
    record = dl.fetch_model(HUB_MODEL, tmp_path / "cache")
    assert record["source"] == "hub" and record["path"] == str(snapshot) and record["revision"] == "a" * 40
    assert "config.json" in record["files"] and "tokenizer.json" in record["files"]


def test_a_hub_model_missing_offline_is_one_clear_error(tmp_path, hub_offline):
    with pytest.raises(ConfigError) as error:
        dl.fetch_model(HUB_MODEL, tmp_path / "cache")
    message = str(error.value)
    assert f"model {HUB_MODEL!r}: cannot fetch it" in message and str(tmp_path / "cache" / "hub") in message
    assert "HF_HUB_OFFLINE=1" in message and "\n" not in message


def test_online_fetch_skips_other_frameworks_weights(tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    files = ["config.json", "tokenizer.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5",
             "onnx/model.onnx"]
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo_id: files)
    calls = []

    def snapshot_download(repo_id, *, cache_dir=None, ignore_patterns=None):
        calls.append((repo_id, cache_dir, ignore_patterns))
        return str(fake_hub_cache(Path(cache_dir), repo_id, tiny_bert_dir))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    record = dl.fetch_model(HUB_MODEL, tmp_path / "cache")
    [(repo, cache, ignored)] = calls
    assert repo == HUB_MODEL and cache == tmp_path / "cache" / "hub" and record["source"] == "hub"
    assert {"*.bin", "*.h5", "onnx/*"} <= set(ignored)
    assert "*.bin" not in dl.ignore_patterns(["config.json", "pytorch_model.bin"])  # the only weights: fetched


# --- task data ---------------------------------------------------------------------------------------------


@needs_data
def test_local_task_files_are_checked_not_read(monkeypatch):
    monkeypatch.setenv("MASKBENCH_DATA_DIR", str(DATA_DIR))
    record = dl.fetch_task("trec")
    assert record["source"] == "local" and record["path"] == str((DATA_DIR / "trec").resolve())
    assert record["files"] >= 2 and record["bytes"] > 0


def test_a_hub_task_is_fetched_into_the_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("MASKBENCH_DATA_DIR", raising=False)
    calls = []

    def load_dataset(path, name=None, cache_dir=None):
        calls.append((path, name, cache_dir))
        split = Dataset.from_dict({"text": ["a", "b"], "coarse_label": [0, 1]})
        return DatasetDict({"train": split, "test": split.select([0])})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    record = dl.fetch_task("trec", cache_dir=tmp_path / "cache")
    assert calls == [("CogComp/trec", None, str(tmp_path / "cache" / "datasets"))]
    assert record == {"source": "hub", "dataset": "CogComp/trec", "config": None,
                      "cache": str(tmp_path / "cache" / "datasets"), "rows": {"train": 2, "test": 1}}


def test_task_data_that_cannot_be_found_or_fetched_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("MASKBENCH_DATA_DIR", raising=False)

    def unreachable(path, name=None, cache_dir=None):
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError, match=r"task 'sst2': cannot fetch 'nyu-mll/glue' \(sst2\).*MASKBENCH_DATA_DIR/sst2/"):
        dl.fetch_task("sst2")
    with pytest.raises(DataError, match="task 'sem' has no hub source"):
        dl.fetch_task("sem")
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="data directory .*trec does not exist"):
        dl.fetch_task("trec", tmp_path / "data")


# --- the manifest and the command line -------------------------------------------------------------------


def test_download_writes_a_manifest_and_reports_every_failure_at_once(tiny_bert_dir, tmp_path, monkeypatch,
                                                                       hub_offline):
    monkeypatch.delenv("MASKBENCH_DATA_DIR", raising=False)
    (tmp_path / "data" / "trec").mkdir(parents=True)
    (tmp_path / "data" / "trec" / "train.txt").write_text("NUM:date When ?\n")
    fake_hub_cache(tmp_path / "cache" / "hub", HUB_MODEL, tiny_bert_dir)
    out = tmp_path / "results" / "download" / "manifest.json"
    manifest = dl.download(["minilm", HUB_MODEL, "minilm"], ["trec"], out, tmp_path / "data", tmp_path / "cache")
    assert json.loads(out.read_text()) == json.loads(json.dumps(manifest))
    assert {name: record["source"] for name, record in manifest["models"].items()} == {"minilm": "local",
                                                                                       HUB_MODEL: "hub"}
    assert manifest["tasks"]["trec"]["source"] == "local" and manifest["hub_offline"] is True
    assert manifest["data_dir"] == str(tmp_path / "data") and manifest["cache_dir"] == str(tmp_path / "cache")
    dl.download(["minilm"], [], out)  # its own earlier manifest is replaced

    with pytest.raises(ConfigError) as error:
        dl.download(["other/model", "minilm"], ["sem", "trec"], tmp_path / "m2.json", tmp_path / "data")
    message = str(error.value)
    assert message.startswith("2 of 4 downloads failed: model 'other/model'") and "task 'sem'" in message
    assert not (tmp_path / "m2.json").exists()

    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(OutputError, match="refusing to replace it"):
        dl.download(["minilm"], [], tmp_path / "notes.json")


def test_cli_download_exits_2_with_one_line(tmp_path, capsys, hub_offline):
    out = tmp_path / "manifest.json"
    assert main(["download", "--models", "minilm", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"models": {"minilm": "local"}, "tasks": {}}
    assert main(["download", "--models", HUB_MODEL, "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"maskbench: error: model {HUB_MODEL!r}: cannot fetch it") and err.count("\n") == 1
    assert not (tmp_path / "other.json").exists()


# --- the workflow: launched elsewhere, relative data directory, jobs offline ------------------------------


def _snakemake(launch: Path, workdir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Snakemake started from ``launch`` (as a shell would: cwd and $PWD) with ``--directory workdir``."""
    environ = {name: value for name, value in os.environ.items() if name not in OFFLINE_VARIABLES}
    # online launching host unless ``env`` says otherwise; the jobs must not be
    environ.update({"TOKENIZERS_PARALLELISM": "false", "PWD": str(launch), **env})
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--cores", "1", *args]
    return subprocess.run(command, cwd=launch, env=environ, capture_output=True, text=True, timeout=600)


@needs_data
@pytest.mark.timeout(600)
def test_relative_data_dir_is_resolved_where_the_workflow_was_launched(tmp_path):
    launch, workdir = tmp_path / "launch", tmp_path / "work"
    launch.mkdir()
    relative = os.path.relpath(DATA_DIR.resolve(), launch)
    # targets before --configfile, which takes several values
    result = _snakemake(launch, workdir, "results/prepared/minilm/trec", "--configfile",
                        str(REPO / "config" / "ci.yaml"), env={"MASKBENCH_DATA_DIR": relative})
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert "localrule download:" in output
    results = workdir / "results"
    manifest = json.loads((results / "download" / "manifest.json").read_text())
    assert manifest["data_dir"] == os.path.normpath(launch / relative) and manifest["hub_offline"] is False
    assert manifest["tasks"]["trec"]["source"] == "local"
    # the job read the local files (offline, the hub was not an option): TREC's local sizes
    prepared = json.loads((results / "prepared" / "minilm" / "trec" / "prepared.json").read_text())
    assert prepared["sizes"] == {"train": 4904, "dev": 548, "test": 500}

    # the config's data_dir, relative too: the jobs get it as an absolute --data-dir
    plan = _snakemake(launch, workdir, "results/prepared/minilm/trec", "-n", "-p", "--forceall", "--configfile",
                      str(REPO / "config" / "ci.yaml"), "--config", f"data_dir={relative}", env={})
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert f"--data-dir {os.path.normpath(launch / relative)} " in plan.stdout + plan.stderr


@pytest.mark.timeout(600)
def test_jobs_read_a_hub_model_from_the_cache_offline(tiny_bert_dir, tmp_path):
    """A hub model in the configured cache (as the download stage leaves it): the download stage finds it with the
    hub switched off on the launching host too, and the data job loads its tokenizer from the cache, offline."""
    launch, workdir = tmp_path / "launch", tmp_path / "work"
    launch.mkdir()
    fake_hub_cache(launch / "hf-cache" / "hub", HUB_MODEL, tiny_bert_dir)
    (launch / "data" / "trec").mkdir(parents=True)
    (launch / "data" / "trec" / "train.txt").write_text("".join(
        f"{label}:x question {i} ?\n" for i, label in enumerate(["NUM", "LOC", "HUM", "DESC"] * 150)))
    (launch / "data" / "trec" / "test.txt").write_text("NUM:x How many ?\nLOC:x Where ?\n")
    config = launch / "config.yaml"
    config.write_text((REPO / "config" / "ci.yaml").read_text().replace(
        "models:\n  minilm: {name: minilm, label: MiniLM}",
        f"data_dir: data\ncache_dir: hf-cache\nmodels:\n  tiny: {{name: {HUB_MODEL}}}"))
    result = _snakemake(launch, workdir, "results/prepared/tiny/trec", "--configfile", str(config),
                        env={"HF_HUB_OFFLINE": "1", "MASKBENCH_DATA_DIR": ""})
    assert result.returncode == 0, result.stderr[-4000:]
    manifest = json.loads((workdir / "results" / "download" / "manifest.json").read_text())
    assert manifest["models"][HUB_MODEL]["source"] == "hub" and manifest["hub_offline"] is True
    assert manifest["models"][HUB_MODEL]["cache"] == str(launch / "hf-cache" / "hub")
    prepared = json.loads((workdir / "results" / "prepared" / "tiny" / "trec" / "prepared.json").read_text())
    assert prepared["model"] == HUB_MODEL and prepared["sizes"]["test"] == 2
