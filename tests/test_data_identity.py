"""The data a run read is part of its identity (issue 31, finding 3; maskbench.data.fingerprint).

A finished run, a half-finished run (its checkpoint) and a prepared cache record the fingerprint of the data they
were made from; a run on other data (same file names, another label) is refused with what changed, by the CLI and
by the workflow's planning, and a prepared cache of other data is made again.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA_DIR, needs_data, snakemake
from maskbench.cli import main
from maskbench.data import fingerprint
from maskbench.io.errors import DataError

LOCAL_TASKS = ["sst2", "mrpc", "cola", "rte", "qnli", "sem", "trec", "ag_news", "pos", "conll2003", "imdb"]


def _flip_label(path: Path, line: int = 2) -> None:
    """Another label on one line of a GLUE TSV (RTE: entailment <-> not_entailment); same file name and layout."""
    lines = path.read_text().split("\n")
    fields = lines[line - 1].split("\t")
    fields[-1] = "entailment" if fields[-1] == "not_entailment" else "not_entailment"
    lines[line - 1] = "\t".join(fields)
    path.write_text("\n".join(lines))


@pytest.fixture
def rte_data(data_dir, tmp_path) -> Path:
    """A private data directory holding a copy of the RTE files."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "rte", root / "rte")
    return root


# --- the fingerprint ----------------------------------------------------------------------------------------------


def test_every_task_declares_its_files_and_its_directory():
    from maskbench.data.tasks import TASKS

    assert set(fingerprint.SPLIT_FILES) == set(TASKS)
    for name, spec in TASKS.items():  # fingerprint.local_task_dir looks where tasks.load does
        assert spec.local_dir == name
        assert {"train", "dev"} | ({"test"} if spec.has_test else set()) == set(fingerprint.SPLIT_FILES[name]), name


@needs_data
@pytest.mark.parametrize("task", LOCAL_TASKS)
def test_the_declared_files_are_those_the_reader_reads(task, monkeypatch):
    """Every file the task's reader opens is declared for one of its splits, and nothing else is (11 tasks; QNLI
    with its offline stand-in)."""
    from maskbench.data import tasks

    opened = set()
    read_bytes, tar_open = pathlib.Path.read_bytes, tarfile.open

    def recording_read_bytes(self):
        opened.add(Path(self).resolve())
        return read_bytes(self)

    def recording_tar_open(name, *args, **kwargs):
        opened.add(Path(name).resolve())
        return tar_open(name, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_bytes", recording_read_bytes)
    monkeypatch.setattr(tarfile, "open", recording_tar_open)
    partial = task == "qnli"  # the offline copy lacks QNLI's train.tsv
    data = tasks.load(task, DATA_DIR, allow_partial=partial)
    declared = fingerprint.split_files(task, DATA_DIR / task, partial)
    assert set(declared) == set(data)
    assert {path.resolve() for paths in declared.values() for path in paths} == opened
    if task == "pos":  # the document split of readers.POS_FILE_SPLITS, file by file
        from maskbench.data.tasks.readers import POS_FILE_SPLITS

        for split, numbers in POS_FILE_SPLITS.items():
            assert [int(path.stem[4:]) for path in declared[split]] == list(numbers), split


@needs_data
def test_the_same_data_has_the_same_fingerprint_wherever_it_lives(tmp_path):
    """The fingerprint depends on the files' bytes only: not on the folder the data lives in, nor on mtimes."""
    copies = []
    for n, task in enumerate(("rte", "pos")):
        for where in ("a", "b/deeper"):
            shutil.copytree(DATA_DIR / task, tmp_path / where / task)
            for path in (tmp_path / where / task).rglob("*"):
                os.utime(path, ns=(10**18 + n, 10**18 + n))
        copies.append(task)
    for task in copies:
        original = fingerprint.task_fingerprint(task, DATA_DIR)
        assert original == fingerprint.task_fingerprint(task, tmp_path / "a")
        assert original == fingerprint.task_fingerprint(task, tmp_path / "b" / "deeper")
    assert fingerprint.task_fingerprint("rte", tmp_path / "a") == {
        "rte/train/train.tsv": fingerprint.file_checksum(DATA_DIR / "rte" / "train.tsv"),
        "rte/dev/dev.tsv": fingerprint.file_checksum(DATA_DIR / "rte" / "dev.tsv")}


SEM_FILES = {"train.tsv": "1\tt\tpositive\ta fine film\t\n2\tt\tnegative\tdull\t\n",
             "dev.tsv": "3\tt\tnegative\tnot good\t\n", "test.tsv": "4\tt\tpositive\tgreat\t\n",
             "devtest.tsv": "5\tt\tpositive\tunused\t\n"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["train.tsv", "dev.tsv", "test.tsv"]), position=st.floats(0, 1, exclude_max=True),
       byte=st.integers(0, 255))
def test_any_single_byte_change_of_a_file_a_task_reads_changes_its_fingerprint(tmp_path, name, position, byte):
    """A synthetic SemEval directory: any one byte of any file the reader reads, changed (in place: same size, and
    often the same mtime tick), changes the fingerprint of its split and names that file; devtest.tsv, which the
    reader does not read, is not part of it."""
    root = tmp_path / f"case{os.getpid()}-{abs(hash((name, position, byte)))}"
    for file, text in SEM_FILES.items():
        (root / "sem").mkdir(parents=True, exist_ok=True)
        (root / "sem" / file).write_text(text)
    before = fingerprint.task_fingerprint("sem", root)
    assert sorted(before) == ["sem/dev/dev.tsv", "sem/test/test.tsv", "sem/train/train.tsv"]
    path = root / "sem" / name
    data = bytearray(path.read_bytes())
    index = int(position * len(data))
    if data[index] == byte:
        byte = (byte + 1) % 256
    data[index] = byte
    path.write_bytes(bytes(data))
    after = fingerprint.task_fingerprint("sem", root)
    split = name.removesuffix(".tsv")
    assert {key for key in before if before[key] != after[key]} == {f"sem/{split}/{name}"}
    assert f"task sem split {split} file {name}: {before[f'sem/{split}/{name}'][:12]}" in \
        fingerprint.changes(before, after)
    shutil.rmtree(root)


def test_hub_rows_fingerprint_is_the_rows_content():
    from datasets import Dataset

    rows = {"text": ["a", "b", "c"], "label": [0, 1, 0]}
    one = fingerprint.dataset_fingerprint("trec", {"train": Dataset.from_dict(rows)}, "hub:x")
    assert one == fingerprint.dataset_fingerprint("trec", {"train": Dataset.from_dict(dict(rows))}, "hub:x")
    assert list(one) == ["trec/train/hub:x"]
    other = fingerprint.dataset_fingerprint("trec", {"train": Dataset.from_dict({**rows, "label": [0, 1, 1]})}, "hub:x")
    assert other != one


# --- the CLI: prepare, train, resume ------------------------------------------------------------------------------


def _train_args(out: Path, model: Path, *extra: str) -> list[str]:
    return ["train", "--method", "finetuning", "--task", "rte", "--lr", "1e-3", "--epochs", "1", "--max-length", "32",
            "--max-train-examples", "8", "--max-eval-examples", "8", "--model", str(model), "--out", str(out), *extra]


def _last_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    return err.splitlines()[-1]


def test_prepare_records_the_fingerprint_and_a_run_from_it_records_the_same(tiny_bert_dir, rte_data, tmp_path,
                                                                             capsys):
    prepared = tmp_path / "prepared"
    assert main(["prepare", "--task", "rte", "--model", str(tiny_bert_dir), "--max-length", "32", "--data-dir",
                 str(rte_data), "--out", str(prepared)]) == 0
    meta = json.loads((prepared / "prepared.json").read_text())
    assert meta["data"] == fingerprint.task_fingerprint("rte", rte_data)
    out = tmp_path / "run"
    assert main(_train_args(out, tiny_bert_dir, "--prepared", str(prepared))) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["data"] == meta["data"] and all(isinstance(v, str) for v in record["data"].values())
    assert "data" not in record["config"]  # the settings' identity (config_hash) is unchanged
    # a cache made by an older maskbench does not say what it was made from: refused, not trusted
    del meta["data"]
    (prepared / "prepared.json").write_text(json.dumps(meta))
    shutil.rmtree(out)
    capsys.readouterr()
    assert main(_train_args(out, tiny_bert_dir, "--prepared", str(prepared))) == 2
    error = _last_error(capsys)
    assert error.startswith(f"maskbench: error: {prepared / 'prepared.json'}: no record of the data") and \
        "run 'maskbench prepare' again" in error, error


def test_train_refuses_to_reuse_a_finished_runs_folder_with_other_data(tiny_bert_dir, rte_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train_args(out, tiny_bert_dir, "--data-dir", str(rte_data))) == 0
    record = (out / "metrics.json").read_text()
    old = fingerprint.file_checksum(rte_data / "rte" / "dev.tsv")
    _flip_label(rte_data / "rte" / "dev.tsv")
    new = fingerprint.file_checksum(rte_data / "rte" / "dev.tsv")
    capsys.readouterr()
    assert main(_train_args(out, tiny_bert_dir, "--data-dir", str(rte_data))) == 2
    error = _last_error(capsys)
    assert error.startswith(f"maskbench: error: {out / 'metrics.json'}: the finished run was made from other data")
    assert f"task rte split dev file dev.tsv: {old[:12]} → {new[:12]}" in error, error
    assert (out / "metrics.json").read_text() == record  # kept as it was


def test_a_resume_with_another_data_dir_is_refused(tiny_bert_dir, rte_data, tmp_path, monkeypatch):
    """A run killed after its first epoch resumes only on the data it started on."""
    from maskbench.training import train as training
    from maskbench.training.settings import TrainConfig

    class Killed(Exception):
        pass

    save = training.save_checkpoint

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        raise Killed

    other = tmp_path / "other"
    shutil.copytree(rte_data, other)
    _flip_label(other / "rte" / "train.tsv", line=5)
    out = tmp_path / "run"
    values = dict(method="finetuning", model=str(tiny_bert_dir), task="rte", seed=1, lr=1e-3, batch_size=4, epochs=2,
                  patience=2, max_length=32, max_train_examples=8, max_eval_examples=8, out=str(out))
    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        training.train(TrainConfig(**values, data_dir=str(rte_data)))
    monkeypatch.setattr(training, "save_checkpoint", save)
    state = (out / "checkpoint" / "state.json").read_text()
    assert json.loads(state)["data"] == fingerprint.task_fingerprint("rte", rte_data)
    with pytest.raises(DataError, match=r"checkpoint: the checkpoint was made from other data than this run reads "
                                        r"\(task rte split train file train.tsv: "):
        training.train(TrainConfig(**values, data_dir=str(other)))
    assert (out / "checkpoint" / "state.json").read_text() == state and not (out / "metrics.json").exists()
    # a checkpoint that does not say what it read (an older maskbench) is not resumed either
    (out / "checkpoint" / "state.json").write_text(json.dumps({k: v for k, v in json.loads(state).items()
                                                               if k != "data"}))
    with pytest.raises(DataError, match="the checkpoint has no record of the data it read"):
        training.train(TrainConfig(**values, data_dir=str(rte_data)))
    (out / "checkpoint" / "state.json").write_text(state)
    resumed = training.train(TrainConfig(**values, data_dir=str(rte_data)))  # the same data: resumed, finished
    assert resumed["epochs_run"] == 2 and resumed["data"] == json.loads(state)["data"]


# --- the workflow -------------------------------------------------------------------------------------------------


@needs_data
@pytest.mark.slow(seconds=120)
@pytest.mark.timeout(900)
def test_the_workflow_refuses_a_finished_run_of_other_data_and_prepares_changed_data_again(tiny_bert_dir, rte_data,
                                                                                          tmp_path):
    from test_workflow import job_counts

    config = {"results_dir": "results", "data_dir": str(rte_data),
              "models": {"tiny": {"name": str(tiny_bert_dir), "label": "Tiny"}}, "tasks": ["rte"],
              "methods": ["finetuning"], "seeds": [1], "lr_grid": {"finetuning": [3.0e-4]},
              "training": {"batch_size": 8, "epochs": 1, "patience": 1, "max_length": 32, "max_train_examples": 16,
                           "max_eval_examples": 16},
              "resources": {"train": {"threads": 1, "mem_mb": 2000, "runtime": 10},
                            "prepare": {"mem_mb": 2000, "runtime": 10}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "results" / "runs" / "tiny" / "rte" / "finetuning" / "lr0.0003" / "seed1"
    target = str((run / "metrics.json").relative_to(tmp_path))
    done = snakemake(tmp_path, target, "--cores", "1", "--configfile", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["data"] == fingerprint.task_fingerprint("rte", rte_data)

    # the run set aside: with the same data only the run is planned, the prepared cache is reused ...
    aside = tmp_path / "aside"
    run.rename(aside)
    plan = snakemake(tmp_path, target, "-n", "--configfile", str(path))
    assert job_counts(plan.stdout + plan.stderr) == {"train": 1}, plan.stdout[-3000:]
    # ... with a label changed, the cache made from the old data is made again
    old = fingerprint.file_checksum(rte_data / "rte" / "train.tsv")
    _flip_label(rte_data / "rte" / "train.tsv")
    new = fingerprint.file_checksum(rte_data / "rte" / "train.tsv")
    plan = snakemake(tmp_path, target, "-n", "--configfile", str(path))
    assert job_counts(plan.stdout + plan.stderr) == {"prepare": 1, "train": 1}, plan.stdout[-3000:]

    # the finished run of the old data is refused at planning, saying what changed
    aside.rename(run)
    plan = snakemake(tmp_path, "-n", "--configfile", str(path))
    message = plan.stdout + plan.stderr
    assert plan.returncode != 0 and "holds a finished run that was made from other data than this configuration " \
        f"reads (task rte split train file train.tsv: {old[:12]} → {new[:12]})" in message, message[-3000:]

    # a record without a fingerprint (an older maskbench) is not trusted: planning says how to add it
    shutil.copy(DATA_DIR / "rte" / "train.tsv", rte_data / "rte" / "train.tsv")
    record = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({k: v for k, v in record.items() if k != "data"}, indent=2))
    plan = snakemake(tmp_path, "-n", "--configfile", str(path))
    message = plan.stdout + plan.stderr
    assert plan.returncode != 0 and "has no record of the data it read" in message, message[-3000:]
    step = [sys.executable, "-m", "maskbench.cli", "step", "data-fingerprints",
            json.dumps({"results_dir": str(tmp_path / "results"), "data_dir": str(rte_data)})]
    migrated = subprocess.run(step, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text()) == record  # the same fingerprint the run recorded
    plan = snakemake(tmp_path, target, "-n", "--configfile", str(path))
    assert plan.returncode == 0 and "train" not in job_counts(plan.stdout + plan.stderr), plan.stdout[-3000:]


@needs_data
def test_every_committed_record_names_the_data_it_was_trained_on():
    """The migrated reference records (results/reference/runs, 160): each names the files of its task's splits (and
    of its Table 3 targets) under the offline data directory, checksums as they are now."""
    from conftest import REPO

    runs = sorted((REPO / "results" / "reference").glob("runs/*/*/*/*/*/metrics.json"))
    assert runs
    for path in runs:
        record = json.loads(path.read_text())
        assert record["data"] == fingerprint.record_fingerprint(record, DATA_DIR), path
        assert {key.split("/")[1] for key in record["data"] if key.startswith(f"{record['task']}/")} == \
            set(record["sizes"]), path


def test_a_task_without_a_file_declaration_counts_every_file_of_its_folder(tmp_path):
    """A newly added task (the CONTRIBUTING recipe registers one reader and no SPLIT_FILES entry) is still
    fingerprinted: every file of its folder feeds every split, so a change of any of them is seen."""
    from maskbench.data.fingerprint import ALL_SPLITS, SPLIT_FILES, local_fingerprint

    assert "toy" not in SPLIT_FILES
    folder = tmp_path / "toy"
    (folder / "sub").mkdir(parents=True)
    (folder / "train.tsv").write_text("a\t0\n")
    (folder / "sub" / "dev.tsv").write_text("b\t1\n")
    (folder / ".hidden").write_text("editor state")
    before = local_fingerprint("toy", folder, splits=["dev"])
    assert sorted(before) == [f"toy/{ALL_SPLITS}/sub/dev.tsv", f"toy/{ALL_SPLITS}/train.tsv"]
    (folder / "train.tsv").write_text("a\t1\n")
    after = local_fingerprint("toy", folder, splits=["dev"])
    assert after[f"toy/{ALL_SPLITS}/train.tsv"] != before[f"toy/{ALL_SPLITS}/train.tsv"]
    assert after[f"toy/{ALL_SPLITS}/sub/dev.tsv"] == before[f"toy/{ALL_SPLITS}/sub/dev.tsv"]


@needs_data
def test_table3_targets_a_run_did_not_score_are_not_part_of_its_data(tmp_path):
    """A source or target added to Table 3 after a run finished (SST-2 <-> SEM next to SST-2 -> IMDB) does not refuse
    the finished run: it did not read that target, and the Table 3 step scores it from the rebuilt model. Its own
    task's files, and a target it did score from other files than there are now, still refuse it."""
    from maskbench.data.fingerprint import data_changes, run_fingerprint

    config = {"task": "sst2", "transfer": "sst2,imdb", "transfer_split": "dev"}
    recorded = run_fingerprint(config, DATA_DIR, ["train", "dev"])
    assert any(key.startswith("imdb/dev/") for key in recorded)
    record = {"sizes": {"train": 10000, "dev": 872}, "data": recorded}
    path = tmp_path / "metrics.json"
    added = {**config, "transfer": "sst2,sem,imdb"}
    assert data_changes(path, record, added, DATA_DIR) is None  # SEM: not read by the run, not its identity
    assert data_changes(path, record, {"task": "sst2"}, DATA_DIR) is None  # IMDB no longer asked for
    sem = {"task": "sem", "transfer": "sst2,sem,imdb", "transfer_split": "dev"}
    sem_record = {"sizes": {"train": 1, "dev": 1, "test": 1}, "data": run_fingerprint({"task": "sem"}, DATA_DIR)}
    assert data_changes(path, sem_record, sem, DATA_DIR) is None  # a grid run made before SEM was a source

    imdb = next(key for key in recorded if key.startswith("imdb/"))
    stale = {**record, "data": {**recorded, imdb: "0" * 64}}
    refused = data_changes(path, stale, added, DATA_DIR)
    assert refused is not None and "task imdb split dev" in refused  # its recorded IMDB score is of other data
    own = next(key for key in recorded if key.startswith("sst2/train/"))
    other = {**record, "data": {**recorded, own: "0" * 64}}
    assert "task sst2 split train" in data_changes(path, other, added, DATA_DIR)
    lost = {**record, "data": {key: value for key, value in recorded.items() if key != own}}
    assert "task sst2 split train" in data_changes(path, lost, added, DATA_DIR)  # its own split: never optional
