"""Aggregation over seeds and the rendered tables and figure, from synthetic per-cell records."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from maskbench.io.errors import ConfigError
from maskbench.results.aggregate import aggregate_runs, check_same_setting, setting_hash
from maskbench.results.figures import write_memory_figure
from maskbench.results.tables import MISSING, TABLES, load_results, short_count, short_lr, table1_dev, write_table
from maskbench.training.settings import config_hash
from maskbench.training.sizes import safetensors_summary


@pytest.mark.parametrize("method", ["masking", "finetuning"])
def test_setting_hash_without_varied_keys_is_the_run_config_hash(method):
    from maskbench.training.train import TrainConfig

    config = TrainConfig(method=method, model="minilm", task="trec", seed=3, lr=1e-3, out="x", data_dir="d",
                         prepared="p", device="cpu")
    metrics = {"config": config.to_dict()}
    # with nothing left out it is exactly the run's own config_hash: the two know the same result keys
    assert setting_hash(metrics, vary=()) == config_hash(config.result_key())
    other_seed = TrainConfig(**{**config.to_dict(), "seed": 4, "out": "y"})
    assert setting_hash({"config": other_seed.to_dict()}) == setting_hash(metrics)
    assert setting_hash({"config": other_seed.to_dict()}, vary=()) != setting_hash(metrics, vary=())


def _metrics(seed, dev, test=None, **config):
    base = {"method": "finetuning", "model": "m", "task": "trec", "seed": seed, "lr": 1e-4, "epochs": 3}
    base.update(config)
    return {"task": "trec", "method": "finetuning", "model": "m", "metric": "accuracy", "kind": "single",
            "lr": 1e-4, "seed": seed, "dev_score": dev, "test_score": test, "best_epoch": 2, "epochs_run": 3,
            "train_time_s": 1.0, "trainable_parameters": 10, "sizes": {"train": 100, "dev": 20, "test": 10},
            "word_counts": None, "sparsity": None, "config": base, "config_hash": f"h{seed}",
            "versions": {}, "device": "cpu"}


def test_aggregate_mean_and_population_std():
    result = aggregate_runs([_metrics(2, 0.8, 0.7), _metrics(1, 0.6, 0.9)], ["b/metrics.json", "a/metrics.json"])
    assert result["seeds"] == [1, 2] and result["dev"]["scores"] == [0.6, 0.8]
    assert result["dev"]["mean"] == pytest.approx(0.7) and result["dev"]["std"] == pytest.approx(0.1)
    assert result["test"]["mean"] == pytest.approx(0.8) and result["runs"] == ["a/metrics.json", "b/metrics.json"]


def test_aggregate_refuses_mixed_configurations_naming_the_runs():
    with pytest.raises(ConfigError, match=r"refusing to combine.*run-a.*run-b|refusing to combine.*run-b.*run-a"):
        aggregate_runs([_metrics(1, 0.8), _metrics(2, 0.7, epochs=10)], ["run-a", "run-b"])
    with pytest.raises(ConfigError, match="same seed appears twice"):
        aggregate_runs([_metrics(1, 0.8), _metrics(1, 0.7)], ["a", "b"])
    assert check_same_setting([_metrics(1, 0.8), _metrics(2, 0.7, lr=3e-4)], vary=("seed", "lr"))


def test_safetensors_summary_reads_the_header(tmp_path):
    save_file({"a": np.zeros((3, 4), dtype=np.float32), "b": np.zeros(5, dtype=np.uint8)}, str(tmp_path / "x"))
    summary = safetensors_summary(tmp_path / "x")
    assert summary == {"bytes": (tmp_path / "x").stat().st_size, "values": 17, "tensors": 2}


def test_number_formats():
    assert short_lr(0.0003) == "3e-4" and short_lr("1e-05") == "1e-5" and short_lr(1.1e-4) == "1.1e-4"
    assert short_count(3668) == "3.7k" and short_count(67349) == "67k" and short_count(800) == "800"


# --- tables from per-cell records --------------------------------------------------------------------------

LAYOUT = {"models": {"bert": {"name": "bert-base-uncased", "label": "BERT"}}, "tasks": ["mrpc", "trec"],
          "methods": ["finetuning", "masking"], "seeds": [1, 2], "initial_grids": {"finetuning": [1e-5, 3e-5],
                                                                                   "masking": [1e-4, 3e-4]}}


ARTEFACTS = {"masking": {"1": {"mask_bits": 71_368_704, "mask_bytes": 8_921_500, "head_parameters": 1538,
                               "head_bytes": 6_300}},
             "lora": {"1": {"task_parameters": 300_000, "task_bytes": 1_200_000}},
             "bitfit": {"1": {"task_parameters": 100_000, "task_bytes": 400_000}},
             "ia3": {"1": {"task_parameters": 50_000, "task_bytes": 200_000}}}


def _cells(tmp_path, override=None, layout=LAYOUT):
    """Write choice, aggregate, ensemble and evaluation records of every cell; return the path lists."""
    paths = {"choices": [], "aggregates": [], "ensembles": [], "evaluations": []}
    for task in layout["tasks"]:
        for method in layout["methods"]:
            if task not in layout.get("method_tasks", {}).get(method, layout["tasks"]):
                continue
            lr = 3e-5 if method == "finetuning" else 5e-4
            common = {"task": task, "method": method, "model": "bert-base-uncased", "lr": lr,
                      "setting_hash": f"{task}-{method}"}
            has_test = task == "trec"
            records = {
                "choices": {**common, "lr": format(lr, ".6g"), "outside_initial_grid": method == "masking",
                            "capped": False, "extensions": 1, "setting_hash": "x"},
                "aggregates": {**common, "metric": "accuracy", "seeds": [1, 2],
                               "dev": {"mean": 0.861, "std": 0.008}, "sizes": {"train": 3668, "dev": 408},
                               "word_counts": None,
                               "artefacts": ARTEFACTS.get(method)},
                "ensembles": {**common, "chosen": "mean_logits", "chosen_dev_score": 0.87},
                "evaluations": {**common, "has_test": has_test,
                                **({"single": {"mean": 0.967, "std": 0.01, "error_rate": 3.3},
                                    "ensemble": {"method": "mean_logits", "score": 0.968, "error_rate": 3.2}}
                                   if has_test else {})},
            }
            for kind, record in records.items():
                if override and (task, method, kind) in override:
                    record.update(override[(task, method, kind)])
                path = tmp_path / kind / f"{task}-{method}.json"
                path.parent.mkdir(exist_ok=True)
                path.write_text(json.dumps(record))
                paths[kind].append(str(path))
    references = []
    for task in layout["tasks"]:
        path = tmp_path / f"reference-{task}.json"
        path.write_text(json.dumps({"pretrained_parameters": 109_482_240, "pretrained_bytes": 437_950_000,
                                    "head_parameters": 1538, "finetuned_bytes": 437_958_000,
                                    "finetuned_parameters": 109_483_778}))
        references.append(str(path))
    return paths, references


def test_table1_layout_matches_the_paper(tmp_path):
    paths, _ = _cells(tmp_path)
    table = table1_dev(load_results(LAYOUT, aggregates=paths["aggregates"]))
    assert table.headers == ["", "", "MRPC", "TREC"]
    assert table.rows[0] == ["", "train size", "3.7k", "3.7k"]
    assert table.rows[1] == ["BERT", "Finetuning", "86.1 ± 0.8", "86.1 ± 0.8"]
    assert table.rows[2][:2] == ["", "Masking"]
    assert "$\\pm$" in table.latex() and "| BERT" in table.markdown()


def test_all_tables_write_three_formats(tmp_path):
    paths, references = _cells(tmp_path)
    out = tmp_path / "tables"
    inputs = {"table1_dev": {"aggregates": paths["aggregates"]},
              "table2_test": {"aggregates": paths["aggregates"], "evaluations": paths["evaluations"],
                              "references": references},
              "table4_lr": {"choices": paths["choices"]},
              "table5_sizes": {"aggregates": paths["aggregates"]},
              "table8_memory": {"aggregates": paths["aggregates"], "references": references}}
    for name, kwargs in inputs.items():
        files = [out / f"{name}{suffix}" for suffix in (".md", ".tex", ".csv")]
        write_table(name, LAYOUT, files, **kwargs)
        assert all(f.stat().st_size > 0 for f in files)
        rows = list(csv.reader(io.StringIO(files[2].read_text())))
        assert len({len(row) for row in rows}) == 1  # a rectangular CSV
    table2 = (out / "table2_test.md").read_text()
    assert "| TREC" in table2 and "MRPC" not in table2.split("\n")[2]  # only tasks with a test set
    assert "3.30" in table2 and "3.20" in table2
    # memory: masking = pretrained + masks + head; ensemble of 2 adds a second set; finetuning = 2 full models
    assert "447" in table2 and "456" in table2 and "438" in table2 and "876" in table2
    assert "5e-4†" in (out / "table4_lr.md").read_text()
    table8 = (out / "table8_memory.md").read_text()
    assert "109,482,240" in table8 and "71,368,704 bits" in table8 and "8,921.500" in table8
    write_table("summary", LAYOUT, [out / "summary.csv"], **paths)
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert len(summary) == 4 and summary[0]["dev_mean"] == "0.861"


@pytest.mark.parametrize(("selection_seeds", "table1", "table4"), [
    (None, "2 seeds (1, 2) at the lr chosen on dev.", "(highest mean dev score over seeds)"),
    ([1], "2 seeds (1, 2) at the lr chosen on dev with seed 1 only.", "(highest dev score of seed 1)"),
    ([1, 2], "2 seeds (1, 2) at the lr chosen on dev.", "(highest mean dev score over seeds)")])
def test_captions_say_on_which_seeds_the_lr_was_chosen(tmp_path, selection_seeds, table1, table4):
    layout = {**LAYOUT, "selection_seeds": selection_seeds} if selection_seeds else LAYOUT
    paths, _ = _cells(tmp_path, layout=layout)
    results = load_results(layout, aggregates=paths["aggregates"], choices=paths["choices"])
    assert table1_dev(results).caption.endswith(table1)
    assert table4 in TABLES["table4_lr"].build(results).caption


def test_a_table_of_runs_in_different_precisions_says_so(tmp_path):
    out = tmp_path / "tables"
    paths, _ = _cells(tmp_path)
    write_table("table1_dev", LAYOUT, [out / "same.md"], aggregates=paths["aggregates"])
    assert "precision" not in (out / "same.md").read_text()  # one precision (records without the key: fp32)
    paths, _ = _cells(tmp_path, override={("trec", "masking", "aggregates"): {"config": {"precision": "bf16"}}})
    write_table("table1_dev", LAYOUT, [out / "mixed.md"], aggregates=paths["aggregates"])
    text = (out / "mixed.md").read_text()
    assert "different precisions" in text and "bf16: TREC Masking" in text and "fp32: MRPC Finetuning" in text


def test_tables_refuse_cells_mixing_configurations(tmp_path):
    paths, _ = _cells(tmp_path, override={("trec", "masking", "evaluations"): {"setting_hash": "stale"}})
    with pytest.raises(ConfigError, match=r"refusing to mix runs of different configurations.*stale"):
        load_results(LAYOUT, aggregates=paths["aggregates"], evaluations=paths["evaluations"])
    paths, _ = _cells(tmp_path, override={("mrpc", "finetuning", "aggregates"): {"lr": 9e-5}})
    with pytest.raises(ConfigError, match="different lrs"):
        load_results(LAYOUT, choices=paths["choices"], aggregates=paths["aggregates"])


def test_records_must_belong_to_their_cell(tmp_path):
    paths, _ = _cells(tmp_path)
    swapped = [paths["aggregates"][1], paths["aggregates"][0], *paths["aggregates"][2:]]
    with pytest.raises(ConfigError, match="the table expects 'finetuning'"):
        load_results(LAYOUT, aggregates=swapped)
    with pytest.raises(ConfigError, match="3 files for 4 cells"):
        load_results(LAYOUT, aggregates=paths["aggregates"][:3])


def test_memory_figure_png_and_data(tmp_path):
    paths, references = _cells(tmp_path)
    points = write_memory_figure(LAYOUT, tmp_path / "fig3.png", tmp_path / "fig3.csv", paths["aggregates"],
                                 references)
    assert (tmp_path / "fig3.png").read_bytes()[:4] == b"\x89PNG"
    finetuning = [p for p in points if p["method"] == "finetuning"]
    masking = [p for p in points if p["method"] == "masking"]
    assert [p["tasks"] for p in finetuning] == [1, 2] and [p["tasks"] for p in masking] == [1, 2]
    # finetuning grows by a full model per task, masking by masks and head
    assert finetuning[1]["bytes"] - finetuning[0]["bytes"] == 437_958_000
    assert masking[1]["bytes"] - masking[0]["bytes"] == 8_921_500 + 6_300
    assert len((tmp_path / "fig3.csv").read_text().splitlines()) == 5


def test_measured_serving_memory_in_table8_and_fig3(tmp_path):
    paths, references = _cells(tmp_path)
    serving = tmp_path / "serving.json"
    points = [{"method": method, "tasks": tasks, "model_rss_mb": value}
              for method, tasks, value in (("masking", 1, 420.0), ("finetuning", 1, 430.0), ("masking", 2, 425.0),
                                           ("finetuning", 2, 850.0))]
    serving.write_text(json.dumps({"points": points}))
    table = write_table("table8_memory", LAYOUT, [tmp_path / "t8.md"], aggregates=paths["aggregates"],
                        references=references, serving=[str(serving)])
    row = next(row for row in table.rows if row[1].startswith("serving"))
    # the most tasks measured, MiB converted to KB (1,000 bytes)
    assert row[1] == "serving 2 tasks (resident, measured)"
    assert row[4:] == [f"{850 * 2**20 / 1000:,.3f}", f"{425 * 2**20 / 1000:,.3f}"]
    write_memory_figure(LAYOUT, tmp_path / "fig3.png", tmp_path / "fig3.csv", paths["aggregates"], references,
                        [str(serving)])
    # in MB (10^6 bytes), the unit of the other panels and of the tables (serving records MiB)
    measured = [r for r in csv.DictReader((tmp_path / "fig3.csv").open()) if r["resident_mb"]]
    assert [(r["method"], r["tasks"], float(r["resident_mb"])) for r in measured] == [
        (method, tasks, mib * 2**20 / 1e6) for method, tasks, mib in
        (("masking", "1", 420.0), ("finetuning", "1", 430.0), ("masking", "2", 425.0), ("finetuning", "2", 850.0))]
    with pytest.raises(ConfigError, match="serving: 2 files for 1 models"):
        write_table("table8_memory", LAYOUT, [tmp_path / "t8.md"], aggregates=paths["aggregates"],
                    references=references, serving=[str(serving)] * 2)


FIVE = {**LAYOUT, "methods": ["finetuning", "masking", "lora", "bitfit", "ia3"],
        "initial_grids": {**LAYOUT["initial_grids"], "lora": [1e-4], "bitfit": [1e-3], "ia3": [3e-3]}}


def test_the_paper_tables_keep_their_layout_with_the_paper_methods(tmp_path):
    paths, references = _cells(tmp_path)
    results = load_results(LAYOUT, aggregates=paths["aggregates"], references=references)
    assert table1_dev(results).caption.startswith("Table 1: Dev set task performances (%) of masking and finetuning,")
    assert TABLES["table8_memory"].build(results).headers == ["", "", "Parameters: finetuning", "Parameters: masking",
                                                        "Memory (KB): finetuning", "Memory (KB): masking"]
    table9 = TABLES["table9_bytes"].build(results)
    assert [row[1] for row in table9.rows] == ["Finetuning", "Masking (packed bits)", "Masking (Rice-coded)"]
    # the runs stored packed masks and their aggregates predate the other format's size: that cell is missing
    assert table9.rows[1][3] == "8,927.800" and table9.rows[2][3] == "–" and table9.rows[0][3] == "437,958.000"


def test_further_methods_add_rows_columns_and_curves(tmp_path):
    artefacts = {"1": {**ARTEFACTS["masking"]["1"],
                       "mask_bytes_by_format": {"packed-bits-v1": 8_921_500, "rice-gaps-v1": 2_600_000}}}
    override = {(task, "masking", "aggregates"): {"artefacts": artefacts} for task in FIVE["tasks"]}
    paths, references = _cells(tmp_path, override=override, layout=FIVE)
    out = tmp_path / "tables"
    results = load_results(FIVE, aggregates=paths["aggregates"], evaluations=paths["evaluations"],
                           choices=paths["choices"], references=references)
    table1 = table1_dev(results)
    assert [row[1] for row in table1.rows[1:]] == ["Finetuning", "Masking", "LoRA", "BitFit", "IA3"]
    assert "finetuning, masking, LoRA, BitFit and IA3" in table1.caption
    table2 = TABLES["table2_test"].build(results)
    lora = [row for row in table2.rows if row[1] == "LoRA"]
    assert lora and lora[0][-1] == "439"  # pretrained 437.95 MB + a 1.2 MB adapter
    table4 = TABLES["table4_lr"].build(results)
    assert [row[1] for row in table4.rows] == ["Finetuning", "Masking", "LoRA", "BitFit", "IA3"]
    table8 = TABLES["table8_memory"].build(results)
    assert table8.headers[4:7] == ["Parameters: LoRA", "Parameters: BitFit", "Parameters: IA3"]
    assert table8.rows[1][4] == "+ 300,000" and table8.rows[1][-3] == "+ 1,200.000"
    assert len({len(row) for row in [table8.headers, *table8.rows]}) == 1
    table9 = TABLES["table9_bytes"].build(results)
    assert [row[1:4] for row in table9.rows] == [
        ["Finetuning", "86.1", "437,958.000"], ["Masking (packed bits)", "86.1", "8,927.800"],
        ["Masking (Rice-coded)", "86.1", "2,606.300"], ["LoRA", "86.1", "1,200.000"], ["BitFit", "86.1", "400.000"],
        ["IA3", "86.1", "200.000"]]
    write_table("table9_bytes", FIVE, [out / "t9.md", out / "t9.tex", out / "t9.csv"],
                aggregates=paths["aggregates"], references=references)
    assert "Rice-coded" in (out / "t9.md").read_text()
    points = write_memory_figure(FIVE, out / "fig3.png", out / "fig3.csv", paths["aggregates"], references)
    curves = {(p["method"], p["tasks"]): p["bytes"] for p in points}
    assert curves[("lora", 2)] == 437_950_000 + 2 * 1_200_000 and curves[("ia3", 1)] == 437_950_000 + 200_000


def test_a_method_on_some_tasks_leaves_the_other_cells_empty(tmp_path):
    layout = {**FIVE, "method_tasks": {"lora": ["trec"], "ia3": ["trec"]}}
    override = {("trec", "lora", "aggregates"): {"dev": {"mean": 0.5, "std": 0.0}}}
    paths, references = _cells(tmp_path, override=override, layout=layout)
    assert len(paths["aggregates"]) == 2 * 5 - 2  # no LoRA or IA3 records for MRPC
    results = load_results(layout, aggregates=paths["aggregates"], evaluations=paths["evaluations"],
                           choices=paths["choices"], references=references)
    rows = {row[1]: row[2:] for row in table1_dev(results).rows[1:]}
    assert rows["LoRA"] == [MISSING, "50.0 ± 0.0"] and rows["BitFit"] == ["86.1 ± 0.8", "86.1 ± 0.8"]
    table9 = TABLES["table9_bytes"].build(results)  # compared on the tasks every method runs on: TREC
    assert {row[1]: row[2] for row in table9.rows}["LoRA"] == "50.0"
    assert "mean over the tasks (TREC)" in table9.notes[0]
    with pytest.raises(ConfigError, match="8 cells"):  # the records of the left-out cells are not expected
        load_results(layout, aggregates=[*paths["aggregates"], paths["aggregates"][0]])
    # Fig. 3: LoRA serves TREC only, so its one point counts 1 task, placed at TREC (the second task added)
    out = tmp_path / "fig"
    points = write_memory_figure(layout, out / "fig3.png", out / "fig3.csv", paths["aggregates"], references)
    assert [(p["tasks"], p["position"], p["last_task"]) for p in points if p["method"] == "lora"] == [(1, 2, "trec")]
    assert [(p["tasks"], p["position"]) for p in points if p["method"] == "bitfit"] == [(1, 1), (2, 2)]
    lora = [row for row in csv.DictReader((out / "fig3.csv").open()) if row["method"] == "lora"]
    assert [(row["tasks"], row["position"]) for row in lora] == [("1", "2")]


def test_every_empty_cell_of_tables_1_and_9_says_why(tmp_path):
    """Issue 33: a "–" of Table 1 or Table 9 has its reason in the notes, from the layout: the configuration leaves
    the task out for the method (method_tasks) or the cell is configured and no run of it has finished; Table 9
    says over which tasks every method's means are, and which tasks a method ran on besides."""
    from maskbench.results.tables import NOT_FINISHED, NOT_IN_GRID, table9_bytes

    layout = {**FIVE, "method_tasks": {"lora": ["trec"], "ia3": ["trec"]}}
    paths, references = _cells(tmp_path, layout=layout)
    results = load_results(layout, aggregates=paths["aggregates"], references=references)
    del results.aggregates[("bert", "trec", "bitfit")]  # configured, not finished
    table1 = table1_dev(results)
    assert {row[1]: row[2:] for row in table1.rows[1:]}["BitFit"] == ["86.1 ± 0.8", MISSING]
    assert table1.notes[-2:] == [f"{MISSING}: {NOT_IN_GRID}: LoRA and IA3 on MRPC.",
                                 f"{MISSING}: {NOT_FINISHED}: BitFit on TREC."]
    table9 = table9_bytes(results)
    assert {row[1]: row[2:] for row in table9.rows}["BitFit"] == [MISSING] * 3
    assert table9.notes[0].endswith("Every row averages these same tasks (those every method runs on); Finetuning, "
                                    "Masking and BitFit also ran on MRPC (Table 1), not in these means.")
    assert table9.notes[-2:] == [
        f"{MISSING}: the runs on TREC stored their masks as packed-bits-v1 and recorded no size in the other format: "
        "Masking (Rice-coded) (bytes per task).",
        f"{MISSING}: {NOT_FINISHED} on TREC: BitFit."]
    # a task without any finished run has no train size either; a method without any, no cell
    for method in ("finetuning", "masking"):
        del results.aggregates[("bert", "mrpc", method)]
    del results.aggregates[("bert", "mrpc", "bitfit")]
    assert table1_dev(results).notes[-2:] == [
        f"{MISSING}: {NOT_IN_GRID}: LoRA and IA3 on MRPC.",
        f"{MISSING}: {NOT_FINISHED}: train size, Finetuning and Masking on MRPC; BitFit on every task."]
    # the configuration's reason for leaving the tasks out goes with every cell it leaves empty
    reasoned = load_results({**layout, "method_tasks_reason": "compute: ~26 core-hours"},
                            aggregates=paths["aggregates"], references=references)
    assert table1_dev(reasoned).notes[-1] == (
        f"{MISSING}: {NOT_IN_GRID} (compute: ~26 core-hours): LoRA and IA3 on MRPC.")
    # Tables 2 (test, the tasks with a test set) and 4 (chosen lr) say the same about their empty cells
    from maskbench.results.tables import table2_test, table4_lr

    full = load_results({**layout, "method_tasks_reason": "compute"}, **paths, references=references)
    del full.evaluations[("bert", "trec", "bitfit")], full.choices[("bert", "mrpc", "bitfit")]
    # its one column is TREC (MRPC has no labelled test set)
    assert table2_test(full).notes[-1] == f"{MISSING}: {NOT_FINISHED}: BitFit on every task."
    assert table4_lr(full).notes[-2:] == [f"{MISSING}: {NOT_IN_GRID} (compute): LoRA and IA3 on MRPC.",
                                          f"{MISSING}: {NOT_FINISHED}: BitFit on MRPC."]
    # two models: each row names its model
    two = {**layout, "models": {**layout["models"], "small": {"name": "bert-small", "label": "Small"}}}
    results = load_results(two)
    assert table1_dev(results).notes[-2:] == [
        f"{MISSING}: {NOT_IN_GRID}: BERT LoRA, BERT IA3, Small LoRA and Small IA3 on MRPC.",
        f"{MISSING}: {NOT_FINISHED}: train size, BERT Finetuning, BERT Masking, BERT BitFit, Small Finetuning, Small "
        "Masking and Small BitFit on every task; BERT LoRA, BERT IA3, Small LoRA and Small IA3 on TREC."]


def test_table9_without_a_task_that_every_method_runs_on_says_so(tmp_path):
    from maskbench.results.tables import NOT_IN_GRID, table9_bytes

    layout = {**FIVE, "method_tasks": {"lora": ["trec"], "ia3": ["mrpc"]}}
    paths, references = _cells(tmp_path, layout=layout)
    table9 = table9_bytes(load_results(layout, aggregates=paths["aggregates"], references=references))
    assert all(row[2:] == [MISSING] * 3 for row in table9.rows)
    assert table9.notes[0].startswith("Dev score: no task that every method runs on (method_tasks)")
    assert table9.notes[-1] == (f"{MISSING}: {NOT_IN_GRID} (its method_tasks leave no task that every method runs "
                                "on): Finetuning, Masking (packed bits), Masking (Rice-coded), LoRA, BitFit and IA3.")
