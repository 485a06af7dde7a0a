"""The paper's Table 1 as data, the majority baseline, and the side-by-side table."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from maskbench.results.paper import PAPER_TABLE1, majority_baseline, paper_gap


def test_paper_gaps_are_the_table_1_differences():
    assert paper_gap("BERT", "mrpc") == pytest.approx(0.7)
    assert paper_gap("RoBERTa", "rte") == pytest.approx(-9.0)
    assert paper_gap("DistilBERT", "cola") == pytest.approx(-2.0)
    assert paper_gap("BERT", "imdb") is None
    assert all(set(methods["masking"]) == set(methods["finetuning"]) for methods in PAPER_TABLE1.values())


def test_majority_baseline_from_saved_dev_labels(tmp_path):
    save_file({"dev_labels": np.array([1, 1, 0, 1, 2], dtype=np.int64),
               "dev_logits": np.zeros((5, 3), dtype=np.float32)}, tmp_path / "predictions.safetensors")
    assert majority_baseline(tmp_path, "accuracy", ["a", "b", "c"]) == pytest.approx(0.6)
    assert majority_baseline(tmp_path, "matthews", ["a", "b", "c"]) == 0.0
    save_file({"dev_labels": np.array([0, 1, 2, 0], dtype=np.int64), "dev_lengths": np.array([2, 2]),
               "dev_logits": np.zeros((4, 3), dtype=np.float32)}, tmp_path / "predictions.safetensors")
    assert majority_baseline(tmp_path, "seqeval_f1", ["O", "B-PER", "I-PER"]) == 0.0
