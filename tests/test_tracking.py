"""Experiment tracking (``report_to``, :mod:`maskbench.training.tracking`) read back with the trackers' own readers, the
resource numbers of ``metrics.json``, and job logs without progress-bar updates.

On the code before tracking: ``--report-to`` is an unknown option (exit 2), ``metrics.json`` has no
``epoch_times_s``/``peak_rss_bytes``, a run folder holding ``tracking/`` is refused, and a job log holds ``\\r``
updates of the tokenising and weight-loading bars.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, needs_data, save_tiny_bert, snakemake
from maskbench.io.errors import ConfigError
from maskbench.training.settings import TrainConfig, command_line, run_identity
from maskbench.training.tracking import TRACKERS, Tracker, Trackers, open_trackers

#: the tests of the one tracked run (a module fixture) share one pytest-xdist worker
tracked = pytest.mark.xdist_group("tracked_run")
EPOCHS = 2
STEPS_PER_EPOCH = 4  # 32 examples in batches of 8
LOGGING_STEPS = 2


def _config(**overrides) -> TrainConfig:
    return TrainConfig(**{"method": "masking", "model": "minilm", "task": "sst2", "lr": 1e-3, "out": "run",
                          **overrides})


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("none", None), ("tensorboard", "tensorboard"),
    ("mlflow, tensorboard", "tensorboard,mlflow"), (["wandb", "mlflow"], "mlflow,wandb"),
    ("all", ",".join(TRACKERS)), ("TensorBoard", "tensorboard")])
def test_report_to_is_one_canonical_string_that_does_not_change_a_run_s_identity(value, expected):
    config = _config(report_to=value, logging_steps=7)
    assert config.report_to == expected
    assert run_identity(config.to_dict()) == run_identity(_config().to_dict())  # where it logs is not what
    from maskbench.cli import build_parser
    from maskbench.training.settings import from_arguments

    parsed = build_parser().parse_args(["train", *command_line(config)])
    assert from_arguments(parsed) == config


@pytest.mark.parametrize("value", ["tensorbord", "tensorboard,tensorboard", "none,mlflow", 3, ["mlflow", 1]])
def test_a_wrong_report_to_is_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"^report_to: expected"):
        _config(report_to=value)


def test_logging_steps_must_be_positive():
    with pytest.raises(ConfigError, match="logging_steps"):
        _config(logging_steps=0)


@pytest.mark.parametrize("name, module, package", [("tensorboard", "torch.utils.tensorboard", "tensorboard"),
                                                   ("mlflow", "mlflow", "mlflow-skinny"),
                                                   ("wandb", "wandb", "wandb")])
def test_a_missing_tracker_package_is_named_with_what_to_install(name, module, package, monkeypatch, tmp_path):
    for loaded in [name for name in sys.modules if name.startswith(f"{module}.")] + [module]:
        monkeypatch.setitem(sys.modules, loaded, None)  # import fails as if not installed (also if imported)
    with pytest.raises(ConfigError, match=rf"^report_to: {name} needs the Python package '{package}'.*"
                                          rf"pip install {package}"):
        open_trackers([name], tmp_path / "run", "run", {"lr": 1.0})


def test_a_run_with_a_missing_tracker_stops_before_reading_data(monkeypatch, tmp_path):
    from maskbench.training.train import train

    monkeypatch.setitem(sys.modules, "wandb", None)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="report_to: wandb needs"):
        train(_config(report_to="wandb", data_dir=str(tmp_path / "no-data-here"), out=str(out)))
    assert not (out / "metrics.json").exists()


def test_a_run_that_fails_after_its_trackers_started_ends_their_runs_as_failed(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from maskbench.io.errors import DataError
    from maskbench.training.train import train

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    with pytest.raises(DataError):  # no task files there: fails after the trackers started, before training
        train(_config(report_to="mlflow", data_dir=str(tmp_path / "no-data-here"), out=str(out)))
    client = MlflowClient(tracking_uri=(out / "tracking" / "mlruns").as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("maskbench").experiment_id])
    assert run.info.status == "FAILED" and run.data.params["report_to"] == "mlflow"


class _Broken(Tracker):
    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def log_params(self, params) -> None:
        self.calls += 1

    def log_metrics(self, metrics, step, axis) -> None:
        raise ConnectionError("tracking server gone\nsecond line")

    def close(self, final, status) -> None:
        self.calls += 1


def test_a_tracker_that_fails_during_a_run_is_reported_once_and_dropped(capsys):
    broken = _Broken()
    trackers = Trackers([broken])
    trackers.log_metrics({"train/loss": 1.0}, 1)
    trackers.log_metrics({"train/loss": 1.0}, 2)
    trackers.close({"final/dev_score": 0.5})
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["maskbench: warning: report_to broken: log_metrics failed (tracking server gone); no more "
                   "tracking to broken in this run"]
    assert broken.calls == 0 and not trackers


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """One tiny masking run with ``--report-to tensorboard,mlflow``, its output written to a log file (as a
    workflow job's ``> log 2>&1``): (run folder, log text, exit code)."""
    from conftest import DATA_DIR, require_data

    require_data()


    root = tmp_path_factory.mktemp("tracked")
    model = root / "tiny-bert"
    save_tiny_bert(model)
    out, log = root / "run", root / "train.log"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MLFLOW_", "WANDB_", "HF_DATASETS_DISABLE", "HF_HUB_DISABLE"))}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO / "src"))
    command = [sys.executable, "-m", "maskbench", "train", "--method", "masking", "--task", "sst2", "--model",
               str(model), "--data-dir", str(DATA_DIR), "--lr", "1e-2", "--epochs", str(EPOCHS), "--patience", "5",
               "--batch-size", "8", "--max-train-examples", "32", "--max-eval-examples", "16",
               "--logging-steps", str(LOGGING_STEPS), "--report-to", "tensorboard,mlflow", "--out", str(out)]
    with log.open("w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=600).returncode
    return out, log.read_text(), code


@needs_data
@tracked
def test_tensorboard_s_reader_lists_loss_per_step_and_dev_per_epoch(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, log, code = tracked_run
    assert code == 0, log[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    events = EventAccumulator(str(out / "tracking" / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "epoch/dev_score", "epoch/train_loss", "epoch/time_s"} <= set(scalars)
    loss = events.Scalars("train/loss")
    assert [event.step for event in loss] == list(range(LOGGING_STEPS, EPOCHS * STEPS_PER_EPOCH + 1, LOGGING_STEPS))
    assert all(0 < event.value < 5 for event in loss)
    assert [event.value for event in events.Scalars("train/lr")] == pytest.approx([1e-2] * len(loss))
    dev = events.Scalars("epoch/dev_score")
    assert [event.step for event in dev] == [1, 2]
    assert [event.value for event in dev] == pytest.approx(record["dev_scores"])
    assert [event.value for event in events.Scalars("epoch/time_s")] == pytest.approx(record["epoch_times_s"])
    assert events.Scalars("final/dev_score")[0].value == pytest.approx(record["dev_score"])
    assert "settings/text_summary" in events.Tags()["tensors"]  # the run's settings


@needs_data
@tracked
def test_mlflow_s_client_reads_the_run_back_with_its_settings(tracked_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    out, log, code = tracked_run
    assert code == 0, log[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3: the file store is opt-in
    client = MlflowClient(tracking_uri=(out / "tracking" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("maskbench")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "sst2-masking-lr0.01-seed1"
    params = run.data.params
    assert params["lr"] == "0.01" and params["method"] == "masking" and params["batch_size"] == "8"
    assert params["config_hash"] == record["config_hash"] == run.data.tags["config_hash"]
    assert params["mask.threshold"] == str(record["config"]["mask"]["threshold"])
    history = client.get_metric_history(run.info.run_id, "epoch/dev_score")
    assert [(m.step, m.value) for m in history] == [(n + 1, pytest.approx(v)) for n, v in
                                                    enumerate(record["dev_scores"])]
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(steps) == list(range(LOGGING_STEPS, EPOCHS * STEPS_PER_EPOCH + 1, LOGGING_STEPS))
    assert run.data.metrics["final/dev_score"] == pytest.approx(record["dev_score"])


@needs_data
@tracked
def test_metrics_json_records_epoch_times_and_peak_memory(tracked_run):
    from maskbench.records import check_run_directory, read_run_record

    out, log, code = tracked_run
    assert code == 0, log[-3000:]
    record = read_run_record(out / "metrics.json")  # valid against the record schema
    assert len(record["epoch_times_s"]) == record["epochs_run"] == EPOCHS
    assert all(time > 0 for time in record["epoch_times_s"])
    assert all(set(entry) == {"epoch", "train_loss", "dev_score"} for entry in record["history"])  # as before
    assert record["peak_rss_bytes"] > 50 * 2**20  # torch alone takes more
    assert record["cuda_max_allocated_bytes"] is None  # on CPU
    assert record["config"]["report_to"] == "tensorboard,mlflow" and record["config"]["logging_steps"] == 2
    check_run_directory(out, record["config_hash"])  # a folder with tracking/ is still this run's folder


@needs_data
@tracked
def test_a_log_written_to_a_file_has_one_line_per_epoch_and_no_carriage_returns(tracked_run):
    out, log, code = tracked_run
    assert code == 0, log
    assert "\r" not in log, log[:2000]
    epochs = [line for line in log.splitlines() if "] epoch " in line]
    assert len(epochs) == EPOCHS and all(f"epoch {n}: loss" in line for n, line in enumerate(epochs, 1)), log
    assert len(log.splitlines()) <= EPOCHS + 3, log  # nothing per step (the trackers have it)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed (optional extra)")
def test_wandb_logs_offline_without_an_account(tmp_path):
    # in a process of its own, as a training job: wandb writes no run data where PYTEST_CURRENT_TEST is set
    script = ("import sys; from pathlib import Path; from maskbench.training.tracking import open_trackers; "
              "t = open_trackers(['wandb'], Path(sys.argv[1]), 'sst2-masking', "
              "{'lr': 0.01, 'mask': {'threshold': 0}}); "
              "t.log_metrics({'train/loss': 0.7, 'train/lr': 0.01}, 2); "
              "t.log_metrics({'epoch/dev_score': 0.5}, 1, 'epoch'); t.close({'final/dev_score': 0.5})")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WANDB_", "PYTEST_"))}
    env["PYTHONPATH"] = str(REPO / "src")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = (tmp_path / "run" / "tracking" / "wandb").glob("offline-run-*")  # offline: nothing was sent
    [data] = run.glob("run-*.wandb")
    content = data.read_bytes()
    assert b"epoch/dev_score" in content and b"train/loss" in content and b"mask.threshold" in content


@needs_data
@pytest.mark.slow(seconds=40)
@pytest.mark.timeout(900)
def test_a_workflow_job_log_has_one_line_per_epoch_and_the_run_its_events(tmp_path, tiny_bert_dir):
    from maskbench.results.selection import format_lr

    config = {"results_dir": "results", "models": {"tiny": {"name": str(tiny_bert_dir), "label": "Tiny"}},
              "tasks": ["trec"], "methods": ["finetuning"], "seeds": [1], "lr_grid": {"finetuning": [1.0e-3]},
              "training": {"batch_size": 16, "epochs": 2, "patience": 2, "max_length": 32,
                           "max_train_examples": 32, "max_eval_examples": 16, "report_to": ["tensorboard"]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = Path("results/runs/tiny/trec/finetuning") / f"lr{format_lr(1e-3)}" / "seed1"
    result = snakemake(tmp_path, str(run / "metrics.json"), "--cores", "1", "--configfile",
                       str(tmp_path / "config.yaml"))
    assert result.returncode == 0, result.stderr[-4000:]
    [log] = (tmp_path / "results" / "logs" / "train").rglob("*.log")
    text = log.read_text()
    assert "\r" not in text, text[:2000]
    assert len([line for line in text.splitlines() if "] epoch " in line]) == 2, text
    assert list((tmp_path / run / "tracking" / "tensorboard").glob("events.out.tfevents.*"))
    recorded = json.loads((tmp_path / run / "metrics.json").read_text())
    assert recorded["config"]["report_to"] == "tensorboard" and len(recorded["epoch_times_s"]) == 2
    for prepare_log in (tmp_path / "results" / "logs").rglob("*.log"):  # the prepare job's tokenising too
        assert "\r" not in prepare_log.read_text(), prepare_log
