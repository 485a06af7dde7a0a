"""A training run killed with SIGKILL resumes from its last epoch checkpoint and ends with identical numbers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from maskbench.io.errors import ConfigError
from maskbench.training.settings import METHODS
from maskbench.training.train import TrainConfig, train


def _config(model_dir, data_dir, out, **overrides) -> TrainConfig:
    values = dict(method="masking", model=str(model_dir), task="sst2", seed=2, lr=1e-2, batch_size=8, epochs=2,
                  patience=2, max_train_examples=600, max_eval_examples=64, data_dir=str(data_dir), out=str(out))
    values.update(overrides)
    return TrainConfig(**values)


def _count_optimizer_steps(monkeypatch) -> list[int]:
    """Count Adam steps from now on (every method trains with Adam): one per training batch actually trained."""
    steps = [0]
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        steps[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    return steps


@pytest.mark.parametrize("method", METHODS)
def test_kill_and_resume_gives_identical_metrics(tiny_bert_dir, data_dir, tmp_path, method, monkeypatch, capsys):
    """The resumed run ends with the uninterrupted run's numbers, and it did resume: it says so, and it trains only
    the epochs after its checkpoint (counted in optimizer steps and in its per-epoch log lines). A run that restarted
    from scratch would give the same numbers (training is deterministic) and fail only these checks."""
    steps = _count_optimizer_steps(monkeypatch)
    reference = train(_config(tiny_bert_dir, data_dir, tmp_path / "reference", method=method))
    steps_per_epoch = steps[0] / reference["epochs_run"]
    assert steps_per_epoch == 600 / 8, steps  # (the count works: 600 examples in batches of 8 per epoch)

    run_dir = tmp_path / "killed"
    config = _config(tiny_bert_dir, data_dir, run_dir, method=method)
    code = (f"from maskbench.training.train import TrainConfig, train; "
            f"train(TrainConfig(**{config.to_dict()!r}))")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = run_dir / "checkpoint" / "state.json"
    deadline = time.monotonic() + 300
    while not (state_file.is_file() and json.loads(state_file.read_text())["epoch"] >= 1):
        assert process.poll() is None and time.monotonic() < deadline, "run ended before its first checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    done = json.loads(state_file.read_text())["epoch"]  # the epochs the checkpoint holds

    steps[0] = 0
    capsys.readouterr()
    resumed = train(config)
    log = capsys.readouterr().out
    assert f"resuming {run_dir} after epoch {done}" in log, log
    trained = [int(n) for n in re.findall(r"\] epoch (\d+): loss", log)]
    assert trained == list(range(done + 1, reference["epochs_run"] + 1)), log
    assert steps[0] == steps_per_epoch * len(trained)
    for key in ("history", "dev_score", "best_epoch", "epochs_run", "config_hash", "sparsity"):
        assert resumed[key] == reference[key], key
    a = load_file(run_dir / "predictions.safetensors")
    b = load_file(tmp_path / "reference" / "predictions.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert not (run_dir / "checkpoint").exists(), "checkpoint left behind after completion"


def test_checkpoint_of_another_configuration_is_refused(tiny_bert_dir, data_dir, tmp_path):
    config = _config(tiny_bert_dir, data_dir, tmp_path / "run", max_train_examples=16, epochs=1)
    import torch

    from maskbench.training.checkpoint import TrainingState, save_checkpoint

    model = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "run", "0123456789abcdef", TrainingState(epoch=1), model,
                    torch.optim.Adam(model.parameters()), torch.Generator())
    with pytest.raises(ConfigError, match="checkpoint of another configuration"):
        train(config)
