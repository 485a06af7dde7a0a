"""The masking core: straight-through gradients, frozen weights, initial sparsity, architectures."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import (
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertForTokenClassification,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    RobertaForMultipleChoice,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
)

from conftest import tiny_bert_config, tiny_distilbert_config, tiny_roberta_config
from maskbench import MaskConfig, MaskedLinear, mask_model, mask_sparsity, masked_layers
from maskbench.io.errors import ConfigError


def test_straight_through_gradient_is_grad_of_masked_weight_times_weight():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = MaskedLinear(base, threshold=0.0)
    layer.init_scores(initial_sparsity=0.4, init_scale=1.0)
    x = torch.randn(3, 6)
    grad_out = torch.randn(3, 5)
    layer(x).backward(grad_out)

    mask = (layer.mask_scores.detach() >= 0.0).float()
    grad_masked_weight = grad_out.T @ x  # dL/dW_hat for y = x W_hat^T + b
    torch.testing.assert_close(layer.mask_scores.grad, grad_masked_weight * base.weight.detach())
    assert layer.weight.grad is None and layer.bias.grad is None
    # the forward really uses W * mask
    torch.testing.assert_close(layer(x), x @ (base.weight * mask).T + base.bias)


def test_masked_layer_zeroes_exactly_the_masked_weights():
    torch.manual_seed(0)
    layer = MaskedLinear(nn.Linear(8, 8, bias=False), threshold=0.5)
    layer.init_scores(initial_sparsity=0.5, init_scale=1.0)
    out = layer(torch.eye(8))  # row i = column i of W_hat
    assert torch.equal(out.T == 0, ~layer.binary_mask())


@pytest.mark.parametrize("sparsity", [0.01, 0.05, 0.2, 0.5, 0.9])
def test_initial_scores_follow_the_authors_range(sparsity):
    """ptlmasking/maskbert MaskedLinear1.get_init_scales: U(-c, (c + τ) / s - c), c = 0.02, τ = 0.01."""
    layer = MaskedLinear(nn.Linear(512, 512), threshold=0.01)
    mask_config = MaskConfig(initial_sparsity=sparsity)
    assert mask_config.init_scale == 0.02 and mask_config.threshold == 0.01
    layer.init_scores(sparsity, mask_config.init_scale, torch.Generator().manual_seed(3))
    scores = layer.mask_scores.detach()
    low, high = -0.02, 0.03 / sparsity - 0.02
    assert scores.min().item() >= low and scores.max().item() <= high
    # the draw fills the whole range (not a narrow band around the threshold)
    span = high - low
    assert scores.min().item() < low + 0.01 * span and scores.max().item() > high - 0.01 * span
    assert abs(scores.mean().item() - (low + high) / 2) < 0.01 * span


@pytest.mark.parametrize("sparsity", [0.01, 0.05, 0.5])
def test_initial_sparsity_on_a_large_layer(sparsity):
    layer = MaskedLinear(nn.Linear(1024, 1024), threshold=0.01)
    layer.init_scores(sparsity, 0.02, torch.Generator().manual_seed(1))
    zeros = 1 - layer.binary_mask().float().mean().item()
    assert abs(zeros - sparsity) <= 0.005


def test_only_scores_are_trained_and_base_weights_stay_bit_identical():
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask_model(model, MaskConfig(blocks="all", init_scale=0.002))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith("mask_scores") for n in trainable)
    initial_masks = {n: layer.binary_mask().clone() for n, layer in masked_layers(model).items()}

    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    inputs = torch.randint(0, 1000, (8, 12))
    labels = torch.randint(0, 2, (8,))
    for _ in range(5):
        loss = model(input_ids=inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    after = model.state_dict()
    for name, value in before.items():
        assert torch.equal(after[name], value), f"{name} changed"
    changed = sum(int((layer.binary_mask() != initial_masks[n]).sum()) for n, layer in masked_layers(model).items())
    assert changed > 0, "training flipped no mask bit"


def test_default_blocks_and_heads_bert():
    model = BertForSequenceClassification(tiny_bert_config())
    mask_model(model, MaskConfig())
    names = list(masked_layers(model))
    assert names[0] == "bert.encoder.layer.2.attention.self.query"
    assert len(names) == 2 * 6 + 2 and names[-2:] == ["bert.pooler.dense", "classifier"]
    sparsity = mask_sparsity(model)
    assert set(sparsity["layers"]) == set(names)
    assert sparsity["masked_weights"] == sum(layer.weight.numel() for layer in masked_layers(model).values())


@pytest.mark.parametrize(
    "model_class, config, expected_heads",
    [
        (BertForTokenClassification, tiny_bert_config(), ["classifier"]),
        (BertForMultipleChoice, tiny_bert_config(), ["bert.pooler.dense", "classifier"]),
        (RobertaForSequenceClassification, tiny_roberta_config(), ["classifier.dense", "classifier.out_proj"]),
        (RobertaForTokenClassification, tiny_roberta_config(), ["classifier"]),
        (RobertaForMultipleChoice, tiny_roberta_config(), ["roberta.pooler.dense", "classifier"]),
        (DistilBertForSequenceClassification, tiny_distilbert_config(), ["pre_classifier", "classifier"]),
        (DistilBertForTokenClassification, tiny_distilbert_config(), ["classifier"]),
    ],
)
def test_every_architecture_and_head(model_class, config, expected_heads):
    model = model_class(config)
    mask_model(model, MaskConfig(blocks="1-3"))
    names = list(masked_layers(model))
    assert len(names) == 3 * 6 + len(expected_heads)
    assert names[-len(expected_heads):] == expected_heads
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == sum(
        layer.weight.numel() for layer in masked_layers(model).values())


def test_train_classifier_option_makes_classifier_trainable():
    model = BertForSequenceClassification(tiny_bert_config())
    mask_model(model, MaskConfig(train_classifier=True))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"classifier.weight", "classifier.bias", "classifier.mask_scores"} <= trainable


def test_unsupported_architecture_is_a_clear_error():
    model = GPT2ForSequenceClassification(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100))
    with pytest.raises(ConfigError, match="masking supports model types .*'gpt2'"):
        mask_model(model, MaskConfig())


@pytest.mark.parametrize("blocks", ["2-11", "4", "-1", "x"])
def test_block_range_outside_the_model_is_a_clear_error(blocks):
    model = BertForSequenceClassification(tiny_bert_config())
    with pytest.raises(ConfigError, match="blocks"):
        mask_model(model, MaskConfig(blocks=blocks))


@pytest.mark.parametrize("bad", [{"initial_sparsity": 1.0}, {"initial_sparsity": -0.1}, {"init_scale": 0},
                                 {"init_width": 0.02}, {"initial_sparsity": 0.0}, {"threshold": float("nan")},
                                 {"mask_pooler": "yes"}, {"sparsity": 0.1}])
def test_bad_mask_config_values(bad):
    with pytest.raises(ConfigError):
        MaskConfig.from_dict(bad)
