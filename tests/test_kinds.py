"""Every task trains with both methods; one short real run per task kind with the offline model."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import DATA_DIR, needs_data
from maskbench.tasks import TASKS
from maskbench.train import TrainConfig, train

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
    predictions = load_file(tmp_path / "run" / "predictions.safetensors")
    width = 4 if spec.kind == "multiple_choice" else spec.num_labels
    assert predictions["dev_logits"].shape[1] == width
    if spec.kind == "tagging":
        assert predictions["dev_lengths"].sum() == predictions["dev_labels"].shape[0]
        assert metrics["word_counts"]["dev"]["num_words"] == predictions["dev_labels"].shape[0]
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
