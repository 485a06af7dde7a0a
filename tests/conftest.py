"""Shared fixtures: tiny random models (no download) and the offline data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    RobertaConfig,
)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("MASKBENCH_DATA_DIR", REPO.parent / "shared" / "data"))

needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"offline task data not found at {DATA_DIR}")

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """This checkout's workflow run in ``workdir`` (offline, with the task data when it is there)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if DATA_DIR.is_dir():
        env["MASKBENCH_DATA_DIR"] = str(DATA_DIR)
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def tiny_bert_config(**overrides) -> BertConfig:
    values = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=256, num_labels=2)
    values.update(overrides)
    return BertConfig(**values)


def tiny_roberta_config(**overrides) -> RobertaConfig:
    values = dict(vocab_size=1000, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=256, num_labels=2)
    values.update(overrides)
    return RobertaConfig(**values)


def tiny_distilbert_config(**overrides) -> DistilBertConfig:
    values = dict(vocab_size=1000, dim=32, n_layers=4, n_heads=2, hidden_dim=64, max_position_embeddings=256,
                  num_labels=2)
    values.update(overrides)
    return DistilBertConfig(**values)


@pytest.fixture
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"offline task data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture
def tiny_bert_dir(tmp_path: Path) -> Path:
    """A tiny random BERT saved as a local model directory, with the offline model's (uncased) tokenizer."""
    from maskbench.models import load_tokenizer

    torch.manual_seed(0)
    path = tmp_path / "tiny-bert"
    BertForSequenceClassification(tiny_bert_config()).bert.save_pretrained(path)
    load_tokenizer("minilm").save_pretrained(path)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the ``slow`` tests first, the longest first (``@pytest.mark.slow(seconds=...)``: about how long the test
    takes on 2 CPU cores; 60 when not given), so that pytest-xdist's workers share them from the start instead of
    one worker finishing the longest of them alone at the end. The other tests keep their order."""

    def cost(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return 0.0 if marker is None else float(marker.kwargs.get("seconds", 60))

    items.sort(key=cost, reverse=True)
