"""Saving masks (1 bit per weight) and rebuilding the model from its base: exact, and refused when wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel

from conftest import tiny_bert_config
from maskbench import MaskConfig, load_masked_model, mask_model, save_masks
from maskbench.data.models import load_model
from maskbench.io.errors import MaskFileError
from maskbench.training.masking.serialization import MASKS_FILE


def _trained_masked_model(base_dir: Path) -> torch.nn.Module:
    torch.manual_seed(1)
    model = load_model(str(base_dir), "single", ("neg", "pos"))
    mask_model(model, MaskConfig(blocks="1-3", init_scale=0.002))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(input_ids=torch.randint(0, 1000, (8, 10)), labels=torch.randint(0, 2, (8,))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("merge", [True, False])
def test_save_load_reproduces_logits_exactly(tiny_bert_dir, tmp_path, merge):
    model = _trained_masked_model(tiny_bert_dir)
    inputs = torch.randint(0, 1000, (4, 9))
    with torch.no_grad():
        expected = model(input_ids=inputs).logits
    save_masks(model, tmp_path / "masks", base=str(tiny_bert_dir), extra={"task": "sst2"})
    loaded = load_masked_model(tmp_path / "masks", merge=merge)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=inputs).logits, expected)
    description = json.loads((tmp_path / "masks" / "maskbench.json").read_text())
    assert description["task"] == "sst2" and description["mask_config"]["blocks"] == "1-3"
    assert sorted(description["head_parameters"]) == ["classifier.bias", "classifier.weight"]


def test_loading_onto_another_base_model_is_refused(tiny_bert_dir, tmp_path):
    save_masks(_trained_masked_model(tiny_bert_dir), tmp_path / "masks")
    torch.manual_seed(99)  # same architecture and shapes, other weights
    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "other")
    with pytest.raises(MaskFileError, match="not the model these masks were trained on"):
        load_masked_model(tmp_path / "masks", base=str(tmp_path / "other"))
    BertModel(tiny_bert_config(hidden_size=48, intermediate_size=96)).save_pretrained(tmp_path / "wider")
    with pytest.raises(MaskFileError, match="shape"):
        load_masked_model(tmp_path / "masks", base=str(tmp_path / "wider"))


def test_truncated_or_corrupt_mask_file_is_refused(tiny_bert_dir, tmp_path):
    save_masks(_trained_masked_model(tiny_bert_dir), tmp_path / "masks")
    path = tmp_path / "masks" / MASKS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MaskFileError, match="checksum mismatch"):
        load_masked_model(tmp_path / "masks")
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(MaskFileError, match="checksum mismatch"):
        load_masked_model(tmp_path / "masks")
    (tmp_path / "masks" / "maskbench.json").write_text("{not json")
    with pytest.raises(MaskFileError, match="not valid JSON"):
        load_masked_model(tmp_path / "masks")


def test_bert_base_mask_file_is_one_bit_per_weight(tmp_path):
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=2))
    mask_model(model, MaskConfig(blocks="2-11", mask_pooler=True, mask_classifier=False))
    save_masks(model, tmp_path / "masks", base="bert-base-uncased")
    description = json.loads((tmp_path / "masks" / "maskbench.json").read_text())
    assert description["sparsity"]["masked_weights"] == 71_368_704
    size = (tmp_path / "masks" / MASKS_FILE).stat().st_size
    assert 71_368_704 / 8 <= size <= 9_100_000
