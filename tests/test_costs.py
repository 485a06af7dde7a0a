"""A run's costs (issue 32): its record stores CPU time, threads and the machine's load beside wall time, also across
a resume; and the masked and PEFT methods keep their frozen tensors out of autograd and the optimizer."""

from __future__ import annotations

import json

import psutil
import pytest
import torch

import maskbench.training.train as train_module
from maskbench.records import read_run_record
from maskbench.training.settings import METHODS
from maskbench.training.train import TrainConfig, train

COST_KEYS = ("train_cpu_time_s", "threads", "cpus", "machine_busy_cores", "other_busy_cores", "load_average")


def _config(model_dir, data_dir, out, **overrides) -> TrainConfig:
    values = dict(method="masking", model=str(model_dir), task="sst2", seed=3, lr=1e-2, batch_size=16, epochs=2,
                  patience=2, max_train_examples=64, max_eval_examples=32, data_dir=str(data_dir), out=str(out))
    values.update(overrides)
    return TrainConfig(**values)


def _check_sane(record: dict) -> None:
    wall, cpu = record["train_time_s"], record["train_cpu_time_s"]
    assert record["threads"] == torch.get_num_threads() and record["cpus"] >= 1
    assert 0 < cpu <= wall * record["cpus"] + 0.5, (cpu, wall)  # (0.5 s: clock granularity on a tiny run)
    # the machine's busy cores include this run's own; the others' are what remains
    assert record["machine_busy_cores"] >= 0 and record["other_busy_cores"] >= 0
    assert record["machine_busy_cores"] <= psutil.cpu_count() + 0.5  # (all the machine's cores, not only ours)
    assert record["machine_busy_cores"] >= record["other_busy_cores"]
    assert len(record["load_average"]) == 3 and all(value >= 0 for value in record["load_average"])


def test_a_run_records_cpu_time_threads_and_load(tiny_bert_dir, data_dir, tmp_path):
    """Fails on the code before issue 32: the record had wall time only."""
    returned = train(_config(tiny_bert_dir, data_dir, tmp_path / "run"))
    record = read_run_record(tmp_path / "run" / "metrics.json")  # valid against the record schema
    assert record == json.loads(json.dumps(returned))
    assert all(key in record for key in COST_KEYS), [key for key in COST_KEYS if key not in record]
    _check_sane(record)
    assert all(key not in record["config"] for key in COST_KEYS)  # not part of the run's identity


def test_cpu_time_adds_up_across_a_resume(tiny_bert_dir, data_dir, tmp_path, monkeypatch):
    """A run stopped after its first epoch's checkpoint resumes with that epoch's CPU time and adds the second's;
    one resumed from a checkpoint of an older maskbench (no CPU times) records them as unknown, not as zero."""
    original = train_module.save_checkpoint

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt  # (as a job killed right after its checkpoint)

    for name in ("run", "older"):
        monkeypatch.setattr(train_module, "save_checkpoint", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            train(_config(tiny_bert_dir, data_dir, tmp_path / name))
        monkeypatch.setattr(train_module, "save_checkpoint", original)
    state_file = tmp_path / "run" / "checkpoint" / "state.json"
    first = json.loads(state_file.read_text())
    assert first["epoch"] == 1 and first["train_cpu_time"] > 0 and first["machine_cpu_time"] > 0

    record = train(_config(tiny_bert_dir, data_dir, tmp_path / "run"))
    assert record["epochs_run"] == 2
    _check_sane(record)
    assert record["train_cpu_time_s"] > first["train_cpu_time"]

    older_file = tmp_path / "older" / "checkpoint" / "state.json"
    older = json.loads(older_file.read_text())
    del older["train_cpu_time"], older["machine_cpu_time"]
    older_file.write_text(json.dumps(older))
    record = train(_config(tiny_bert_dir, data_dir, tmp_path / "older"))
    assert record["epochs_run"] == 2
    assert record["train_cpu_time_s"] is None and record["machine_busy_cores"] is None
    assert record["other_busy_cores"] is None and record["threads"] >= 1
    read_run_record(tmp_path / "older" / "metrics.json")  # still a valid record


@pytest.mark.parametrize("method", METHODS)
def test_frozen_tensors_stay_out_of_autograd_and_the_optimizer(tiny_bert_dir, data_dir, tmp_path, monkeypatch,
                                                               method):
    """The optimizer holds exactly the parameters that require gradients, and after training no frozen parameter
    has a gradient (autograd never computed one); every method but finetuning freezes most of the model."""
    seen = {}
    original = train_module.load_checkpoint

    def capture(run_dir, run_hash, model, optimizer, *args, **kwargs):
        seen.update(model=model, optimizer=optimizer)
        return original(run_dir, run_hash, model, optimizer, *args, **kwargs)

    monkeypatch.setattr(train_module, "load_checkpoint", capture)
    lr = 1e-2 if method == "masking" else 1e-3
    train(_config(tiny_bert_dir, data_dir, tmp_path / method, method=method, lr=lr, epochs=1, patience=1))
    model, optimizer = seen["model"], seen["optimizer"]
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert optimized == {id(p) for p in trainable} and len(optimized) == len(trainable)
    assert not any(id(p) in optimized for p in frozen)
    assert all(p.grad is None for p in frozen)
    assert all(p.grad is not None for p in trainable)  # (the check above has teeth: training computed gradients)
    frozen_size = sum(p.numel() for p in frozen)
    if method == "finetuning":
        assert frozen_size == 0
    else:
        assert frozen_size > sum(p.numel() for p in trainable)
