"""The PEFT methods' settings (LoRA r/alpha/dropout/targets, IA3 targets, BitFit biases): declared once as nested
settings of TrainConfig, generated into the command line and the workflow's ``training:``, in the identity of the
method that uses them only, and every committed run keeps its identity.

Checked to fail on the code before (``PYTHONPATH=/work/main/src``): ``LoraSettings`` and the options
``--lora-dropout``, ``--lora-targets``, ``--ia3-targets``, ``--bitfit-biases`` did not exist (import error)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from maskbench.data.models import load_model
from maskbench.io.errors import ConfigError
from maskbench.training.settings import (
    METHODS,
    BitfitSettings,
    Ia3Settings,
    LoraSettings,
    TrainConfig,
    add_arguments,
    command_line,
    config_hash,
    from_arguments,
    result_key,
    run_config,
    run_identity,
)

REPO = Path(__file__).resolve().parents[1]
RECORDS = sorted((REPO / "results" / "reference" / "runs").glob("*/*/*/*/*/metrics.json"))


def test_every_committed_run_keeps_its_identity_in_the_new_spelling():
    """Each committed record (flat ``lora_r``/``lora_alpha``) and the same settings rebuilt as today's TrainConfig
    (nested ``lora``, ``ia3``, ``bitfit`` with their new keys at the old behaviour) have the record's own
    ``config_hash`` (what the aggregates' setting hashes and resumes compare) and one run identity."""
    # the 160 records this migration was written for and those committed since: every tracked record
    assert len(RECORDS) >= 160
    if shutil.which("git") and (REPO / ".git").exists():
        tracked = subprocess.run(["git", "ls-files", "results/reference/runs/*metrics.json"], cwd=REPO,
                                 capture_output=True, text=True, check=True).stdout.split()
        assert sorted(REPO / path for path in tracked) == RECORDS
    methods = set()
    for path in RECORDS:
        record = json.loads(path.read_text())
        rebuilt = TrainConfig.from_dict(record["config"])
        assert config_hash(result_key(record["config"])) == record["config_hash"], path
        assert config_hash(rebuilt.result_key()) == record["config_hash"], path
        assert run_identity(rebuilt.to_dict()) == run_identity(record["config"]), path
        methods.add(rebuilt.method)
    assert methods == set(METHODS)


@pytest.mark.parametrize("method, change", [
    ("lora", {"lora": LoraSettings(lora_dropout=0.1)}), ("lora", {"lora": LoraSettings(lora_targets="query,value")}),
    ("lora", {"lora": LoraSettings(lora_r=4)}), ("ia3", {"ia3": Ia3Settings(ia3_targets="all")}),
    ("ia3", {"ia3": Ia3Settings(ia3_feedforward="none")}),
    ("bitfit", {"bitfit": BitfitSettings("query,intermediate")})])
def test_a_method_s_own_settings_change_its_identity_only(method, change):
    base = TrainConfig(method=method, model="minilm", task="sst2")
    assert run_identity(TrainConfig(method=method, model="minilm", task="sst2", **change).to_dict()) != \
        run_identity(base.to_dict())
    for other in set(METHODS) - {method}:  # another method's identity ignores them
        assert run_identity(TrainConfig(method=other, model="minilm", task="sst2", **change).to_dict()) == \
            run_identity(TrainConfig(method=other, model="minilm", task="sst2").to_dict())


def test_spellings_of_the_same_layers_are_one_setting():
    assert LoraSettings(lora_targets="query,key,value,attention_output,intermediate,output") == LoraSettings()
    assert LoraSettings(lora_targets="feedforward,attention").lora_targets == "all"
    assert Ia3Settings(ia3_targets="output,value,key") == Ia3Settings()
    assert BitfitSettings("intermediate,query").bitfit_biases == "query,intermediate"


@pytest.mark.parametrize("bad, key", [
    ({"lora_dropout": 1.0}, "lora_dropout"), ({"lora_dropout": -0.1}, "lora_dropout"),
    ({"lora_targets": "qkv"}, "lora_targets"), ({"lora_targets": ""}, "lora_targets"),
    ({"ia3_targets": "key,,value"}, "ia3_targets"), ({"ia3_feedforward": "query"}, "ia3_feedforward"),
    ({"bitfit_biases": "layernorm"}, "bitfit_biases"), ({"lora": {"rank": 4}}, "lora"), ({"ia3": 3}, "ia3")])
def test_bad_method_settings_name_their_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        TrainConfig.from_dict({"method": "lora", "model": "minilm", "task": "sst2", **bad})


def test_the_settings_reach_the_command_line_and_the_workflow():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    arguments = ["--method", "lora", "--task", "sst2", "--lr", "1e-3", "--out", "r", "--lora-dropout", "0.1",
                 "--lora-targets", "attention", "--ia3-targets", "all", "--bitfit-biases", "query"]
    config = from_arguments(parser.parse_args(arguments))
    assert config.lora == LoraSettings(lora_dropout=0.1, lora_targets="attention")
    assert config.ia3.ia3_targets == "all" and config.bitfit.bitfit_biases == "query"
    assert from_arguments(parser.parse_args(command_line(config))) == config
    # the workflow's training: keys are flat; each method gets only its own
    settings = {"lora_r": 4, "lora_dropout": "0.05", "ia3_targets": "key,value", "ia3_feedforward": "none",
                "bitfit_biases": "attention"}
    lora = run_config(settings, method="lora", model="minilm", task="sst2", seed=1, lr=1e-3, blocks="2-5")
    assert lora.lora == LoraSettings(lora_r=4, lora_dropout=0.05) and lora.ia3 == Ia3Settings()
    ia3 = run_config(settings, method="ia3", model="minilm", task="sst2", seed=1, lr=1e-3, blocks="2-5")
    assert ia3.ia3 == Ia3Settings("key,value", "none") and ia3.lora == LoraSettings()
    bitfit = run_config(settings, method="bitfit", model="minilm", task="sst2", seed=1, lr=1e-3)
    assert bitfit.bitfit.bitfit_biases == "query,key,value,attention_output"


def _prepared(tiny_bert_dir, method: str, **settings):
    from maskbench.training.masking.config import MaskConfig
    from maskbench.training.methods import get_method

    model = load_model(str(tiny_bert_dir), "single", ("a", "b"))
    config = TrainConfig.from_dict({"method": method, "model": "unused", "task": "sst2",
                                    "mask": MaskConfig(blocks="1"), **settings})
    return get_method(method).prepare(model, config)


def test_lora_dropout_and_targets_reach_peft(tiny_bert_dir):
    model = _prepared(tiny_bert_dir, "lora", lora_dropout=0.25, lora_targets="query,intermediate")
    adapted = sorted(name for name, module in model.named_modules() if hasattr(module, "lora_A"))
    assert [name.split("encoder.layer.")[1] for name in adapted] == ["1.attention.self.query", "1.intermediate.dense"]
    query = model.get_submodule(adapted[0])
    assert query.lora_dropout["default"].p == 0.25
    default = _prepared(tiny_bert_dir, "lora")  # six layers, no dropout: the committed runs' LoRA
    adapted = [module for module in default.modules() if hasattr(module, "lora_A")]
    assert len(adapted) == 6 and all(type(m.lora_dropout["default"]).__name__ == "Identity" for m in adapted)


def test_ia3_targets_reach_peft(tiny_bert_dir):
    model = _prepared(tiny_bert_dir, "ia3", ia3_targets="query,value,intermediate", ia3_feedforward="none")
    scaled = {name.split("encoder.layer.")[1]: module.is_feedforward for name, module in model.named_modules()
              if hasattr(module, "ia3_l")}
    assert scaled == {"1.attention.self.query": False, "1.attention.self.value": False, "1.intermediate.dense": False}
    default = _prepared(tiny_bert_dir, "ia3")
    scaled = {name.split("encoder.layer.")[1]: module.is_feedforward for name, module in default.named_modules()
              if hasattr(module, "ia3_l")}
    assert scaled == {"1.attention.self.key": False, "1.attention.self.value": False, "1.output.dense": True}


def test_bitfit_biases_choose_what_trains(tiny_bert_dir):
    every = {name for name, p in _prepared(tiny_bert_dir, "bitfit").named_parameters() if p.requires_grad}
    assert "bert.embeddings.LayerNorm.bias" in every and "bert.encoder.layer.0.attention.self.key.bias" in every
    chosen = {name for name, p in _prepared(tiny_bert_dir, "bitfit", bitfit_biases="query,intermediate")
              .named_parameters() if p.requires_grad}
    blocks = {name for name in chosen if name.startswith("bert.encoder.")}
    assert blocks and all(name.endswith((".attention.self.query.bias", ".intermediate.dense.bias"))
                          for name in blocks)
    assert "classifier.weight" in chosen and "bert.embeddings.LayerNorm.bias" not in chosen
