"""Every task trains with both methods; one short real run per task kind with the offline model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from conftest import DATA_DIR, check_recorded_scores, needs_data
from maskbench.data.tasks import TASKS
from maskbench.training.train import TrainConfig, train

FIXTURES = Path(__file__).parent / "fixtures"


def _run(model: str, task: str, method: str, out: Path, **overrides) -> dict:
    values = dict(method=method, model=model, task=task, seed=1, lr=1e-3 if method == "masking" else 1e-4,
                  batch_size=8, epochs=1, max_train_examples=16, max_eval_examples=16,
                  data_dir=str(FIXTURES if task == "swag" else DATA_DIR), allow_partial=task == "qnli", out=str(out))
    values.update(overrides)
    return train(TrainConfig(**values))


@pytest.mark.parametrize("method", ["masking", "finetuning"])
@pytest.mark.parametrize("task", [t if t == "swag" else pytest.param(t, marks=needs_data) for t in sorted(TASKS)])
def test_every_task_trains_with_both_methods(tiny_bert_dir, tmp_path, task, method):
    metrics = _run(str(tiny_bert_dir), task, method, tmp_path / "run")
    spec = TASKS[task]
    assert metrics["metric"] == spec.metric and metrics["dev_score"] is not None
    assert (metrics["test_score"] is not None) == ("test" in metrics["sizes"])
    check_recorded_scores(tmp_path / "run")  # the recorded scores are those of the saved predictions
    predictions = {key: value.numpy() for key, value in load_file(tmp_path / "run" / "predictions.safetensors").items()}
    width = 4 if spec.kind == "multiple_choice" else spec.num_labels
    if spec.kind == "tagging":  # each word's top tags with float16 log-probabilities, the tag count alongside
        top = predictions["dev_top_log_probs"]
        assert top.dtype == np.float16 and predictions["dev_num_labels"].tolist() == [width]
        assert top.shape == predictions["dev_top_labels"].shape == (len(predictions["dev_labels"]), min(3, width))
        assert (np.diff(top.astype(np.float32), axis=-1) <= 0).all()  # most probable first
        assert np.exp(top.astype(np.float64)).sum(-1).max() < 1.01
        assert not any(key.endswith("_logits") for key in predictions)
        assert predictions["dev_lengths"].sum() == predictions["dev_labels"].shape[0]
        assert metrics["word_counts"]["dev"]["num_words"] == predictions["dev_labels"].shape[0]
    else:
        assert predictions["dev_logits"].shape[1] == width
    assert (tmp_path / "run" / "masks").is_dir() == (method == "masking")


@pytest.mark.slow
@pytest.mark.parametrize("task", [pytest.param("rte", marks=needs_data), pytest.param("conll2003", marks=needs_data),
                                  pytest.param("pos", marks=needs_data), "swag"])
def test_real_run_per_kind_with_the_offline_model(tmp_path, task):
    metrics = _run("minilm", task, "masking", tmp_path / "run", max_train_examples=48, max_eval_examples=32,
                   lr=5e-4)
    assert metrics["epochs_run"] == 1 and metrics["train_examples_per_s"] > 0
    low, high = (-1.0, 1.0) if metrics["metric"] == "matthews" else (0.0, 1.0)
    assert low <= metrics["dev_score"] <= high
    check_recorded_scores(tmp_path / "run")  # and it is the score of the saved predictions
