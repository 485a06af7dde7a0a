"""Length-grouped training batches and length-sorted evaluation batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from conftest import check_recorded_scores
from maskbench.data.tokenising import Collator
from maskbench.io.errors import ConfigError
from maskbench.training.batching import LengthGroupedBatchSampler, sorted_batches
from maskbench.training.train import TrainConfig, predict, train


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 128), min_size=1, max_size=400), batch_size=st.integers(1, 40),
       pool_batches=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_grouped_batches_cover_every_example_once_and_are_seeded(lengths, batch_size, pool_batches, seed):
    sampler = LengthGroupedBatchSampler(lengths, batch_size, torch.Generator().manual_seed(seed), pool_batches)
    first = list(sampler)
    assert sorted(i for batch in first for i in batch) == list(range(len(lengths)))
    assert len(first) == len(sampler) and all(1 <= len(batch) <= batch_size for batch in first)
    again = list(LengthGroupedBatchSampler(lengths, batch_size, torch.Generator().manual_seed(seed), pool_batches))
    assert again == first


def test_grouping_cuts_padding_and_keeps_pools_random():
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 120, size=3200).tolist()
    generator = torch.Generator().manual_seed(1)
    grouped = list(LengthGroupedBatchSampler(lengths, 32, generator))
    random = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(1)).split(32)

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(grouped) < 0.7 * padded([b.tolist() for b in random])
    # epochs differ (the generator advances), and the longest batch is not always first
    second = list(LengthGroupedBatchSampler(lengths, 32, generator))
    assert second != grouped
    assert max(range(len(grouped)), key=lambda k: max(lengths[i] for i in grouped[k])) != 0 or \
        max(range(len(second)), key=lambda k: max(lengths[i] for i in second[k])) != 0


def test_sorted_evaluation_returns_the_dataset_order(tiny_bert_dir):
    from transformers import BertForSequenceClassification, BertForTokenClassification

    torch.manual_seed(0)
    lengths = [3, 9, 5, 12, 2, 7, 7, 4]
    features = [{"input_ids": list(range(1, n + 1)), "attention_mask": [1] * n, "labels": k % 2}
                for k, n in enumerate(lengths)]
    model = BertForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    collate = Collator(0)
    plain = predict(model, DataLoader(features, batch_size=3, collate_fn=collate), "single", torch.device("cpu"))
    grouped = predict(model, DataLoader(features, batch_sampler=sorted_batches(lengths, 3), collate_fn=collate),
                      "single", torch.device("cpu"))
    np.testing.assert_allclose(grouped["logits"], plain["logits"], atol=1e-5)
    assert (grouped["labels"] == plain["labels"]).all()

    tags = [{"input_ids": list(range(1, n + 1)), "attention_mask": [1] * n,
             "labels": [-100] + [k % 3] * (n - 1)} for k, n in enumerate(lengths)]
    tagger = BertForTokenClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    plain = predict(tagger, DataLoader(tags, batch_size=3, collate_fn=collate), "tagging", torch.device("cpu"))
    grouped = predict(tagger, DataLoader(tags, batch_sampler=sorted_batches(lengths, 3), collate_fn=collate),
                      "tagging", torch.device("cpu"))
    np.testing.assert_allclose(grouped["logits"], plain["logits"], atol=1e-5)
    assert (grouped["lengths"] == plain["lengths"]).all() and (grouped["labels"] == plain["labels"]).all()


def test_grouping_is_a_recorded_setting_and_changes_the_batches(tiny_bert_dir, data_dir, tmp_path):
    common = dict(method="finetuning", model=str(tiny_bert_dir), task="sst2", seed=2, lr=1e-3, batch_size=8,
                  epochs=1, max_train_examples=64, max_eval_examples=32, data_dir=str(data_dir))
    grouped = train(TrainConfig(**common, out=str(tmp_path / "g")))
    plain = train(TrainConfig(**common, group_by_length=False, out=str(tmp_path / "p")))
    assert grouped["config"]["group_by_length"] is True and plain["config"]["group_by_length"] is False
    assert grouped["config_hash"] != plain["config_hash"]
    assert grouped["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    assert grouped["precision"] == "fp32"
    for run in ("g", "p"):  # dev predictions in the dataset's order in both
        labels = load_file(tmp_path / run / "predictions.safetensors")["dev_labels"]
        assert labels.tolist() == load_file(tmp_path / "g" / "predictions.safetensors")["dev_labels"].tolist()


@pytest.mark.parametrize("bad", [{"precision": "fp16"}, {"group_by_length": "yes"}])
def test_bad_batching_settings(bad):
    with pytest.raises(ConfigError):
        TrainConfig(method="finetuning", model="minilm", task="sst2", **bad)


def test_unavailable_device_is_refused_before_any_work(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="device"):
        train(TrainConfig(method="finetuning", model="minilm", task="sst2", device="cuda", out=str(tmp_path / "r")))


def test_bf16_autocast_trains_and_is_recorded(tiny_bert_dir, data_dir, tmp_path):
    metrics = train(TrainConfig(method="masking", model=str(tiny_bert_dir), task="sst2", seed=1, lr=1e-2,
                                batch_size=16, epochs=1, max_train_examples=32, max_eval_examples=16,
                                precision="bf16", data_dir=str(data_dir), out=str(tmp_path / "r")))
    assert metrics["precision"] == "bf16" and metrics["config"]["precision"] == "bf16"
    assert np.isfinite(metrics["history"][0]["train_loss"]) and metrics["optimizer"].startswith("Adam")
    check_recorded_scores(tmp_path / "r")  # the recorded score is that of the saved (bf16) predictions


def test_cuda_runs_use_tf32_and_no_cudnn_attention():
    """cuDNN attention re-plans for every new padded length (3.2 times slower on an H200 in bf16); the flags are
    process-wide and can be set without a GPU."""
    from maskbench.training.train import configure_cuda_backends

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.backends.cuda.cudnn_sdp_enabled())
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        configure_cuda_backends()
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
        torch.backends.cuda.enable_cudnn_sdp(before[2])
