"""No record is trusted unchecked (issue 31, finding 4): every run record is read through :mod:`maskbench.records`.

A record with a NaN dev score, valid JSON of the wrong shape, a truncated file or a dev score that its stored
predictions do not give is refused with one line naming the file and the first problem — by the library's readers
(lr selection, aggregation, ensembles, run log, analyses) and by the workflow at planning time, never selected and
never a traceback. Every test here fails on the code before maskbench.records (checked against /work/main's code:
the old readers select the NaN run, raise KeyError/TypeError/AttributeError without the file, aggregate the
edited score, and the workflow plans on with a truncated record).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from conftest import REPO, snakemake
from maskbench.analysis.runs import run_record
from maskbench.io.errors import RecordError
from maskbench.records import (
    check_dev_score,
    check_run_record,
    load_runs,
    load_split,
    read_aggregate,
    read_chosen,
    read_run_record,
    read_selection_round,
    recomputed_dev_score,
    schema,
    split_predictions,
)
from maskbench.results.aggregate import write_aggregate
from maskbench.results.runlog import render_run_log
from maskbench.results.selection import write_selection
from run_records import accuracy_predictions, complete_record, write_run

RESULTS = REPO / "results" / "reference"
COMMITTED = sorted(RESULTS.glob("runs/*/*/*/*/*/metrics.json"))


def _run(lr: float = 1e-3, seed: int = 1, dev: float = 0.5) -> dict:
    return {"task": "rte", "method": "masking", "model": "m", "seed": seed, "lr": lr, "dev_score": dev,
            "artefact_sizes": None, "config": {"epochs": 3, "out": f"runs/lr{lr}/seed{seed}"}}


def _grid(tmp_path: Path, scores: dict[float, float]) -> list[Path]:
    """One finished run (seed 1) per lr, each with predictions giving its dev score."""
    return [write_run(tmp_path / "runs" / f"lr{lr}" / "seed1", _run(lr, 1, dev)) for lr, dev in scores.items()]


# --- the committed records -------------------------------------------------------------------------------------


@pytest.mark.skipif(not COMMITTED, reason="no committed reference runs")
def test_every_committed_record_is_valid_and_its_dev_score_is_what_its_predictions_give():
    """All 160 committed runs pass the schema and the recomputation exactly (max difference 0.0): two tagging
    runs have one dev word whose two top tags tie in float16, where only the stored top tag is the prediction."""
    worst = 0.0
    for path in COMMITTED:
        record = read_run_record(path)
        worst = max(worst, abs(recomputed_dev_score(path.parent, record) - record["dev_score"]))
    assert worst == 0.0
    for path in sorted(RESULTS.glob("selection/*/*/*/round*.json")):
        read_selection_round(path)
    for path in sorted(RESULTS.glob("selection/*/*/*/chosen.json")):
        read_chosen(path)
    for path in sorted(RESULTS.glob("aggregate/*/*/*.json")):
        read_aggregate(path)


def test_a_tagging_prediction_is_the_stored_top_tag_also_when_float16_ties_it(tmp_path):
    """Two top tags whose log-probabilities round to one float16 value: the argmax of the loaded distribution is
    the lower tag id, the run's prediction (and its recorded score) is the stored first tag."""
    tensors = {"dev_top_labels": np.array([[2, 1, 0], [0, 1, 2]], np.uint8),
               "dev_top_log_probs": np.array([[-1.009, -1.009, -2.2], [-0.1, -3.0, -4.0]], np.float16),
               "dev_num_labels": np.array([3]), "dev_labels": np.array([2, 0], np.uint8),
               "dev_lengths": np.array([2], np.uint8)}
    save_file(tensors, str(tmp_path / "predictions.safetensors"))
    assert load_split(tmp_path, "dev")["logits"].argmax(-1).tolist() == [1, 0]  # the tie goes to tag 1
    assert split_predictions(tmp_path, "dev")["predictions"].tolist() == [2, 0]


# --- finding 4: NaN, wrong shapes, truncation -------------------------------------------------------------------


def test_a_nan_dev_score_is_never_chosen_by_lr_selection(tmp_path):
    paths = _grid(tmp_path, {1e-3: 0.5, 3e-3: 0.75})
    record = json.loads(paths[0].read_text())
    record["dev_score"] = math.nan
    record["history"][0]["dev_score"] = math.nan
    record["dev_scores"] = [math.nan]
    paths[0].write_text(json.dumps(record))  # Python writes the token NaN, which its json module reads back
    with pytest.raises(RecordError, match=rf"^{re.escape(str(paths[0]))}: non-finite number NaN") as error:
        write_selection(paths, tmp_path / "round0.json", [1e-3, 3e-3], [1], {"max_extensions": 0}, 0)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "round0.json").exists()


def test_a_non_finite_score_written_as_null_is_refused(tmp_path):
    """maskbench's own writer turns NaN into null and lists it under non_finite: still no score."""
    paths = _grid(tmp_path, {1e-3: 0.5})
    record = json.loads(paths[0].read_text())
    record.update(dev_score=None, non_finite=["dev_score=nan"])
    paths[0].write_text(json.dumps(record))
    with pytest.raises(RecordError, match=rf"^{re.escape(str(paths[0]))}: invalid record at 'dev_score': null is "):
        load_runs(paths)


BROKEN = {
    "config is a number": lambda record: {"config": 5},
    "config of a record is a number": lambda record: {**record, "config": 5},
    "no lr": lambda record: {key: value for key, value in record.items() if key != "lr"},
    "null": lambda record: None,
    "a list": lambda record: [record],
    "truncated": lambda record: json.dumps(record)[: len(json.dumps(record)) // 2],
    "empty": lambda record: "",
    "history shorter than epochs_run": lambda record: {**record, "epochs_run": 2},
    "dev_score not the best epoch's": lambda record: {**record, "dev_score": 0.25},
    "task differs from the config's": lambda record: {**record, "task": "mrpc"},
}
EXPECTED = {"config is a number": "'task' is missing", "config of a record is a number": "at 'config': 5 is invalid",
            "no lr": "'lr' is missing", "null": "expected a JSON object", "a list": "expected a JSON object",
            "truncated": "truncated", "empty": "truncated or empty", "history shorter than epochs_run":
            "history has 1 entries for epochs_run 2", "dev_score not the best epoch's": "is not history[0].dev_score",
            "task differs from the config's": "task 'mrpc' differs from config.task 'rte'"}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_record_is_refused_naming_the_file_by_every_reader(tmp_path, case):
    path = write_run(tmp_path / "runs" / "minilm" / "rte" / "masking" / "lr0.001" / "seed1", _run())
    broken = BROKEN[case](json.loads(path.read_text()))
    path.write_text(broken if isinstance(broken, str) else json.dumps(broken))
    for read in (read_run_record, lambda p: load_runs([p]), run_record,
                 lambda p: write_aggregate([p], tmp_path / "aggregate.json"),
                 lambda p: render_run_log(tmp_path, "minilm")):
        with pytest.raises(RecordError) as error:
            read(path)
        message = str(error.value)
        assert message.startswith(f"{path}: ") and EXPECTED[case] in message and "\n" not in message, message


# --- finding 4: an edited dev score ----------------------------------------------------------------------------


def test_aggregation_refuses_a_dev_score_its_predictions_do_not_give(tmp_path):
    """A careful edit (dev_score, the history and dev_scores alike) passes the schema; the predictions say 43.75."""
    logits, labels = accuracy_predictions(0.4375, examples=16)
    paths = [write_run(tmp_path / f"seed{seed}", _run(seed=seed), logits, labels) for seed in (1, 2)]
    record = json.loads(paths[1].read_text())
    record["dev_score"] = record["history"][0]["dev_score"] = 0.99
    record["dev_scores"] = [0.99]
    paths[1].write_text(json.dumps(record))
    read_run_record(paths[1])  # a consistent record
    with pytest.raises(RecordError, match=rf"^{re.escape(str(paths[1]))}: dev_score 0.99 disagrees with 0.4375 "
                                          rf"recomputed from {re.escape(str(paths[1].parent))}/predictions"):
        write_aggregate(paths, tmp_path / "aggregate.json")
    assert not (tmp_path / "aggregate.json").exists()
    with pytest.raises(RecordError, match="dev_score 0.99 disagrees with 0.4375"):
        write_selection(paths, tmp_path / "round0.json", [1e-3], [1, 2], {}, 0)
    write_aggregate(paths[:1], tmp_path / "aggregate.json")  # the untouched run aggregates
    assert json.loads((tmp_path / "aggregate.json").read_text())["dev"]["mean"] == 0.4375


def test_a_dev_score_within_float_rounding_is_accepted_and_missing_predictions_are_refused(tmp_path):
    path = write_run(tmp_path / "run", _run(dev=0.6))
    record = read_run_record(path)
    check_dev_score(path, {**record, "dev_score": 0.6 + 1e-12})
    with pytest.raises(RecordError, match="disagrees"):
        check_dev_score(path, {**record, "dev_score": 0.6 + 1e-6})
    (path.parent / "predictions.safetensors").unlink()
    with pytest.raises(RecordError, match=rf"predictions.safetensors: cannot recompute the dev score of "
                                          rf"{re.escape(str(path))}"):
        check_dev_score(path, record)


# --- the workflow ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["truncated", "nan", "wrong shape"])
def test_the_workflow_stops_at_planning_naming_an_invalid_record_and_the_folder_to_delete(tmp_path, case):
    """A run record of config/ci.yaml's grid that cannot be trusted stops the dry run with one message (file, first
    problem, what to delete); the record is left where it is. (Snakemake would neither retrain it, the file exists,
    nor could anything read it: the old code took a truncated record for unfinished but planned nothing.)"""
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    (tmp_path / "ci.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "results" / "runs" / "minilm" / "trec" / "masking" / "lr0.0005" / "seed1"
    record = complete_record({"task": "trec", "method": "masking", "model": "minilm", "seed": 1, "lr": 5e-4,
                              "dev_score": 0.5, "config": {"out": str(run)}})
    text = {"truncated": json.dumps(record)[:200],
            "nan": json.dumps({**record, "dev_score": math.nan}),
            "wrong shape": json.dumps({**record, "config": 5})}[case]
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(text)
    result = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "ci.yaml"), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    expected = {"truncated": "truncated", "nan": "non-finite number NaN",
                "wrong shape": "invalid record at 'config': 5 is invalid"}
    assert f"metrics.json: {expected[case]}" in output, output[-2000:]
    assert f"delete {Path('results') / 'runs' / 'minilm' / 'trec' / 'masking' / 'lr0.0005' / 'seed1'}" in output
    assert "Traceback" not in output, output[-3000:]
    assert (run / "metrics.json").read_text() == text


# --- any damage of a required value ------------------------------------------------------------------------------


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _required_paths() -> list[tuple[tuple, dict]]:
    """(path, sub-schema) of every required value: top level, config, config.mask and a history entry."""
    root = schema("run")
    paths = []
    for prefix, node in (((), root), (("config",), _resolve(root["properties"]["config"], root))):
        for key in node["required"]:
            paths.append(((*prefix, key), _resolve(node["properties"][key], root)))
    mask = _resolve(root["$defs"]["config"]["properties"]["mask"], root)
    paths += [(("config", "mask", key), mask["properties"][key]) for key in mask["required"]]
    history = root["properties"]["history"]["items"]
    paths += [(("history", 0, key), history["properties"][key]) for key in history["required"]]
    return paths


REQUIRED = _required_paths()
#: a value of each JSON type, as JSON Schema types it (3 is an integer and a number)
SAMPLES = {"string": "text", "integer": 3, "number": 1.5, "null": None, "array": [1], "object": {"a": 1},
           "boolean": True}


def _wrong_values(node: dict) -> list:
    """Values of a type the sub-schema does not allow (every sample for an enum of strings)."""
    if "enum" in node:
        return [value for value in SAMPLES.values() if value not in node["enum"]]
    allowed = set(node["type"] if isinstance(node["type"], list) else [node["type"]])
    if "number" in allowed:
        allowed.add("integer")
    return [SAMPLES[kind] for kind in SAMPLES if kind not in allowed]


def _base_records() -> list[dict]:
    records = [json.loads(path.read_text()) for path in COMMITTED[:: max(1, len(COMMITTED) // 12)]]
    return records or [complete_record(_run())]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(_base_records()), target=st.sampled_from(REQUIRED), data=st.data())
def test_a_record_missing_a_required_value_or_holding_a_wrong_one_is_refused_naming_the_file(base, target, data):
    """Any committed record with one required key dropped, or its value replaced by one of a wrong type, NaN or
    ±infinity, is a RecordError naming the file — never a KeyError, TypeError or a silently used value."""
    path, node = target
    record = json.loads(json.dumps(base))
    parent = record
    for part in path[:-1]:
        parent = parent[part]
    mutation = data.draw(st.sampled_from(["drop", "wrong type", "nan", "inf", "-inf"]), label="mutation")
    if mutation == "drop":
        del parent[path[-1]]
    elif mutation == "wrong type":
        parent[path[-1]] = data.draw(st.sampled_from(_wrong_values(node)), label="value")
    else:
        parent[path[-1]] = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[mutation]
    with tempfile.TemporaryDirectory() as scratch:
        file = Path(scratch) / "metrics.json"
        file.write_text(json.dumps(record))
        with pytest.raises(RecordError) as error:
            read_run_record(file)
        assert str(error.value).startswith(f"{file}: ") and "\n" not in str(error.value)
        with pytest.raises(RecordError):  # the same record built in memory (not read from a file)
            check_run_record(record, file)


@pytest.mark.skipif(not COMMITTED, reason="no committed reference runs")
@pytest.mark.parametrize("damage", ["null mean", "NaN token", "not an object"])
def test_table1_refuses_an_aggregate_without_finite_scores_naming_it(tmp_path, monkeypatch, damage):
    """An aggregate whose dev mean is null (a NaN run written by maskbench's JSON writer) or NaN crashed Table 1 with
    a TypeError; now a RecordError names the file."""
    from maskbench.results import tables

    monkeypatch.chdir(REPO)
    layout = tables.Layout.from_config(yaml.safe_load((REPO / "config" / "reference.yaml").read_text()))
    paths = [str(RESULTS / f"aggregate/{m}/{t}/{k}.json") for m, t, k in layout.cells()]
    record = json.loads(Path(paths[0]).read_text())
    text = {"null mean": json.dumps({**record, "dev": {**record["dev"], "mean": None}}),
            "NaN token": json.dumps({**record, "dev": {**record["dev"], "mean": math.nan}}),
            "not an object": "[]"}[damage]
    (tmp_path / "bad.json").write_text(text)
    paths[0] = str(tmp_path / "bad.json")
    with pytest.raises(RecordError, match=rf"^{re.escape(paths[0])}: "):
        tables.write_table("table1_dev", layout.to_dict(), [tmp_path / "t1.md"], aggregates=paths)
