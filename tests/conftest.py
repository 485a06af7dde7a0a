"""Shared fixtures: tiny random models (no download) and the offline data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("MASKBENCH_DATA_DIR") or REPO.parent / "shared" / "data")

#: set (to anything but "" or "0") where the task data must be there, as in CI (.ci/run): then a test that needs the
#: data fails instead of being skipped when MASKBENCH_DATA_DIR (or ../shared/data) is missing
REQUIRE_DATA_ENV = "MASKBENCH_REQUIRE_DATA"
#: a test that reads the offline task data: skipped without it, failed without it where REQUIRE_DATA_ENV is set
needs_data = pytest.mark.needs_data

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """This checkout's workflow run in ``workdir`` (offline, with the task data when it is there)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if DATA_DIR.is_dir():
        env["MASKBENCH_DATA_DIR"] = str(DATA_DIR)
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def tiny_bert_config(**overrides) -> BertConfig:
    from transformers import BertConfig  # (imported here: a pytest that only loads this plugin starts quickly)

    values = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=256, num_labels=2)
    values.update(overrides)
    return BertConfig(**values)


def tiny_roberta_config(**overrides) -> RobertaConfig:
    from transformers import RobertaConfig

    values = dict(vocab_size=1000, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=256, num_labels=2)
    values.update(overrides)
    return RobertaConfig(**values)


def tiny_distilbert_config(**overrides) -> DistilBertConfig:
    from transformers import DistilBertConfig

    values = dict(vocab_size=1000, dim=32, n_layers=4, n_heads=2, hidden_dim=64, max_position_embeddings=256,
                  num_labels=2)
    values.update(overrides)
    return DistilBertConfig(**values)


def require_data() -> Path:
    """The offline task data directory; without it the calling test (or fixture) is skipped, or failed where
    ``MASKBENCH_REQUIRE_DATA`` is set: CI must not go green with the data-dependent tests skipped."""
    if not DATA_DIR.is_dir():
        message = f"offline task data not found at {DATA_DIR} (set MASKBENCH_DATA_DIR)"
        if os.environ.get(REQUIRE_DATA_ENV, "") not in ("", "0"):
            pytest.fail(f"{message}; {REQUIRE_DATA_ENV} is set, so this test needs it", pytrace=False)
        pytest.skip(message)
    return DATA_DIR


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_data: reads the offline task data (MASKBENCH_DATA_DIR); skipped "
                            f"without it, failed without it where {REQUIRE_DATA_ENV} is set")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_data") is not None:
        require_data()


@pytest.fixture
def data_dir() -> Path:
    return require_data()


def save_tiny_bert(path: Path, **overrides) -> Path:
    """A tiny random BERT encoder (seed 0; ``overrides`` of :func:`tiny_bert_config`) saved at ``path`` with the
    offline model's (uncased) tokenizer: a local model directory."""
    import torch
    from transformers import BertForSequenceClassification

    from maskbench.data.models import load_tokenizer

    torch.manual_seed(0)
    BertForSequenceClassification(tiny_bert_config(**overrides)).bert.save_pretrained(path)
    load_tokenizer("minilm").save_pretrained(path)
    return path


@pytest.fixture
def tiny_bert_dir(tmp_path: Path) -> Path:
    """A tiny random BERT saved as a local model directory, with the offline model's (uncased) tokenizer."""
    return save_tiny_bert(tmp_path / "tiny-bert")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the ``slow`` tests first, the longest first (``@pytest.mark.slow(seconds=...)``: about how long the test
    takes on 2 CPU cores; 60 when not given), so that pytest-xdist's workers share them from the start instead of
    one worker finishing the longest of them alone at the end. The other tests keep their order."""

    def cost(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return 0.0 if marker is None else float(marker.kwargs.get("seconds", 60))

    items.sort(key=cost, reverse=True)


def rescore(run_dir: Path, split: str) -> float | None:
    """A run's ``split`` score recomputed from its saved ``predictions.safetensors`` with scikit-learn / seqeval
    directly (not through ``maskbench.data.metrics``): the argmax of the logits, or for tagging tasks the first of each
    word's kept top tags (the most probable), against the saved gold labels; None when the split was not saved."""
    import json

    import numpy as np
    from safetensors.numpy import load_file
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2
    from sklearn.metrics import accuracy_score, matthews_corrcoef

    from maskbench.data.tasks import get_task

    record = json.loads((run_dir / "metrics.json").read_text())
    tensors = load_file(str(run_dir / "predictions.safetensors"))
    if f"{split}_labels" not in tensors:
        return None
    gold = tensors[f"{split}_labels"].astype(np.int64)
    if f"{split}_logits" in tensors:
        predicted = tensors[f"{split}_logits"].argmax(-1)
    else:
        predicted = tensors[f"{split}_top_labels"][:, 0].astype(np.int64)
    if record["metric"] in ("accuracy", "word_accuracy"):
        return float(accuracy_score(gold, predicted))
    if record["metric"] == "matthews":
        return float(matthews_corrcoef(gold, predicted))
    assert record["metric"] == "seqeval_f1", record["metric"]
    names = list(get_task(record["task"]).label_names)
    ends = np.cumsum(tensors[f"{split}_lengths"].astype(np.int64))
    sentences = list(zip([0, *ends[:-1]], ends))
    return float(f1_score([[names[t] for t in gold[a:b]] for a, b in sentences],
                          [[names[t] for t in predicted[a:b]] for a, b in sentences],
                          mode="strict", scheme=IOB2, average="micro", zero_division=0))


def check_recorded_scores(run_dir: Path) -> dict:
    """The dev and test scores in ``run_dir/metrics.json`` are those of the saved predictions (:func:`rescore`): the
    dev score the run selected its best epoch by, and the test score of that epoch's model. Returns the record."""
    import json

    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["dev_score"] == rescore(run_dir, "dev"), (run_dir, record["dev_score"], rescore(run_dir, "dev"))
    assert record["dev_score"] == max(record["dev_scores"]) == record["dev_scores"][record["best_epoch"] - 1]
    assert record["test_score"] == rescore(run_dir, "test"), (run_dir, record["test_score"])
    return record
