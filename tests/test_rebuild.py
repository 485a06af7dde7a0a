"""A committed record (kept without its masks or weights) gets its artefact back by training it again — and only if
the retrained run is the recorded one (maskbench.training.rebuild)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from maskbench.analysis.runs import load_run_model
from maskbench.io.errors import OutputError, RecordError
from maskbench.training.rebuild import rebuild_artefact, scratch_folder
from maskbench.training.train import TrainConfig, train


def _committed_run(tiny_bert_dir, data_dir, tmp_path, method: str, **overrides):
    """A finished run as the reference results keep it: its record and predictions, its artefact folder deleted;
    also the artefact's state for comparison (the run is trained once here, as the committed runs were)."""
    values = dict(method=method, model=str(tiny_bert_dir), task="sst2", seed=3, lr=1e-2, batch_size=8, epochs=2,
                  patience=2, max_train_examples=200, max_eval_examples=48, data_dir=str(data_dir),
                  out=str(tmp_path / "runs" / "tiny" / "sst2" / method / "lr0.01" / "seed3"),
                  save_weights=method == "finetuning")
    values.update(overrides)
    config = TrainConfig(**values)
    record = train(config)
    run_dir = tmp_path / "runs" / "tiny" / "sst2" / method / "lr0.01" / "seed3"
    folder = run_dir / ("model" if method == "finetuning" else "masks")
    model = load_run_model(run_dir)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    shutil.rmtree(folder)
    return run_dir, folder, record, state


@pytest.mark.parametrize("method", ["masking", "finetuning"])
def test_rebuild_restores_the_recorded_model(tiny_bert_dir, data_dir, tmp_path, method):
    """The rebuilt artefact loads into the very model the run trained (every tensor equal), the record is untouched
    and no scratch folder is left."""
    run_dir, folder, record, state = _committed_run(tiny_bert_dir, data_dir, tmp_path, method)
    metrics_before = (run_dir / "metrics.json").read_bytes()
    predictions_before = (run_dir / "predictions.safetensors").read_bytes()
    with pytest.raises(Exception):
        load_run_model(run_dir)  # without its artefact the run cannot be studied

    summary = rebuild_artefact(str(run_dir / "metrics.json"))

    assert folder.is_dir() and summary["artefact"] == str(folder)
    assert summary["dev_scores"] == record["dev_scores"]
    rebuilt = load_run_model(run_dir).state_dict()
    assert rebuilt.keys() == state.keys()
    assert all(torch.equal(rebuilt[name], state[name]) for name in state)
    assert (run_dir / "metrics.json").read_bytes() == metrics_before
    assert (run_dir / "predictions.safetensors").read_bytes() == predictions_before
    assert not scratch_folder(run_dir).exists()
    with pytest.raises(OutputError, match="already there"):
        rebuild_artefact(str(run_dir))


@pytest.mark.parametrize("method", ["masking", "finetuning"])
def test_rebuild_trains_only_up_to_the_best_epoch(tiny_bert_dir, data_dir, tmp_path, monkeypatch, method):
    """A run that went on for ``patience`` epochs after its best one is retrained only up to that epoch (the
    artefact is its state; the lr is constant): fewer epochs, and still the very model the run trained."""
    run_dir, folder, record, state = _committed_run(tiny_bert_dir, data_dir, tmp_path, method, epochs=3, patience=3)
    assert record["best_epoch"] < record["epochs_run"] == 3  # the premise: epochs after the best one were trained
    import maskbench.training.train as training

    retrained = []
    real_train = training.train

    def spy(config, stop_after_epoch=None):
        retrained.append(real_train(config, stop_after_epoch=stop_after_epoch))
        return retrained[-1]

    monkeypatch.setattr(training, "train", spy)
    rebuild_artefact(str(run_dir))

    assert [r["epochs_run"] for r in retrained] == [record["best_epoch"]]
    assert retrained[0]["dev_scores"] == record["dev_scores"][:record["best_epoch"]]
    rebuilt = load_run_model(run_dir).state_dict()
    assert all(torch.equal(rebuilt[name], state[name]) for name in state)


def test_a_retrained_run_that_stops_before_the_best_epoch_is_refused():
    """The comparison is not a prefix check that an empty or too-short retrained history passes."""
    from maskbench.training.rebuild import _differences

    record = {"dev_scores": [0.5, 0.75, 0.7], "best_epoch": 2, "test_score": 0.6, "config_hash": "h"}
    same = {"dev_scores": [0.5, 0.75], "best_epoch": 2, "test_score": 0.6, "config_hash": "h", "data": {"a": "1"}}
    assert not any(d.startswith("dev_scores") for d in _differences(record, same))
    for scores in ([], [0.5], [0.5, 0.8]):
        assert any(d.startswith("dev_scores") for d in _differences(record, dict(same, dev_scores=scores)))


def test_a_run_that_does_not_reproduce_is_refused(tiny_bert_dir, data_dir, tmp_path):
    """A record whose numbers the retrained run does not give (here: its dev scores edited, as another torch build
    could change them) gets no artefact: the error names what differs; the retrained run stays for inspection."""
    run_dir, folder, record, _ = _committed_run(tiny_bert_dir, data_dir, tmp_path, "masking")
    shifted = [score + 0.125 for score in record["dev_scores"]]  # a consistent record (its checks pass)
    edited = dict(record, dev_scores=shifted, dev_score=record["dev_score"] + 0.125,
                  history=[dict(entry, dev_score=score) for entry, score in zip(record["history"], shifted)])
    (run_dir / "metrics.json").write_text(json.dumps(edited))

    with pytest.raises(RecordError, match="not the recorded run — dev_scores: recorded"):
        rebuild_artefact(str(run_dir))
    assert not folder.exists()
    assert (scratch_folder(run_dir) / "metrics.json").is_file()


def test_a_record_of_other_settings_is_refused_before_training(tiny_bert_dir, data_dir, tmp_path):
    """A record whose settings do not hash to its recorded identity is refused before any training."""
    run_dir, folder, record, _ = _committed_run(tiny_bert_dir, data_dir, tmp_path, "masking")
    edited = dict(record, config=dict(record["config"], batch_size=16))
    (run_dir / "metrics.json").write_text(json.dumps(edited))
    with pytest.raises(RecordError, match="cannot be retrained as the same run"):
        rebuild_artefact(str(run_dir))
    assert not scratch_folder(run_dir).exists()


def test_rebuild_step_on_the_command_line(tmp_path):
    """The workflow's step: a missing run is a clear error (exit 2), not a traceback."""
    arguments = json.dumps({"run": str(tmp_path / "nowhere" / "seed1")})
    result = subprocess.run([sys.executable, "-m", "maskbench", "step", "rebuild", arguments],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "metrics.json" in result.stderr
