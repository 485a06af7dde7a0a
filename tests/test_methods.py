"""The methods registry: each method trains only its intended parameters, its artefact round-trips to identical
logits, and a foreign base model is refused; finetuning and masking keep their run identities."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from transformers import (
    BertForSequenceClassification,
    DistilBertForSequenceClassification,
    RobertaForSequenceClassification,
)

from conftest import (
    DATA_DIR,
    check_recorded_scores,
    needs_data,
    tiny_bert_config,
    tiny_distilbert_config,
    tiny_roberta_config,
)
from maskbench.data.models import load_model
from maskbench.data.tasks import TASKS
from maskbench.io.errors import ConfigError, MaskFileError
from maskbench.training import settings
from maskbench.training.masking.config import MaskConfig
from maskbench.training.method_registry import BUILTIN, registered
from maskbench.training.methods import get_method, method_of_artefact
from maskbench.training.settings import LoraSettings, TrainConfig, run_identity

FIXTURES = Path(__file__).parent / "fixtures"

ARCHITECTURES = {
    "bert": (BertForSequenceClassification, tiny_bert_config, "bert", 1000),
    "roberta": (RobertaForSequenceClassification, tiny_roberta_config, "roberta", 1000),
    "distilbert": (DistilBertForSequenceClassification, tiny_distilbert_config, "distilbert", 1000),
}
KINDS = ("single", "pair", "tagging", "multiple_choice")
NEW_METHODS = ("lora", "bitfit", "ia3")
LABELS = ("a", "b", "c")


def _base_dir(root: Path, arch: str, seed: int = 0) -> Path:
    """A tiny random encoder of ``arch`` saved without a head (the head is new, as for a real pretrained model)."""
    model_class, make_config, prefix, _ = ARCHITECTURES[arch]
    torch.manual_seed(seed)
    path = root / f"{arch}-{seed}"
    getattr(model_class(make_config()), prefix).save_pretrained(path)
    return path


def _batch(kind: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    shape = (4, 3, 7) if kind == "multiple_choice" else (4, 7)
    batch = {"input_ids": torch.randint(5, 1000, shape, generator=generator),
             "attention_mask": torch.ones(shape, dtype=torch.long)}
    batch["attention_mask"][..., -2:] = 0  # some padding
    if kind == "tagging":
        batch["labels"] = torch.randint(0, len(LABELS), (4, 7), generator=generator)
    else:
        batch["labels"] = torch.randint(0, 3 if kind == "multiple_choice" else len(LABELS), (4,), generator=generator)
    return batch


def _config(method: str, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({"method": method, "model": "unused", "task": "sst2", "seed": 5,
                                  "mask": MaskConfig(blocks="1-3"), **overrides})


def _trained(method: str, base: Path, kind: str, steps: int = 2):
    """A model of ``kind`` prepared by ``method`` and trained a few Adam steps; returns (model, before, batch).

    ``model.new_parameters`` names the parameters the base checkpoint lacks (the head, a missing pooler).
    """
    torch.manual_seed(3)
    model = load_model(str(base), kind, LABELS)
    new = set(model.maskbench_new_parameters)
    model = get_method(method).prepare(model, _config(method))
    model.new_parameters = new
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(7)
    optimizer = torch.optim.Adam(get_method(method).trainable_parameters(model), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**_batch(kind, generator)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), before, _batch(kind, generator)


def _intended(method: str, name: str, new: set[str]) -> bool:
    """Whether ``method`` may change the parameter ``name`` (a name in the prepared model; ``new``: not pretrained)."""
    if method == "finetuning":
        return True
    if method == "masking":
        return name.endswith("mask_scores")
    if method == "bitfit":
        return name.endswith(".bias") or name in new
    adapted = r"\.layer\.[123]\."  # blocks "1-3"
    if method == "lora":
        return bool(re.search(r"\.lora_[AB]\.default\.weight$", name) and re.search(adapted, name)) or \
            "modules_to_save.default." in name
    if method == "ia3":
        return bool(re.search(r"\.ia3_l\.default$", name) and re.search(adapted, name)) or \
            "modules_to_save.default." in name
    raise AssertionError(method)


def test_the_method_names_are_the_registry():
    assert settings.METHODS == tuple(registered()) and tuple(registered())[:len(BUILTIN)] == tuple(
        info.name for info in BUILTIN)
    for name in settings.METHODS:
        assert get_method(name).name == name
    with pytest.raises(ConfigError, match="method: expected one of"):
        get_method("adapters")


def test_identity_of_finetuning_and_masking_runs_is_unchanged():
    """Pinned on the code before the registry and the LoRA settings existed (commit e0472b3)."""
    expected = {
        ("finetuning", "simple"): "678dbcd8c42f9b08", ("finetuning", "custom"): "7e42ea7dbd236523",
        ("masking", "simple"): "e1c8ec902c3d8cfe", ("masking", "custom"): "0be20d2b9a161f17",
    }
    for (method, variant), identity in expected.items():
        if variant == "simple":
            config = TrainConfig(method=method, model="minilm", task="sst2", seed=1, lr=5e-4)
        else:
            config = TrainConfig(method=method, model="bert-base-uncased", task="conll2003", seed=3, lr=1e-5,
                                 batch_size=16, mask=MaskConfig(blocks="0-11", initial_sparsity=0.1),
                                 max_train_examples=100)
        assert run_identity(config.to_dict()) == identity, (method, variant)
        # LoRA's settings do not enter the identity of methods that do not use them
        changed = TrainConfig.from_dict({**config.to_dict(), "lora_r": 4, "lora_alpha": 32.0, "mask": config.mask})
        assert run_identity(changed.to_dict()) == identity


def test_identity_of_new_methods_depends_on_their_settings_only():
    lora = TrainConfig(method="lora", model="minilm", task="sst2")
    rank16 = TrainConfig(method="lora", model="minilm", task="sst2", lora=LoraSettings(lora_r=16))
    assert run_identity(rank16.to_dict()) != \
        run_identity(lora.to_dict())
    # of the mask settings LoRA uses only the blocks
    sparser = TrainConfig(method="lora", model="minilm", task="sst2", mask=MaskConfig(initial_sparsity=0.2))
    assert run_identity(sparser.to_dict()) == run_identity(lora.to_dict())
    other_blocks = TrainConfig(method="lora", model="minilm", task="sst2", mask=MaskConfig(blocks="all"))
    assert run_identity(other_blocks.to_dict()) != run_identity(lora.to_dict())
    bitfit = TrainConfig(method="bitfit", model="minilm", task="sst2")
    assert run_identity(TrainConfig(method="bitfit", model="minilm", task="sst2", lora=LoraSettings(lora_r=2),
                                    mask=MaskConfig(blocks="all")).to_dict()) == run_identity(bitfit.to_dict())


@pytest.mark.parametrize("bad", [{"lora_r": 0}, {"lora_r": 2.5}, {"lora_alpha": 0}, {"lora_alpha": float("nan")},
                                 {"method": "lora", "save_weights": True}])
def test_bad_method_settings(bad):
    values = {"method": "lora", "model": "minilm", "task": "sst2", **bad}
    with pytest.raises(ConfigError, match=next(iter(k for k in bad if k != "method"))):
        TrainConfig.from_dict(values)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("method", settings.METHODS)
def test_only_intended_parameters_change_and_the_artefact_round_trips(tmp_path, method, arch, kind):
    base = _base_dir(tmp_path, arch)
    model, before, batch = _trained(method, base, kind)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(_intended(method, name, model.new_parameters) for name in trainable), sorted(trainable)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and changed <= trainable, sorted(changed - trainable)
    if method in ("lora", "ia3"):  # the adapted layers: six (LoRA) or three (IA3) per chosen block
        adapter = {name for name in trainable if "modules_to_save" not in name}
        assert len(adapter) == 3 * (12 if method == "lora" else 3)
        assert any("modules_to_save" in name for name in changed)  # the head trains
    if method == "bitfit":
        assert any(name.endswith(".bias") and ".layer." in name for name in changed)

    method_ = get_method(method)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        expected = model(**inputs).logits
    directory = method_.save(model, tmp_path / "artefact", base=str(base), extra={"task": "x"})
    loaded = method_.load(directory, base=str(base))
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, expected)
    assert method_of_artefact(directory) is method_
    assert method_.artefact_bytes(directory) > 0


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("method", NEW_METHODS)
def test_a_foreign_base_model_is_refused(tmp_path, method, arch):
    base = _base_dir(tmp_path, arch)
    model, _, _ = _trained(method, base, "single", steps=1)
    directory = get_method(method).save(model, tmp_path / "artefact", base=str(base))
    with pytest.raises(MaskFileError, match="not the model this artefact was trained on"):
        get_method(method).load(directory, base=str(_base_dir(tmp_path, arch, seed=1)))
    other = "bert" if arch != "bert" else "roberta"
    with pytest.raises(MaskFileError, match=r"not the model this artefact was trained on|other blocks|architecture"):
        get_method(method).load(directory, base=str(_base_dir(tmp_path / "other", other)))


@pytest.mark.parametrize("method", NEW_METHODS)
def test_a_corrupted_artefact_is_refused(tmp_path, method):
    base = _base_dir(tmp_path, "bert")
    model, _, _ = _trained(method, base, "single", steps=1)
    directory = get_method(method).save(model, tmp_path / "artefact", base=str(base))
    tensors = directory / get_method(method).tensor_files[0]
    tensors.write_bytes(tensors.read_bytes()[:-8])
    with pytest.raises(MaskFileError, match="checksum mismatch"):
        get_method(method).load(directory, base=str(base))


def test_lora_rank_and_alpha_reach_peft(tmp_path):
    base = _base_dir(tmp_path, "bert")
    model = get_method("lora").prepare(load_model(str(base), "single", LABELS),
                                       _config("lora", lora_r=2, lora_alpha=6.0))
    layer = model.get_submodule("base_model.model.bert.encoder.layer.1.attention.self.query")
    assert layer.lora_A["default"].weight.shape == (2, 32) and layer.scaling["default"] == 3.0
    assert model.get_submodule("base_model.model.bert.encoder.layer.0.attention.self.query").__class__.__name__ \
        == "Linear" and not hasattr(model.get_submodule("base_model.model.bert.encoder.layer.0.attention.self.query"),
                                    "lora_A")


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_adapters_need_a_block(method):
    with pytest.raises(ConfigError, match="needs at least one block"):
        get_method(method).check(TrainConfig(method=method, model="minilm", task="sst2",
                                             mask=MaskConfig(blocks="none")))


@pytest.mark.parametrize("task", [pytest.param("sst2", marks=needs_data), pytest.param("conll2003", marks=needs_data),
                                  "swag"])
@pytest.mark.parametrize("method", NEW_METHODS)
def test_training_runs_save_an_artefact_that_rebuilds_the_model(tiny_bert_dir, tmp_path, method, task):
    from maskbench.training.train import train

    out = tmp_path / "run"
    metrics = train(TrainConfig(method=method, model=str(tiny_bert_dir), task=task, seed=1, lr=1e-3, batch_size=8,
                                epochs=1, max_train_examples=16, max_eval_examples=16, out=str(out),
                                data_dir=str(FIXTURES if task == "swag" else DATA_DIR)))
    method_ = get_method(method)
    directory = out / method_.artefact
    assert metrics["artefact_bytes"] == method_.artefact_bytes(directory) > 0
    assert metrics["sparsity"] is None and not (out / "masks").exists()
    full = sum(p.numel() for p in load_model(str(tiny_bert_dir), TASKS[task].kind, TASKS[task].label_names)
               .parameters())
    assert 0 < metrics["trainable_parameters"] < full / 10
    check_recorded_scores(out)  # the recorded scores are those of the saved predictions
    model = method_.load(directory)
    assert model.maskbench_description["task"] == task and model.maskbench_description["method"] == method
    from maskbench.analysis.runs import load_run_model  # what the analyses (Table 3, Figs. 4-7) rebuild

    rebuilt = load_run_model(out)
    assert type(rebuilt) is type(model) and not rebuilt.training
    # (peft keeps a freshly initialised, unused copy of the head next to the trained one: "original_module")
    used = [name for name in model.state_dict() if "original_module" not in name]
    assert used and all(torch.equal(rebuilt.state_dict()[name], model.state_dict()[name]) for name in used)


def test_training_refuses_unknown_blocks_before_reading_data(tiny_bert_dir, tmp_path):
    from maskbench.training.train import train

    with pytest.raises(ConfigError, match="blocks"):
        train(TrainConfig(method="lora", model=str(tiny_bert_dir), task="sst2", mask=MaskConfig(blocks="2-40"),
                          data_dir=str(tmp_path / "nowhere"), out=str(tmp_path / "run")))


@needs_data
def test_cli_trains_lora_with_its_rank_and_alpha(tiny_bert_dir, tmp_path, capsys):
    import json

    from maskbench.cli import main

    code = main(["train", "--method", "lora", "--lora-r", "4", "--lora-alpha", "16", "--blocks", "3",
                 "--model", str(tiny_bert_dir), "--task", "sst2", "--lr", "1e-3", "--epochs", "1",
                 "--max-train-examples", "16", "--max-eval-examples", "16", "--data-dir", str(DATA_DIR),
                 "--out", str(tmp_path / "run")])
    assert code == 0
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert recorded["method"] == "lora" and recorded["config"]["lora"]["lora_r"] == 4  # nested: LoraSettings
    assert recorded["config"]["lora"]["lora_alpha"] == 16.0 and recorded["config"]["mask"]["blocks"] == "3"
    adapter = json.loads((tmp_path / "run" / "lora" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 16.0
    assert sorted(adapter["target_modules"]) == sorted(
        f"bert.encoder.layer.3.{name}" for name in ("attention.self.query", "attention.self.key",
                                                     "attention.self.value", "attention.output.dense",
                                                     "intermediate.dense", "output.dense"))
    code = main(["train", "--method", "bitfit", "--save-weights", "--model", str(tiny_bert_dir), "--task", "sst2",
                 "--lr", "1e-3", "--out", str(tmp_path / "x")])
    assert code == 2 and "save_weights: only for finetuning" in capsys.readouterr().err


def test_registry_attributes_stand_for_the_method_names():
    """What the code outside the methods asked of a method's name, it asks of the registry (issue 35 item 1)."""
    from maskbench.results.estimate import H200
    from maskbench.training.method_registry import masking_methods, registered

    assert masking_methods() == ["masking"]
    assert [name for name, info in registered().items() if info.full_weights] == ["finetuning"]
    assert {name: info.relative_step_cost for name, info in registered().items()} == \
        {"masking": 1.03, "finetuning": 1.0, "lora": 1.0, "bitfit": 1.0, "ia3": 1.0}
    assert not hasattr(H200, "masking_ratio")  # the step factor is the method's, not the GPU figure's
