"""Find the linear layers of a Hugging Face encoder that masking targets and swap in :class:`MaskedLinear`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from maskbench.io.errors import ConfigError
from maskbench.training.masking.config import MaskConfig
from maskbench.training.masking.layer import MaskedLinear


@dataclass(frozen=True)
class Architecture:
    """Where an architecture keeps its blocks, and the six linear layers of one block (W_Q, W_K, W_V, W_AO, W_I,
    W_O)."""

    blocks: str
    block_linears: tuple[str, ...]


_BERT_LIKE = Architecture(
    blocks="encoder.layer",
    block_linears=("attention.self.query", "attention.self.key", "attention.self.value",
                   "attention.output.dense", "intermediate.dense", "output.dense"),
)
ARCHITECTURES: dict[str, Architecture] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "distilbert": Architecture(
        blocks="transformer.layer",
        block_linears=("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
                       "ffn.lin1", "ffn.lin2"),
    ),
}

# The "pooler" role W_P: BERT's pooler (sequence classification, multiple choice); RoBERTa's classification head
# has no pooler but a dense layer before its output projection; DistilBERT has a pre_classifier. Token
# classification heads have only the classifier. The first candidate that exists is the one masked.
_POOLER_CANDIDATES = ("{base}.pooler.dense", "classifier.dense", "pre_classifier")
_CLASSIFIER_CANDIDATES = ("classifier.out_proj", "classifier")


def architecture_of(model: nn.Module) -> Architecture:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ConfigError(
            f"masking supports model types {sorted(ARCHITECTURES)}; this model is {model_type!r} "
            f"({type(model).__name__})"
        )
    return ARCHITECTURES[model_type]


def _get(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def head_layer_names(model: nn.Module) -> dict[str, str]:
    """The pooler-role and classifier layer names of this model's head (roles that do not exist are absent)."""
    prefix = model.base_model_prefix
    found: dict[str, str] = {}
    for candidate in _POOLER_CANDIDATES:
        name = candidate.format(base=prefix)
        if isinstance(_get(model, name), nn.Linear):
            found["pooler"] = name
            break
    for name in _CLASSIFIER_CANDIDATES:
        if isinstance(_get(model, name), nn.Linear):
            found["classifier"] = name
            break
    return found


def target_layer_names(model: nn.Module, config: MaskConfig) -> list[str]:
    """Names (in the model's module tree) of every linear layer that ``config`` masks."""
    arch = architecture_of(model)
    blocks = _get(model, f"{model.base_model_prefix}.{arch.blocks}")
    if blocks is None:
        raise ConfigError(f"cannot find transformer blocks '{arch.blocks}' in {type(model).__name__}")
    names = [
        f"{model.base_model_prefix}.{arch.blocks}.{index}.{linear}"
        for index in config.resolve_blocks(len(blocks))
        for linear in arch.block_linears
    ]
    heads = head_layer_names(model)
    if config.mask_pooler and "pooler" in heads:
        names.append(heads["pooler"])
    if config.mask_classifier and "classifier" in heads:
        names.append(heads["classifier"])
    return names


def mask_model(model: nn.Module, config: MaskConfig, generator: torch.Generator | None = None) -> nn.Module:
    """Freeze ``model`` and replace the layers selected by ``config`` with :class:`MaskedLinear` (in place).

    Afterwards only the mask scores are trainable (plus the classifier's weight and bias when
    ``config.train_classifier``). Scores are drawn from ``generator`` (default: torch's global RNG).
    """
    if any(isinstance(m, MaskedLinear) for m in model.modules()):
        raise ConfigError("this model is already masked")
    names = target_layer_names(model, config)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name in names:
        layer = MaskedLinear(model.get_submodule(name), config.threshold)
        layer.init_scores(config.initial_sparsity, config.init_scale, generator)
        _set(model, name, layer)
    if config.train_classifier:
        classifier = head_layer_names(model).get("classifier")
        if classifier is None:
            raise ConfigError(f"train_classifier: {type(model).__name__} has no classifier layer")
        for parameter in (model.get_submodule(classifier).weight, model.get_submodule(classifier).bias):
            if parameter is not None:
                parameter.requires_grad_(True)
    model.maskbench_mask_config = config
    return model


def masked_layers(model: nn.Module) -> dict[str, MaskedLinear]:
    """Every :class:`MaskedLinear` of the model, by name, in module order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, MaskedLinear)}


def mask_sparsity(model: nn.Module) -> dict:
    """Fraction of zeros in each layer's binary mask and overall (weighted by layer size)."""
    layers = masked_layers(model)
    if not layers:
        raise ConfigError("mask_sparsity: the model has no masked layers (call mask_model first)")
    per_layer: dict[str, float] = {}
    zeros = total = 0
    for name, layer in layers.items():
        mask = layer.binary_mask()
        layer_zeros = int(mask.numel() - mask.sum().item())
        per_layer[name] = layer_zeros / mask.numel()
        zeros += layer_zeros
        total += mask.numel()
    return {"overall": zeros / total, "masked_weights": total, "layers": per_layer}


def merge_masks(model: nn.Module) -> nn.Module:
    """Replace every :class:`MaskedLinear` by a plain ``nn.Linear`` holding ``W * mask`` (in place)."""
    for name, layer in masked_layers(model).items():
        _set(model, name, layer.to_linear())
    return model
