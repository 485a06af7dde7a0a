"""bf16 training with frozen weights held in bf16 (issue 32): the same numbers as autocast's casts, weights back
in fp32 afterwards, and the masked layer's one-pass masked weight equal to ``W * binarize(scores)``."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertForSequenceClassification

from conftest import tiny_bert_config
from maskbench.training.masking.layer import MaskedLinear
from maskbench.training.methods import get_method
from maskbench.training.settings import TrainConfig
from maskbench.training.train import adam, autocast, frozen_weights_in

CPU = torch.device("cpu")


def _reference_masked_forward(layer: MaskedLinear, x: torch.Tensor) -> torch.Tensor:
    """The masked layer as it was written before (W * binarize(scores), straight-through), for comparison."""

    class Binarize(torch.autograd.Function):
        @staticmethod
        def forward(ctx, scores, threshold):
            return (scores >= threshold).to(scores.dtype)

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    weight = layer.weight * Binarize.apply(layer.mask_scores, layer.threshold).to(layer.weight.dtype)
    return nn.functional.linear(x, weight, layer.bias)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("low_copy", [False, True])
def test_masked_layer_matches_w_times_binarized_scores_bitwise(precision, low_copy):
    torch.manual_seed(0)
    layer = MaskedLinear(nn.Linear(48, 40), threshold=0.01)
    layer.init_scores(initial_sparsity=0.3, init_scale=0.02)
    x, grad_out = torch.randn(7, 48), torch.randn(7, 40)
    results = []
    for forward in (lambda v: _reference_masked_forward(layer, v), layer):
        layer.set_compute_dtype(torch.bfloat16 if low_copy else None)
        layer.mask_scores.grad = None
        with autocast(CPU, precision):
            y = forward(x)
        y.float().backward(grad_out)
        results.append((y.detach().clone(), layer.mask_scores.grad.clone()))
    (y_old, g_old), (y_new, g_new) = results
    assert y_new.dtype == y_old.dtype and torch.equal(y_new, y_old)
    assert g_new.dtype == torch.float32 and torch.equal(g_new, g_old)
    assert layer.weight.grad is None and layer.bias.grad is None


def test_low_precision_copy_is_used_only_under_autocast_of_its_dtype():
    layer = MaskedLinear(nn.Linear(8, 4), threshold=0.0)
    layer.init_scores(0.5, 1.0)
    layer.set_compute_dtype(torch.bfloat16)
    assert layer.weight_lowp.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    assert layer(torch.randn(2, 8)).dtype == torch.float32  # no autocast: the fp32 weight
    assert "weight_lowp" not in layer.state_dict()  # never saved
    layer.set_compute_dtype(None)
    assert layer.weight_lowp is None


def _steps(method: str, hold: bool, steps: int = 3) -> tuple[list[float], dict[str, torch.Tensor], nn.Module]:
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=2, hidden_dropout_prob=0.0,
                                                           attention_probs_dropout_prob=0.0))
    config = TrainConfig(method=method, model="tiny", task="sst2", seed=1, lr=1e-3, precision="bf16", out="unused")
    runner = get_method(method)
    model = runner.prepare(model, config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer, _ = adam(runner.trainable_parameters(model), 1e-3)
    generator = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(5, 90, (4, 9), generator=generator),
             "attention_mask": torch.ones(4, 9, dtype=torch.long), "labels": torch.tensor([0, 1, 1, 0])}
    losses = []
    with frozen_weights_in(model, "bf16" if hold else "fp32") as held:
        if hold and method == "finetuning":
            assert held == 0  # every weight trains: nothing to hold
        elif hold:
            assert held > 0
            low = [p for p in model.parameters() if p.dtype == torch.bfloat16]
            assert low and not any(p.requires_grad for p in low)  # only frozen weights are held in bf16
        for _ in range(steps):
            with autocast(CPU, "bf16"):
                loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses, before, model


@pytest.mark.parametrize("method", ["masking", "lora", "bitfit", "ia3", "finetuning"])
def test_frozen_weights_in_bf16_train_the_same_numbers_and_come_back_in_fp32(method):
    reference, _, reference_model = _steps(method, hold=False)
    losses, before, model = _steps(method, hold=True)
    assert losses == reference  # bitwise: autocast casts the same weights to the same dtype
    for (name, p), (_, q) in zip(model.named_parameters(), reference_model.named_parameters()):
        assert p.dtype == torch.float32, name
        assert torch.equal(p, q), name  # trained tensors equal, frozen ones restored exactly
        if not p.requires_grad:
            assert torch.equal(p, before[name]), name
    assert all(getattr(m, "weight_lowp", None) is None for m in model.modules())
