"""CONTRIBUTING.md's recipes, followed step by step: a toy task and a new architecture family, each added the way
the recipe says and then prepared and trained end to end (tiny random models, no download)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import ElectraConfig, ElectraModel

from conftest import check_recorded_scores
from maskbench.data.prepare import prepare
from maskbench.data.tasks import readers, registry
from maskbench.training.masking import apply
from maskbench.training.masking.config import MaskConfig
from maskbench.training.masking.layer import MaskedLinear
from maskbench.training.train import TrainConfig, train

TOY_LABELS = ("no", "yes")
TOY_TSV = readers.TsvLayout("single", TOY_LABELS, ("n", "y"), columns=2, text=0, label=1, header=("text", "label"))


def read_toy(task_dir: Path):
    """Recipe step 1: a reader (TSV: a layout and read_tsv; dev carved from train)."""
    splits = {"train": readers.read_tsv(task_dir / "train.tsv", TOY_TSV),
              "test": readers.read_tsv(task_dir / "test.tsv", TOY_TSV)}
    return readers.carve_dev(splits, 8)


TOY_TASK = registry.TaskSpec(  # recipe step 2: the task's spec
    name="toy", kind="single", label_names=TOY_LABELS, metric="accuracy", hub=None, reader=read_toy,
    local_dir="toy", has_test=True, description="toy: 'yes' when the sentence mentions a colour")


def _write_toy_files(data_dir: Path) -> None:
    colours, things = ["red", "green", "blue", "yellow"], ["table", "river", "song", "letter", "window"]
    rows = [(f"the {thing} is {colour}", "y") for colour in colours for thing in things]
    rows += [(f"the {thing} is {word}", "n") for word in ("old", "near", "long", "quiet") for thing in things]
    task_dir = data_dir / "toy"
    task_dir.mkdir(parents=True)
    for split, part in (("train", rows), ("test", rows[::3])):
        (task_dir / f"{split}.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in part))


def test_a_new_task_prepares_and_trains(monkeypatch, tiny_bert_dir, tmp_path):
    monkeypatch.setitem(registry.TASKS, "toy", TOY_TASK)
    data_dir = tmp_path / "data"
    _write_toy_files(data_dir)
    meta = prepare("toy", str(tiny_bert_dir), tmp_path / "prepared", data_dir, max_length=16)
    assert meta["sizes"] == {"train": 32, "dev": 8, "test": 14}
    metrics = train(TrainConfig(method="masking", model=str(tiny_bert_dir), task="toy", lr=1e-2, batch_size=8,
                                epochs=1, max_length=16, prepared=str(tmp_path / "prepared"),
                                out=str(tmp_path / "run")))
    assert metrics["task"] == "toy" and metrics["metric"] == "accuracy"
    assert 0.0 <= metrics["dev_score"] <= 1.0 and metrics["test_score"] is not None
    check_recorded_scores(tmp_path / "run")  # both scores are those of the saved predictions (sklearn)


def test_a_new_architecture_masks_and_trains(monkeypatch, tiny_bert_dir, data_dir, tmp_path):
    from maskbench.data.models import load_model, load_tokenizer

    path = tmp_path / "tiny-electra"
    torch.manual_seed(0)
    ElectraModel(ElectraConfig(vocab_size=30522, embedding_size=32, hidden_size=32, num_hidden_layers=4,
                               num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
                 ).save_pretrained(path)
    load_tokenizer(str(tiny_bert_dir)).save_pretrained(path)
    model = load_model(str(path), "single", ["negative", "positive"])
    with pytest.raises(Exception, match="electra"):  # not yet known: a clear error naming the model type
        apply.architecture_of(model)
    # the recipe: where ELECTRA keeps its blocks and the six linear layers of a block
    monkeypatch.setitem(apply.ARCHITECTURES, "electra", apply.Architecture(
        blocks="encoder.layer",
        block_linears=("attention.self.query", "attention.self.key", "attention.self.value",
                       "attention.output.dense", "intermediate.dense", "output.dense")))
    metrics = train(TrainConfig(method="masking", model=str(path), task="sst2", lr=1e-2, batch_size=16, epochs=1,
                                max_train_examples=32, max_eval_examples=32, max_length=32, data_dir=str(data_dir),
                                out=str(tmp_path / "run")))
    # blocks 2-3 (2 to last) x 6 linears, plus the head's dense layer (the pooler role) and its output projection
    names = apply.target_layer_names(model, MaskConfig())
    assert len(names) == 2 * 6 + 2 and {"classifier.dense", "classifier.out_proj"} <= set(names)
    masked = apply.mask_model(model, MaskConfig())
    assert sum(isinstance(m, MaskedLinear) for m in masked.modules()) == 2 * 6 + 2
    assert metrics["trainable_parameters"] == sum(masked.get_submodule(n).weight.numel() for n in names)
    assert 0.0 <= metrics["dev_score"] <= 1.0
    check_recorded_scores(tmp_path / "run")  # the score of the saved predictions (sklearn)
