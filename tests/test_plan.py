"""maskbench.results.plan: the checks and names the workflow's common.smk used to hold, as library functions (issue 35,
item 4). On the code before this change there is no maskbench.results.plan (and select.sorted_grid): every test fails at
import."""

from __future__ import annotations

import json
import types

import pytest

from maskbench.io.errors import ConfigError, RecordError, SettingError
from maskbench.results import plan
from maskbench.results.selection import round_grid, sorted_grid


def _config(**changes) -> dict:
    config = {"models": {"m": {"name": "minilm"}}, "tasks": ["rte", "mrpc"], "methods": ["finetuning", "masking"],
              "seeds": [1, 2], "lr_grid": {"finetuning": [1e-4], "masking": [1e-3, 3e-3]}, "analyses": {}}
    config.update(changes)
    return config


def test_sorted_grid_is_the_one_grid_order():
    assert sorted_grid([3e-3, "1.0e-3", 0.001, 1e-2]) == ["0.001", "0.003", "0.01"]
    assert round_grid([3e-3, 1e-3], None) == ["0.001", "0.003"]
    assert round_grid([1e-3], {"grid": ["0.001", "0.003"], "next_lr": 0.01, "round": 0}) == ["0.001", "0.003", "0.01"]


@pytest.mark.parametrize("changes, message", [
    ({"methods": ["finetuning", "masking", "lora"]}, r"'lr_grid': no grid for method\(s\) \['lora'\]"),
    ({"selection_seeds": [3]}, r"'selection_seeds': \[3\] must be a subset of 'seeds' \[1, 2\]"),
    ({"method_tasks": {"masking": ["sst2"]}}, r"'method_tasks.masking': the method must be in 'methods'"),
    ({"method_tasks": {"lora": ["rte"]}}, r"'method_tasks.lora'"),
])
def test_check_grid_names_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        plan.check_grid(_config(**changes))


def test_one_folder_per_value_is_a_setting_error_naming_the_key():
    with pytest.raises(SettingError) as caught:
        plan.check_grid(_config(lr_grid={"finetuning": [1e-4], "masking": [1e-3, 0.001]}))
    assert caught.value.key == "lr_grid.masking"
    plan.check_grid(_config())  # the valid grid passes


@pytest.mark.parametrize("analyses, message", [
    ({"tsne": {"model": "x", "task": "rte", "seed": 1}}, r"'analyses.tsne.model': 'x' is not a key of 'models'"),
    ({"tsne": {"model": "m", "task": "cola", "seed": 1}}, r"'analyses.tsne': task\(s\) \['cola'\] must be in"),
    ({"tsne": {"model": "m", "task": "rte", "seed": 7}}, r"'analyses.tsne.seed': 7 is not in 'seeds' \[1, 2\]"),
    ({"mask_similarity": {"model": "m", "tasks": ["rte"], "seed": 1}}, r"needs at least two tasks"),
    ({"bezier": {"model": "m", "task": "mrpc", "seed": 1}}, r"needs runs of \[\('mrpc', 'masking'\)\]"),
])
def test_check_analyses_names_the_key(analyses, message):
    runs = lambda task, method: not (task == "mrpc" and method == "masking")  # noqa: E731 (method_tasks)
    with pytest.raises(ConfigError, match=message):
        plan.check_analyses(_config(analyses=analyses), runs)


def test_sweeps_need_only_their_model():
    plan.check_analyses(_config(analyses={"sparsity": {"model": "m", "tasks": ["cola"]}}), lambda t, m: True)


def test_variant_names_read_back():
    name = plan.variant_name(0.05, "2-11")
    assert name == "masking_s0.05_b2-11" and plan.is_variant(name)
    assert plan.variant_overrides(name) == {"initial_sparsity": "0.05", "blocks": "2-11"}
    assert plan.variant_name(plan.variant_overrides("masking_s1e-05_b0,3")["initial_sparsity"], "0,3") == \
        "masking_s1e-05_b0,3"
    with pytest.raises(ConfigError):
        plan.variant_overrides("masking")


def test_analysis_names_and_tasks():
    analyses = {"sparsity": {"model": "m", "tasks": ["rte"]}, "tsne": {"model": "m", "task": "mrpc"},
                "generalization": {"model": "m", "sources": ["rte"], "targets": ["sst2"]}}
    assert plan.analysis_tasks(analyses["generalization"]) == ["rte"]
    assert plan.weight_cells(analyses) == {("m", "mrpc"), ("m", "rte")}
    assert plan.sweep_cells(analyses) == {("m", "rte")}
    assert plan.download_tasks(_config(analyses=analyses)) == ["rte", "mrpc", "sst2"]
    assert plan.analysis_outputs({"tsne": {}}) == ["figures/fig4_tsne.png", "figures/fig4_tsne.csv"]


def test_finished_runs_lists_only_the_workflows_paths(tmp_path):
    for folder in ("m/rte/masking/lr0.001/seed1", "m/rte/masking/lrx/seed1", "m/rte/masking/lr0.001/seedy"):
        (tmp_path / "runs" / folder).mkdir(parents=True)
        (tmp_path / "runs" / folder / "metrics.json").write_text("{}")
    found = plan.finished_runs(tmp_path)
    assert [parts for _, parts in found] == [{"model": "m", "task": "rte", "method": "masking", "lr": "0.001",
                                              "seed": "1"}]


def test_a_broken_run_record_names_the_folder_to_delete(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"task": "rte"}))
    with pytest.raises(RecordError, match=f"delete {tmp_path} to train this run again"):
        plan.finished_run(tmp_path / "metrics.json", {}, None)
    assert plan.finished_run(tmp_path / "missing" / "metrics.json", {}, None) is False


def test_schema_errors_get_a_hint_for_numbers_written_as_text():
    error = types.SimpleNamespace(validator="type", validator_value="number", instance="1e-5",
                                  absolute_path=["training", "lr"], message="'1e-5' is not of type 'number'")
    assert plan.schema_error_message(error, "c.yaml") == ("invalid configuration at 'training.lr' (c.yaml): '1e-5' "
                                                         "is not of type 'number' (YAML reads 1e-5 as text: write "
                                                         "1.0e-5)")
    error.instance, error.validator_value = "3", ["integer"]
    assert plan.type_hint(error) == " (the value is text: write the number without quotes)"


def test_a_table3_record_of_other_targets_is_refused_naming_the_file(tmp_path):
    """Table 3's per-source records are kept while they scored the configured targets (a committed record on a fresh
    checkout: its models are gone); one of other targets, order or split is refused with the file to delete."""
    from maskbench.results.plan import check_generalization_record, generalization_covers

    path = tmp_path / "sst2.json"
    check_generalization_record(path, ["sst2", "imdb"], "dev")  # not made yet: nothing to refuse
    path.write_text(json.dumps({"split": "dev", "target_order": ["sst2", "imdb"], "targets": {"sst2": {}, "imdb": {}}}))
    assert generalization_covers(path, ["sst2", "imdb"], "dev")
    check_generalization_record(path, ["sst2", "imdb"], "dev")
    for targets, split in ((["sst2", "sem", "imdb"], "dev"), (["imdb", "sst2"], "dev"), (["sst2", "imdb"], "test")):
        with pytest.raises(ConfigError) as error:
            check_generalization_record(path, targets, split)
        assert str(error.value).startswith(f"{path} scored sst2, imdb on dev, but 'analyses.generalization' asks "
                                           f"for {', '.join(targets)} on {split}: delete it"), error.value
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read this Table 3 record"):
        check_generalization_record(path, ["sst2"], "dev")
