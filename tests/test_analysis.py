"""The paper's analyses (maskbench.analysis): formulas on hand-made inputs, and every analysis on real (tiny) runs,
checked against what the runs themselves recorded (e.g. the end points of a path score what the runs scored)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA_DIR, needs_data, require_data, save_tiny_bert
from maskbench.analysis import connectivity, generalization, mask_similarity, sweeps, tsne
from maskbench.analysis.runs import load_run_model
from maskbench.data.prepare import prepare
from maskbench.io.errors import ConfigError, DataError, MaskbenchError, RecordError
from maskbench.records import SCORED_AFTER_TRAINING, add_transfer_scores
from maskbench.training.train import TrainConfig, label_map, run_transfer, train
from run_records import complete_record

pytestmark = pytest.mark.xdist_group("analysis")  # the module fixture `tiny_runs` trains once, on one worker

MAX_LENGTH = 32
EVAL = 40  # dev examples scored by the runs and by the analyses


# --- formulas -----------------------------------------------------------------------------------------------


def test_dissimilarity_is_the_share_of_changes_that_differ():
    initial = torch.tensor([1, 1, 1, 1, 0, 1], dtype=torch.bool)
    first = torch.tensor([0, 1, 1, 1, 1, 1], dtype=torch.bool)  # flipped 0 and 4
    second = torch.tensor([0, 0, 1, 1, 0, 1], dtype=torch.bool)  # flipped 0 and 1
    # the masks differ at 1 and 4; training changed 2 + 2 entries
    assert mask_similarity.dissimilarity(first, second, initial) == pytest.approx(0.5)
    assert mask_similarity.dissimilarity(first, first, initial) == 0.0
    third = torch.tensor([1, 1, 0, 0, 0, 1], dtype=torch.bool)  # flipped 2 and 3: disjoint from first
    assert mask_similarity.dissimilarity(first, third, initial) == 1.0
    assert np.isnan(mask_similarity.dissimilarity(initial, initial, initial))


def test_bezier_curve_ends_at_the_minima_and_is_the_line_when_bends_lie_on_it():
    generator = torch.Generator().manual_seed(0)
    start = {"w": torch.randn(4, 3, generator=generator), "b": torch.randn(3, generator=generator)}
    end = {"w": torch.randn(4, 3, generator=generator), "b": torch.randn(3, generator=generator)}
    bends = [{k: torch.randn_like(v) for k, v in start.items()} for _ in range(3)]
    for name in start:
        assert torch.allclose(connectivity.bezier_point(0.0, start, bends, end)[name], start[name])
        assert torch.allclose(connectivity.bezier_point(1.0, start, bends, end)[name], end[name])
    assert sum(connectivity.bezier_weights(0.37, 4)) == pytest.approx(1.0)
    on_line = [connectivity.interpolate(start, end, i / 4) for i in range(1, 4)]
    for t in (0.2, 0.5, 0.9):
        point = connectivity.bezier_point(t, start, on_line, end)
        line = connectivity.interpolate(start, end, t)
        assert all(torch.allclose(point[k], line[k], atol=1e-6) for k in start)


def _fake_run(path: Path, task: str, seed: int, sparsity: float, blocks: str, dev: float, lr: float = 1e-3) -> str:
    path.mkdir(parents=True)
    record = {"task": task, "method": "masking", "model": "m", "seed": seed, "lr": lr, "metric": "accuracy",
              "dev_score": dev, "sparsity": sparsity + 0.01,
              "config": {"batch_size": 32, "epochs": 3, "mask": {"initial_sparsity": sparsity, "blocks": blocks}}}
    (path / "metrics.json").write_text(json.dumps(complete_record(record)))  # what maskbench.records accepts
    return str(path / "metrics.json")


def test_sweeps_average_seeds_and_render_fig1_fig2_table7(tmp_path):
    paths, expected = [], {}
    for task in ("mrpc", "rte"):
        for blocks in ("0-11", "8-11"):
            for sparsity in (0.05, 0.15):
                scores = [0.6 + 0.1 * sparsity + (0.01 if blocks == "0-11" else 0) + 0.02 * s for s in (1, 2)]
                expected[(task, blocks, sparsity)] = np.mean(scores), np.std(scores)
                for seed, score in zip((1, 2), scores):
                    paths.append(_fake_run(tmp_path / f"{task}{blocks}{sparsity}{seed}", task, seed, sparsity,
                                           blocks, score))
    points = sweeps.sweep_points(paths)
    assert len(points) == 8
    for point in points:
        mean, std = expected[(point["task"], point["blocks"], point["initial_sparsity"])]
        assert point["dev_mean"] == pytest.approx(mean) and point["dev_std"] == pytest.approx(std)
        assert point["seeds"] == [1, 2]
    out = tmp_path / "out"
    tables = [out / f"table7_layers{suffix}" for suffix in (".md", ".tex", ".csv")]
    sweeps.write_layers(paths, ["0-11", "8-11"], out / "fig2.png", out / "fig2.csv", tables)
    assert (out / "fig2.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.reader(tables[2].open()))
    assert rows[0] == ["Blocks", "MRPC 5%", "MRPC 15%", "RTE 5%", "RTE 15%"] and rows[1][0] == "00-11"
    mean, std = expected[("rte", "8-11", 0.15)]
    assert rows[2][4] == f"{100 * mean:.1f} ± {100 * std:.1f}"
    labelled = sweeps.layers_table(points, ["0-11", "8-11"], {"rte": "RTE (subset)"})
    assert labelled.headers == ["Blocks", "MRPC 5%", "MRPC 15%", "RTE (subset) 5%", "RTE (subset) 15%"]
    assert "RTE (subset) accuracy" in labelled.notes[1]
    sweeps.write_sparsity_figure(paths[:8], out / "fig1.png", out / "fig1.csv")
    assert len(list(csv.DictReader((out / "fig1.csv").open()))) == 4

    mixed = _fake_run(tmp_path / "other-lr", "mrpc", 3, 0.05, "0-11", 0.7, lr=5e-4)
    with pytest.raises(ConfigError, match="differ in model/lr"):
        sweeps.sweep_points([paths[0], mixed])


def test_fig2_reads_block_sets_as_top_down_or_bottom_up_and_table7_marks_one_seed(tmp_path):
    assert [sweeps.layer_direction(b, 0, 5) for b in ("0-5", "1-5", "4-5", "0-4", "0-1", "2-3", "0-2,4", None)] == [
        "all", "top-down", "top-down", "bottom-up", "bottom-up", "other", "other", "other"]
    assert sweeps.layer_direction("5", 0, 5) == "top-down" and sweeps.layer_direction("0", 0, 5) == "bottom-up"
    order = ["0-5", "3-5", "0-2", "1-4"]
    paths = [_fake_run(tmp_path / blocks, "rte", 1, 0.05, blocks, dev)
             for blocks, dev in zip(order, (0.57, 0.62, 0.56, 0.55))]
    out = tmp_path / "out"
    tables = [out / f"table7_layers{suffix}" for suffix in (".md", ".csv")]
    sweeps.write_layers(paths, order, out / "fig2.png", out / "fig2.csv", tables)
    rows = list(csv.reader(tables[1].open()))
    assert [row[1] for row in rows[1:]] == ["57.0", "62.0", "56.0", "55.0"]  # one seed: no "± 0.0"
    table = sweeps.layers_table(sweeps.sweep_points(paths), order)
    assert "a value without ± is one seed" in table.caption and table.notes[-1] == "Seeds: one seed (1)."
    assert [p["one_class_seeds"] for p in sweeps.sweep_points(paths)] == [None] * 4  # no predictions stored

    # a run whose dev predictions are one class for every example is marked (the majority-class collapse)
    from safetensors.numpy import save_file

    labels = np.array([0, 1, 1, 0, 1])
    for path, predicted in zip(paths[:2], ([1, 1, 1, 1, 1], [0, 1, 1, 1, 1])):
        logits = np.eye(2, dtype=np.float32)[predicted]
        save_file({"dev_logits": logits, "dev_labels": labels}, str(Path(path).parent / "predictions.safetensors"))
    assert sweeps.one_class(paths[0]) is True and sweeps.one_class(paths[1]) is False
    assert sweeps.one_class(paths[2]) is None
    points = sweeps.sweep_points(paths[:2])
    assert [p["one_class_seeds"] for p in points] == [1, 0]
    table = sweeps.layers_table(points, order)
    assert [row[1] for row in table.rows[:2]] == ["57.0 †", "62.0"]
    assert table.notes[-1].startswith("† every seed predicts one class")
    sweeps.write_sparsity_figure(paths[:2], out / "fig1.png", out / "fig1.csv")
    assert [row["one_class_seeds"] for row in csv.DictReader((out / "fig1.csv").open())] == ["1", "0"]


# --- every analysis on real tiny runs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A tiny random BERT, SST-2 and SEM prepared for it, and masking / finetuning runs (seed 1)."""
    require_data()

    root = tmp_path_factory.mktemp("analysis")
    model_dir = save_tiny_bert(root / "tiny-bert", hidden_size=64, intermediate_size=128)
    model = str(model_dir)
    prepared = {task: root / f"prepared-{task}" for task in ("sst2", "sem")}
    for task, path in prepared.items():
        prepare(task, model, path, DATA_DIR, MAX_LENGTH)
    runs = {}
    common = dict(model=model, seed=1, batch_size=16, epochs=2, max_length=MAX_LENGTH, max_train_examples=96,
                  max_eval_examples=EVAL)
    for task in ("sst2", "sem"):
        for method, lr in (("masking", 5e-3), ("finetuning", 1e-3)):
            out = root / f"{task}-{method}"
            train(TrainConfig(method=method, task=task, lr=lr, prepared=str(prepared[task]), out=str(out),
                              save_weights=method == "finetuning", **common))
            runs[(task, method)] = out
    # a masking run that cannot move its scores across the threshold: its trained masks are its initial masks
    runs[("sst2", "frozen")] = root / "sst2-frozen"
    train(TrainConfig(method="masking", task="sst2", lr=1e-20, prepared=str(prepared["sst2"]),
                      out=str(runs[("sst2", "frozen")]), **{**common, "epochs": 1}))
    return {"model": model, "prepared": prepared, "runs": runs, "root": root}


def _dev_score(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["dev_score"]


@needs_data
def test_generalization_scores_each_source_model_on_every_target(tiny_runs):
    runs, prepared = tiny_runs["runs"], tiny_runs["prepared"]
    targets = {task: {"prepared": prepared[task], "max_length": MAX_LENGTH, "limit": EVAL} for task in prepared}
    out = tiny_runs["root"] / "generalization" / "masking-sst2.json"
    source = tiny_runs["root"] / "generalization" / "sst2-masking"  # the step adds its scores to the run's record
    shutil.copytree(runs[("sst2", "masking")], source)
    result = generalization.write_transfer([source], targets, tiny_runs["model"], out)
    on_disk = json.loads(out.read_text())
    assert on_disk["source"] == "sst2" and set(on_disk["targets"]) == {"sst2", "sem"} and "versions" in on_disk
    # scored on its own dev subset, the model scores what its run recorded
    assert result["targets"]["sst2"]["accuracy"] == [pytest.approx(_dev_score(runs[("sst2", "masking")]))]
    sem = result["targets"]["sem"]
    assert sem["improvement_mean"] == pytest.approx(sem["accuracy_mean"] - sem["majority_baseline"])
    assert 0.5 <= sem["majority_baseline"] <= 1 and sem["examples"] == EVAL
    finetuned = generalization.transfer_scores([runs[("sem", "finetuning")]], targets, tiny_runs["model"])
    assert finetuned["targets"]["sem"]["accuracy"] == [pytest.approx(_dev_score(runs[("sem", "finetuning")]))]
    table = generalization.generalization_table([result, finetuned], "Tiny")
    assert table.headers == ["Method", "Trained on", "SST2", "SEM"]
    assert table.rows[0][:2] == ["Masking", "SST2"] and table.rows[1][:2] == ["Finetuning", "SEM"]
    # a configuration's task names (a capped training set says so) reach every place the table names a task
    labelled = generalization.generalization_table([result, finetuned], "Tiny", {"sst2": "SST2 (10k of 67k)"})
    assert labelled.headers == ["Method", "Trained on", "SST2 (10k of 67k)", "SEM"]
    assert labelled.rows[0][:2] == ["Masking", "SST2 (10k of 67k)"] and labelled.rows[1][:2] == ["Finetuning", "SEM"]
    assert labelled.notes[0].index("SST2 (10k of 67k) ") < labelled.notes[0].index("SEM ")  # the columns' order
    assert "of masked and finetuned Tiny." in labelled.caption
    assert "of Tiny adapted by each method." in generalization.generalization_table(
        [result, {**finetuned, "method": "lora"}], "Tiny").caption
    with pytest.raises(ConfigError, match="labels"):
        label_map("sst2", "trec")


@needs_data
def test_table3_adds_the_scores_it_computed_to_the_runs_records(tiny_runs, tmp_path):
    """A run that finished before its target was added to Table 3 is scored from its model; the step adds those
    scores to the run's record (marked as scored after training, with the target files' fingerprint), so that the
    Table 3 record is made again from the run records alone, with no model: what a committed Table 3 rests on."""
    prepared = tiny_runs["prepared"]
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["runs"][("sst2", "masking")], run)
    before = json.loads((run / "metrics.json").read_text())
    assert before["transfer"] is None and before["data"]
    targets = {task: {"prepared": prepared[task], "max_length": MAX_LENGTH, "limit": EVAL} for task in ("sem", "sst2")}
    result = generalization.write_transfer([run], targets, tiny_runs["model"], tmp_path / "table3.json")
    assert result["recorded"] == [["sem", "sst2"]]
    after = json.loads((run / "metrics.json").read_text())
    assert {k: v for k, v in after.items() if k not in ("transfer", "data")} == {
        k: v for k, v in before.items() if k not in ("transfer", "data")}, "only the scores and their data are added"
    for target in targets:
        entry = after["transfer"][target]
        assert entry[SCORED_AFTER_TRAINING] is True
        assert (entry["split"], entry["max_length"], entry["limit"]) == ("dev", MAX_LENGTH, EVAL)
        assert [entry["accuracy"]] == result["targets"][target]["accuracy"]
        assert entry["majority_baseline"] == result["targets"][target]["majority_baseline"]
    added = {key: value for key, value in after["data"].items() if key not in before["data"]}
    assert {key.split("/")[:2][0] for key in added} == {"sem"} and all("/dev/" in key for key in added), added
    assert {key: after["data"][key] for key in before["data"]} == before["data"]
    prepared_sem = json.loads((prepared["sem"] / "prepared.json").read_text())["data"]
    assert added == {key: value for key, value in prepared_sem.items() if key.startswith("sem/dev/")}

    # the record alone (no masks: what is committed) gives the same Table 3 record, every score read from it
    alone = tmp_path / "record-only"
    alone.mkdir()
    shutil.copy(run / "metrics.json", alone / "metrics.json")
    again = generalization.transfer_scores([alone], targets, tiny_runs["model"])
    assert again["recorded"] == [["sem", "sst2"]] and again["targets"] == result["targets"]
    assert json.loads((tmp_path / "table3.json").read_text())["targets"] == json.loads(json.dumps(result["targets"]))

    # what a run recorded while training is never replaced, nor scores of other data added
    trained = {**after, "transfer": {**after["transfer"], "sem": {**after["transfer"]["sem"],
                                                                    SCORED_AFTER_TRAINING: False}}}
    (alone / "metrics.json").write_text(json.dumps(trained))
    with pytest.raises(RecordError, match="recorded while training on sem"):
        add_transfer_scores(alone / "metrics.json", {"sem": after["transfer"]["sem"]}, {})
    key = next(iter(before["data"]))
    with pytest.raises(DataError, match="other contents"):
        add_transfer_scores(alone / "metrics.json", {"sst2": after["transfer"]["sst2"]}, {key: "0" * 64})
    assert json.loads((alone / "metrics.json").read_text()) == trained


@needs_data
@pytest.mark.parametrize("method, lr", [("masking", 5e-3), ("finetuning", 1e-3)])
def test_a_run_records_its_transfer_scores_so_table3_needs_no_saved_model(tiny_runs, tmp_path, method, lr):
    prepared = tiny_runs["prepared"]
    folder = tmp_path / "prepared"  # transfer_prepared holds FOLDER/TASK, as the workflow's prepared data
    folder.mkdir()
    for task, path in prepared.items():
        (folder / task).symlink_to(path)
    out = tmp_path / "run"
    record = train(TrainConfig(method=method, task="sst2", lr=lr, model=tiny_runs["model"], seed=1, batch_size=16,
                               epochs=1, max_length=MAX_LENGTH, max_train_examples=96, max_eval_examples=EVAL,
                               prepared=str(prepared["sst2"]), out=str(out), transfer="sem,sst2",
                               transfer_prepared=str(folder), save_weights=method == "finetuning"))
    assert list(record["transfer"]) == ["sem", "sst2"]
    assert json.loads((out / "metrics.json").read_text())["transfer"] == record["transfer"]
    # on its own dev subset the run scores what it recorded as its dev score
    assert record["transfer"]["sst2"]["accuracy"] == pytest.approx(record["dev_score"])
    sem = record["transfer"]["sem"]
    assert (sem["split"], sem["max_length"], sem["limit"], sem["examples"]) == ("dev", MAX_LENGTH, EVAL, EVAL)
    targets = {task: {"prepared": prepared[task], "max_length": MAX_LENGTH, "limit": EVAL} for task in prepared}

    # the same run scored from its saved model (its record without "transfer") gives the recorded scores
    from_model = tmp_path / "from-model"
    shutil.copytree(out, from_model)
    (from_model / "metrics.json").write_text(json.dumps({**record, "transfer": None}))
    scored = generalization.transfer_scores([from_model], targets, tiny_runs["model"])
    # the run's record alone (no masks, no weights: what is committed) is enough
    alone = tmp_path / "record-only"
    alone.mkdir()
    shutil.copy(out / "metrics.json", alone / "metrics.json")
    recorded = generalization.transfer_scores([alone], targets, tiny_runs["model"])
    assert scored["recorded"] == [[]] and recorded["recorded"] == [["sst2", "sem"]]
    for task in targets:
        assert recorded["targets"][task]["accuracy"] == scored["targets"][task]["accuracy"], task
        assert recorded["targets"][task]["majority_baseline"] == scored["targets"][task]["majority_baseline"]
        assert recorded["targets"][task]["examples"] == scored["targets"][task]["examples"] == EVAL

    # without prepared data the targets are read and tokenised now: the same scores
    config = TrainConfig(**{**record["config"], "transfer_prepared": None, "data_dir": str(DATA_DIR)})
    assert run_transfer(load_run_model(out), config) == record["transfer"]

    # asked for other settings than the run recorded, the step needs the model, and says which file is missing
    other = {task: {**spec, "limit": EVAL - 8} for task, spec in targets.items()}
    with pytest.raises(MaskbenchError, match="record-only.*(masks|model).*missing"):
        generalization.transfer_scores([alone], other, tiny_runs["model"])


@pytest.mark.parametrize("task, transfer, split, message", [
    ("sst2", "trec", "dev", "labels"),            # other label names
    ("sst2", "nosuchtask", "dev", "unknown task"),
    ("mrpc", "sst2", "dev", "single-sentence"),   # a pair task is no Table 3 source
    ("sst2", "sem,,imdb", "dev", "distinct task names"),
    ("sst2", "imdb,sst2", "test", "'sst2' has no labelled test split"),  # GLUE's test labels are not public
])
def test_transfer_targets_are_checked_before_any_work(tmp_path, task, transfer, split, message):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        train(TrainConfig(method="masking", model="minilm", task=task, lr=1e-3, out=str(out), transfer=transfer,
                          transfer_split=split))
    assert not out.exists()


@needs_data
def test_mask_dissimilarity_redraws_the_initial_masks_exactly(tiny_runs):
    runs = tiny_runs["runs"]
    rows = mask_similarity.mask_dissimilarities([runs[("sst2", "frozen")], runs[("sem", "masking")]])
    # the frozen run never changed its masks: so they are the redrawn initial masks, entry for entry
    assert rows and all(row["changed_1"] == 0 for row in rows)
    assert sum(row["changed_2"] for row in rows) > 0
    # only the sem run changed anything, so wherever it did the two trained masks differ: s = 1
    assert all(row["s"] == 1.0 for row in rows if row["changed_2"])
    assert {row["role"] for row in rows} == set(mask_similarity.ROLES) and {row["block"] for row in rows} == {2, 3}
    out = tiny_runs["root"] / "fig5"
    mask_similarity.write_mask_similarity([runs[("sst2", "masking")], runs[("sem", "masking")]], ["W_O", "W_I"],
                                          None, out / "fig5.png", out / "fig5.csv")
    assert (out / "fig5.png").read_bytes()[:4] == b"\x89PNG"
    values = [float(r["s"]) for r in csv.DictReader((out / "fig5.csv").open()) if r["s"] != "nan"]
    assert values and all(0 <= v <= 1 for v in values)
    with pytest.raises(ConfigError, match="finetuning|masking runs"):
        mask_similarity.mask_dissimilarities([runs[("sst2", "finetuning")], runs[("sem", "masking")]])


@needs_data
def test_line_segments_end_at_the_scores_the_runs_recorded(tiny_runs):
    runs = tiny_runs["runs"]
    finetuned, masked = runs[("sst2", "finetuning")], runs[("sst2", "masking")]
    result = connectivity.line_scores(finetuned, masked, tiny_runs["prepared"]["sst2"], MAX_LENGTH, points=3,
                                      limit=EVAL)
    by_segment = {}
    for point in result["points"]:
        by_segment.setdefault(point["segment"], []).append(point["dev_score"])
    assert set(by_segment) == {"finetuned->masked", "pretrained->finetuned", "pretrained->masked"}
    assert by_segment["finetuned->masked"][0] == pytest.approx(_dev_score(finetuned))
    assert by_segment["finetuned->masked"][-1] == pytest.approx(_dev_score(masked))
    assert by_segment["pretrained->masked"][-1] == pytest.approx(_dev_score(masked))
    assert by_segment["pretrained->finetuned"][0] == by_segment["pretrained->masked"][0]
    out = tiny_runs["root"] / "fig6"
    connectivity.write_line_scores(finetuned, masked, tiny_runs["prepared"]["sst2"], MAX_LENGTH,
                                   out / "sst2.json", points=3, limit=EVAL)
    connectivity.write_lines_figure([out / "sst2.json"], out / "fig6.png", out / "fig6.csv")
    assert (out / "fig6.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list(csv.DictReader((out / "fig6.csv").open()))) == 9
    with pytest.raises(ConfigError, match="different tasks"):
        connectivity.endpoint_states(finetuned, runs[("sem", "masking")])


@needs_data
def test_bezier_curve_trains_and_keeps_its_end_points(tiny_runs):
    runs = tiny_runs["runs"]
    finetuned, masked = runs[("sst2", "finetuning")], runs[("sst2", "masking")]
    out = tiny_runs["root"] / "fig7"
    result = connectivity.write_bezier(finetuned, masked, tiny_runs["prepared"]["sst2"], MAX_LENGTH,
                                       out / "sst2.json", bends=2, epochs=1, lr=1e-3, batch_size=16,
                                       max_train_examples=48, points=3, limit=EVAL)
    assert result["train_examples"] == 48 and result["train_loss"]["first"] > 0
    for curve in ("line", "bezier"):
        scores = [p["dev_score"] for p in result["points"] if p["curve"] == curve]
        assert scores[0] == pytest.approx(_dev_score(finetuned)) and scores[-1] == pytest.approx(_dev_score(masked))
    connectivity.write_bezier_figure([out / "sst2.json"], out / "fig7.png", out / "fig7.csv")
    assert (out / "fig7.png").read_bytes()[:4] == b"\x89PNG"


@needs_data
def test_tsne_embeds_three_encoders(tiny_runs):
    runs = tiny_runs["runs"]
    out = tiny_runs["root"] / "fig4"
    points = tsne.write_tsne(runs[("sst2", "finetuning")], runs[("sst2", "masking")], tiny_runs["prepared"]["sst2"],
                             MAX_LENGTH, out / "fig4.png", out / "fig4.csv", limit=EVAL)
    assert {p["encoder"] for p in points} == {"pretrained", "finetuned", "masked"} and len(points) == 3 * EVAL
    assert {p["label"] for p in points} <= {"negative", "positive"}
    assert (out / "fig4.png").read_bytes()[:4] == b"\x89PNG"
