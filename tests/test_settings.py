"""Run settings are declared once (the dataclasses of maskbench.training.settings): the command line and the workflow's
run settings are generated from their fields. No model is loaded here."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from maskbench import cli
from maskbench.io.errors import ConfigError
from maskbench.training import settings as run_settings
from maskbench.training.masking.config import MaskConfig
from maskbench.training.settings import (
    METHODS,
    TrainConfig,
    add_arguments,
    command_line,
    from_arguments,
    options,
    recorded_transfer,
    run_config,
    run_identity,
)


@dataclass
class WarmupConfig(TrainConfig):
    """A setting added the way the recipe says: one field with its help."""

    warmup_steps: int = field(default=0, metadata={"help": "linear warmup steps"})


def _parse(arguments: list[str], cls: type | None = None):
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return from_arguments(parser.parse_args(arguments), cls)


def test_a_new_field_reaches_the_command_line_and_the_workflow(monkeypatch):
    monkeypatch.setattr(run_settings, "TrainConfig", WarmupConfig)
    # the workflow's settings of a run (common.smk: expected_config -> run_config) ...
    run = run_config({"warmup_steps": 5, "epochs": 3}, method="masking", model="minilm", task="sst2", seed=2,
                     lr=1e-3, blocks="2-5")
    assert isinstance(run, WarmupConfig) and run.warmup_steps == 5 and run.epochs == 3
    # ... become the job's options (common.smk: train_options -> command_line) ...
    arguments = command_line(run, exclude=("out",))
    assert arguments[arguments.index("--warmup-steps") + 1] == "5"
    # ... which `maskbench train` parses back into the same settings, with no edit of the CLI
    args = cli.build_parser().parse_args(["train", *arguments, "--out", "run"])
    rebuilt = from_arguments(args)
    assert rebuilt == run
    # and it is part of the run's identity (a run with warmup is another run)
    assert run_identity(rebuilt.to_dict()) != run_identity(dataclasses.replace(rebuilt, warmup_steps=0).to_dict())
    assert "linear warmup steps" in cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()


def test_the_command_line_is_every_field():
    names = {option.name for option in options()}
    groups = {"mask": MaskConfig, **run_settings.METHOD_SETTINGS}
    expected = {f.name for f in dataclasses.fields(TrainConfig) if f.name not in groups}
    assert names == expected | {f.name for cls in groups.values() for f in dataclasses.fields(cls)}
    flags = {option.name: option.flag for option in options()}
    assert flags["mask_pooler"] == "--no-mask-pooler" and flags["train_classifier"] == "--train-classifier"
    assert flags["group_by_length"] == "--no-group-by-length" and flags["allow_partial"] == "--allow-partial-data"
    required = {option.name for option in options() if option.required}
    assert required == {"method", "task", "lr", "out"}


def test_cli_keeps_its_defaults_and_errors(capsys):
    config = _parse(["--method", "masking", "--task", "sst2", "--lr", "1e-3", "--out", "r"])
    assert config == TrainConfig(method="masking", model="minilm", task="sst2", lr=1e-3, out="r")
    with pytest.raises(SystemExit) as exit_info:
        _parse(["--method", "masking", "--task", "sst2", "--lr", "1e-3", "--out", "r", "--epochs", "2.5"])
    assert exit_info.value.code == 2 and "--epochs" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="initial_sparsity"):
        _parse(["--method", "masking", "--task", "sst2", "--lr", "1e-3", "--out", "r", "--initial-sparsity", "1.5"])


def test_run_config_gives_each_method_only_its_settings():
    settings = {"batch_size": 16, "initial_sparsity": 0.1, "threshold": 0.02, "train_classifier": True,
                "lora_r": 4, "lora_alpha": 16.0, "precision": "bf16"}
    common = dict(model="minilm", task="trec", seed=3, lr=1e-3, blocks="2-5")
    masking = run_config(settings, method="masking", **common)
    assert masking.mask == MaskConfig(initial_sparsity=0.1, threshold=0.02, train_classifier=True, blocks="2-5")
    assert (masking.lora.lora_r, masking.batch_size, masking.precision) == (8, 16, "bf16")
    lora = run_config(settings, method="lora", **common)
    assert lora.mask == MaskConfig(blocks="2-5") and (lora.lora.lora_r, lora.lora.lora_alpha) == (4, 16.0)
    finetuning = run_config(settings, method="finetuning", save_weights=True, **common)
    assert finetuning.mask == MaskConfig() and finetuning.lora.lora_r == 8 and finetuning.save_weights
    variant = run_config(settings, method="masking", mask_overrides={"initial_sparsity": "0.5", "blocks": "4-5"},
                         **common)
    assert variant.mask.initial_sparsity == 0.5 and variant.mask.blocks == "4-5"
    with pytest.raises(ConfigError, match="warmup_steps"):
        run_config({"warmup_steps": 3}, method="masking", **common)


_floats = st.floats(min_value=1e-6, max_value=0.5, allow_nan=False, allow_infinity=False)


@st.composite
def train_configs(draw):
    method = draw(st.sampled_from(METHODS))
    mask = MaskConfig(initial_sparsity=draw(st.floats(0.001, 0.999)), threshold=draw(_floats),
                      init_scale=draw(_floats), blocks=draw(st.sampled_from([None, "all", "2-5", "0,3"])),
                      mask_pooler=draw(st.booleans()), mask_classifier=draw(st.booleans()),
                      train_classifier=draw(st.booleans()))
    return TrainConfig(method=method, model=draw(st.sampled_from(["minilm", "bert-base-uncased"])),
                       task=draw(st.sampled_from(["sst2", "conll2003"])), seed=draw(st.integers(0, 2**32 - 1)),
                       lr=draw(_floats), batch_size=draw(st.integers(1, 512)), epochs=draw(st.integers(1, 20)),
                       max_length=draw(st.integers(8, 512)),
                       max_train_examples=draw(st.none() | st.integers(1, 10**6)), mask=mask,
                       lora=run_settings.LoraSettings(
                           lora_r=draw(st.integers(1, 64)), lora_alpha=draw(_floats),
                           lora_dropout=draw(st.sampled_from([0.0, 0.1])),
                           lora_targets=draw(st.sampled_from(["all", "query,value", "feedforward"]))),
                       ia3=run_settings.Ia3Settings(ia3_targets=draw(st.sampled_from(["key,value,output", "all"]))),
                       bitfit=run_settings.BitfitSettings(bitfit_biases=draw(st.sampled_from(["all", "query"]))),
                       group_by_length=draw(st.booleans()), precision=draw(st.sampled_from(["fp32", "bf16"])),
                       save_weights=method == "finetuning" and draw(st.booleans()),
                       data_dir=draw(st.none() | st.just("data dir/with spaces")), out="runs/x")


@hypothesis_settings(max_examples=60, deadline=None)
@given(train_configs())
def test_command_line_round_trips(config):
    assert _parse(command_line(config)) == config



def test_the_workflow_schema_names_exactly_the_library_s_tasks_methods_and_settings():
    """The schema's shared definitions ($defs) are the lists the library knows: nothing can be configured that a
    run cannot do, and nothing a run can do is missing (its `training` keys are TrainConfig/MaskConfig fields)."""
    from pathlib import Path

    import yaml

    from maskbench.data.tasks.registry import TASKS

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text())
    definitions = schema["$defs"]
    # methods: the schema cannot list them (a plugin registers more, maskbench.training.method_registry); it checks
    # the spelling, and planning accepts exactly the registered ones (maskbench.results.plan.check_grid)
    assert "enum" not in definitions["method_name"] and definitions["method_name"]["pattern"]
    from maskbench.io.errors import ConfigError
    from maskbench.results.plan import check_grid

    grid = {"methods": list(METHODS), "tasks": ["rte"], "seeds": [1], "analyses": {},
            "lr_grid": {method: [1e-3] for method in METHODS}}
    check_grid(grid)
    with pytest.raises(ConfigError, match="unknown method"):
        check_grid({**grid, "methods": [*METHODS, "nosuchmethod"], "lr_grid": {**grid["lr_grid"], "nosuchmethod": [1]}})
    assert set(definitions["task_name"]["enum"]) == set(TASKS)
    training_keys = set(definitions["training"]["properties"])
    assert training_keys <= {option.name for option in options()}
    text = yaml.safe_dump(schema)
    assert text.count("- mrpc") == 1 and "- lora" not in text  # the task list is written once, methods nowhere


_ENTRY = {"split": "dev", "max_length": 128, "limit": None, "accuracy": 0.8, "majority_baseline": 0.5, "examples": 9}


@pytest.mark.parametrize("record, found", [
    ({"transfer": {"imdb": _ENTRY}}, True),
    ({"transfer": {"imdb": {**_ENTRY, "max_length": 64}}}, False),  # made otherwise than the table asks
    ({"transfer": {"imdb": {**_ENTRY, "limit": 100}}}, False),
    ({"transfer": {"sst2": _ENTRY}}, False),  # another target
    ({}, False), ({"transfer": None}, False),
    ({"transfer": {"imdb": {"split": "dev", "max_length": 128, "limit": None}}}, False),  # no score in it
    ({"transfer": {"imdb": "0.8"}}, False), ({"transfer": ["imdb"]}, False), ([], False)])
def test_a_recorded_transfer_score_counts_only_when_made_as_asked(record, found):
    entry = recorded_transfer(record, "imdb", "dev", 128, None)
    assert (entry is not None) == found and (entry is None or entry["accuracy"] == 0.8)
