"""The committed reference results (results/reference/, config/reference.yaml) are honestly derived.

1. Every committed table regenerates byte for byte from the committed records.
2. The first epoch of a committed run, trained again on this checkout, reproduces its recorded dev score: exactly
   on the machine and versions that recorded it, within a stated tolerance elsewhere (CPU kernels differ).
3. The hand-kept tables of results/reference/README.md (while the grid runs) print what the records give.
4. The workflow takes the committed runs for finished targets: a dry run plans to train only what is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from itertools import takewhile
from pathlib import Path

import pytest
import yaml

from conftest import DATA_DIR, REPO, needs_data, snakemake
from maskbench.analysis import generalization, sweeps
from maskbench.io.provenance import versions
from maskbench.results import figures, paper, tables
from maskbench.results.selection import format_lr
from maskbench.training.settings import TrainConfig

CONFIG = REPO / "config" / "reference.yaml"
RESULTS = REPO / "results" / "reference"
#: allowed |difference| of the epoch-1 dev score on another machine or other library versions (points / 100)
TOLERANCE = 0.02


def _layout() -> tables.Layout:
    return tables.Layout.from_config(yaml.safe_load(CONFIG.read_text()))


def _records(layout: tables.Layout) -> dict[str, list[str]]:
    cells = layout.cells()
    pattern = {"choices": "selection/{m}/{t}/{k}/chosen.json", "aggregates": "aggregate/{m}/{t}/{k}.json",
               "ensembles": "ensembles/{m}/{t}/{k}.json", "evaluations": "evaluation/{m}/{t}/{k}.json"}
    records = {kind: [str(RESULTS / p.format(m=m, t=t, k=k)) for m, t, k in cells] for kind, p in pattern.items()}
    records["references"] = [str(RESULTS / f"artefacts/{m}/{t}/reference_sizes.json") for m, t in layout.pairs()]
    records["serving"] = [str(RESULTS / f"artefacts/{m}/serving_memory.json") for m in layout.models]
    return records


def committed_tables() -> list[Path]:
    return sorted(p for p in (RESULTS / "tables").glob("*") if p.suffix in (".md", ".tex", ".csv", ".html"))


@pytest.mark.skipif(not committed_tables(), reason="no committed reference tables yet (the grid is in progress)")
@pytest.mark.parametrize("table", committed_tables(), ids=lambda p: p.name)
def test_committed_table_regenerates_byte_identical(table, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # records name their runs relative to the repository root
    layout = _layout()
    out = tmp_path / table.name
    name = table.stem
    if name == "paper_comparison":
        tables.write_table(name, layout.to_dict(), [out], aggregates=_records(layout)["aggregates"],
                           **_analysis_data())
    elif name == "summary":
        records = _records(layout)
        wanted = ("choices", "aggregates", "ensembles", "evaluations")
        tables.write_table("summary", layout.to_dict(), [out], **{k: records[k] for k in wanted})
    elif name == "table3_generalization":
        spec = _validated_config()["analyses"]["generalization"]
        paths = [RESULTS / f"analysis/generalization/{spec['model']}/{method}/{source}.json"
                 for method in layout.methods for source in spec["sources"] if layout.runs(source, method)]
        generalization.write_generalization_table(paths, layout.model_label(spec["model"]), [out],
                                                  layout.task_labels)
    elif name == "table7_layers":  # Fig. 2's table, from the block-subset runs (as the fig2_layers rule reads them)
        config = _validated_config()
        points = sweeps.sweep_points(_layer_runs(config))
        sweeps.layers_table(points, config["analyses"]["layers"]["block_sets"], layout.task_labels).write([out])
    else:
        tables.write_table(name, layout.to_dict(), [out], **_records(layout))
    assert out.read_bytes() == table.read_bytes(), f"{table} differs from what its records give"


def _analysis_data() -> dict[str, list[str]]:
    """The analyses' data files that the side-by-side's analyses section reads, as the workflow hands them over
    (tables.smk: analysis_data_files; the configured analyses are the layout's)."""
    config = _validated_config()
    data = {"memory": [str(RESULTS / "figures/fig3_memory.csv")], "generalization": []}
    figures = {"sparsity": "fig1_sparsity.csv", "layers": "fig2_layers.csv", "tsne": "fig4_tsne.csv",
               "mask_similarity": "fig5_mask_dissimilarity.csv", "mode_connectivity": "fig6_mode_connectivity.csv",
               "bezier": "fig7_bezier.csv"}  # inputs.smk: ANALYSIS_FIGURES
    for kind, name in figures.items():
        data[kind] = [str(RESULTS / "figures" / name)] if kind in config["analyses"] else []
    spec = config["analyses"].get("generalization")
    layout = _layout()
    data["generalization"] = [str(RESULTS / f"analysis/generalization/{spec['model']}/{method}/{source}.json")
                              for method in layout.methods for source in spec["sources"]
                              if layout.runs(source, method)] if spec else []
    return data


def _sweep_run(config: dict, spec: dict, task: str, sparsity: float, blocks: str, seed: int) -> Path:
    """A Fig. 1/2 run as the workflow names it (inputs.smk: sweep_run): the grid's own run at the configured
    sparsity, blocks and a grid lr, a variant folder otherwise."""
    lr = format_lr(spec["lr"])
    own = (float(sparsity) == float(config["training"]["initial_sparsity"])
           and spec["lr"] in config["lr_grid"]["masking"]
           and blocks == config["models"][spec["model"]]["blocks"] and seed in config["seeds"])
    # the folder name of workflow/rules/common.smk: variant_name (result paths live there only)
    method = "masking" if own else f"masking_s{format_lr(sparsity)}_b{blocks}"
    return RESULTS / f"runs/{spec['model']}/{task}/{method}/lr{lr}/seed{seed}/metrics.json"


def _sparsity_runs(config: dict) -> list[Path]:
    """Fig. 1's runs in the workflow's order."""
    spec = config["analyses"]["sparsity"]
    return [_sweep_run(config, spec, task, sparsity, spec["blocks"], seed) for task in spec["tasks"]
            for sparsity in spec["initial_sparsities"] for seed in spec["seeds"]]


def _layer_runs(config: dict) -> list[Path]:
    """Fig. 2's runs in the workflow's order (inputs.smk: layer_runs)."""
    spec = config["analyses"]["layers"]
    return [_sweep_run(config, spec, task, sparsity, blocks, seed) for task in spec["tasks"]
            for blocks in spec["block_sets"] for sparsity in spec["initial_sparsities"] for seed in spec["seeds"]]


@pytest.mark.parametrize("figure", ["fig1_sparsity", "fig3_memory", "dev_vs_bytes"])
def test_committed_figure_data_regenerates_byte_identical(figure, tmp_path, monkeypatch):
    """The numbers behind each committed figure (its .csv) are what the committed records give; the .png is drawn
    from the same points."""
    committed = RESULTS / "figures" / f"{figure}.csv"
    if not committed.is_file():
        pytest.skip(f"{committed} is not committed yet")
    monkeypatch.chdir(REPO)
    png, csv = tmp_path / f"{figure}.png", tmp_path / f"{figure}.csv"
    layout = _layout()
    if figure == "fig1_sparsity":
        runs = _sparsity_runs(_validated_config())
        assert all(run.is_file() for run in runs), [str(run) for run in runs if not run.is_file()]
        sweeps.write_sparsity_figure(runs, png, csv, layout.task_labels)
    elif figure == "dev_vs_bytes":
        records = _records(layout)
        figures.write_dev_bytes_figure(layout.to_dict(), png, csv, records["aggregates"], records["references"])
    else:
        records = _records(layout)
        figures.write_memory_figure(layout.to_dict(), png, csv, records["aggregates"], records["references"],
                                    records["serving"])
    assert csv.read_bytes() == committed.read_bytes(), f"{committed} differs from what its records give"
    assert png.stat().st_size > 10_000
    if figure == "dev_vs_bytes":  # the PNG too, byte for byte, where the same matplotlib draws it (no date in it)
        from PIL import Image

        drawn_by = Image.open(RESULTS / "figures" / f"{figure}.png").text.get("Software")
        assert drawn_by is not None, "the committed PNG names no matplotlib version"
        if drawn_by == Image.open(png).text.get("Software"):
            assert png.read_bytes() == (RESULTS / "figures" / f"{figure}.png").read_bytes()


def _same_png_where_drawn_alike(drawn: Path, committed: Path) -> None:
    """The PNG byte for byte where the same matplotlib draws it (the PNG names its version; no date in it)."""
    from PIL import Image

    drawn_by = Image.open(committed).text.get("Software")
    assert drawn_by is not None, f"{committed}: names no matplotlib version"
    if drawn_by == Image.open(drawn).text.get("Software"):
        assert drawn.read_bytes() == committed.read_bytes(), f"{committed} differs from what its data give"


ANALYSIS_FIGURES = ["fig2_layers", "fig4_tsne", "fig5_mask_dissimilarity", "fig6_mode_connectivity", "fig7_bezier"]


@pytest.mark.parametrize("figure", ANALYSIS_FIGURES)
def test_committed_analysis_figures_regenerate_byte_identical(figure, tmp_path, monkeypatch):
    """Figs. 2 and 5 (and Table 7) regenerate from the committed records and masks; Figs. 6 and 7 from the committed
    line and curve scores (analysis/connectivity, analysis/bezier); Fig. 4 is drawn again from its committed
    coordinates. (Those scores and coordinates were computed from the finetuned models, which are not committed:
    the workflow rebuilds them by training their runs again, checked against the records — maskbench.training.rebuild,
    tests/test_rebuild.py and the workflow test of the analyses config.)"""
    from maskbench.analysis import connectivity, mask_similarity, tsne

    config = _validated_config()
    spec = config["analyses"].get({"fig2_layers": "layers", "fig4_tsne": "tsne", "fig7_bezier": "bezier",
                                   "fig5_mask_dissimilarity": "mask_similarity",
                                   "fig6_mode_connectivity": "mode_connectivity"}[figure])
    committed_csv, committed_png = RESULTS / "figures" / f"{figure}.csv", RESULTS / "figures" / f"{figure}.png"
    if spec is None or not committed_csv.is_file():
        pytest.skip(f"{figure}: not configured or not committed yet")
    monkeypatch.chdir(REPO)
    png, csv = tmp_path / f"{figure}.png", tmp_path / f"{figure}.csv"
    layout = _layout()
    if figure == "fig2_layers":
        runs = _layer_runs(config)
        assert all(run.is_file() for run in runs), [str(run) for run in runs if not run.is_file()]
        table_paths = [tmp_path / f"table7_layers{suffix}" for suffix in (".md", ".tex", ".csv", ".html")]
        sweeps.write_layers(runs, spec["block_sets"], png, csv, table_paths, layout.task_labels)
        for path in table_paths:
            assert path.read_bytes() == (RESULTS / "tables" / path.name).read_bytes(), path.name
    elif figure == "fig4_tsne":
        points = list(csv_rows(committed_csv))
        tsne.plot_tsne(points, png)
        csv = committed_csv
    elif figure == "fig5_mask_dissimilarity":
        lrs = {task: json.loads((RESULTS / f"selection/{spec['model']}/{task}/masking/chosen.json").read_text())[
            "best_lr"] for task in spec["tasks"]}
        runs = [RESULTS / f"runs/{spec['model']}/{task}/masking/lr{lrs[task]}/seed{spec['seed']}"
                for task in spec["tasks"]]
        mask_similarity.write_mask_similarity(runs, spec.get("layers", ["W_O"]), spec.get("blocks"), png, csv)
    else:
        folder = "connectivity" if figure == "fig6_mode_connectivity" else "bezier"
        paths = [RESULTS / f"analysis/{folder}/{spec['model']}/{task}.json" for task in spec["tasks"]]
        write = connectivity.write_lines_figure if folder == "connectivity" else connectivity.write_bezier_figure
        write(paths, png, csv)
    assert csv.read_bytes() == committed_csv.read_bytes(), f"{committed_csv} differs from what its data give"
    _same_png_where_drawn_alike(png, committed_png)


def csv_rows(path: Path) -> list[dict]:
    """Fig. 4's points as the analysis wrote them (numbers back to numbers)."""
    import csv as csv_module

    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv_module.DictReader(handle):
            rows.append({**row, "index": int(row["index"]), "x": float(row["x"]), "y": float(row["y"])})
    return rows


def test_dev_vs_bytes_shows_every_method_on_every_task_with_records(monkeypatch):
    """The figure's points: one per cell with an aggregate, five methods where all five ran, NER in conlleval."""
    monkeypatch.chdir(REPO)
    layout = _layout()
    records = _records(layout)
    results = tables.load_results(layout, aggregates=records["aggregates"], references=records["references"])
    points = figures.dev_bytes_points(results)
    assert {(p["task"], p["method"]) for p in points} == {(t, m) for _, t, m in layout.cells()}
    assert {p["task"] for p in points if p["method"] == "ia3"} == set(layout.method_tasks["ia3"])
    assert {p["metric"] for p in points if p["task"] == "conll2003"} == {"conlleval_f1"}
    by_method = {p["method"]: p["bytes_per_task"] for p in points if p["task"] == "mrpc"}
    assert by_method["finetuning"] > 50 * max(v for m, v in by_method.items() if m != "finetuning")


NER_RUN = RESULTS / "runs/minilm/conll2003/masking/lr0.003/seed1"


@pytest.mark.skipif(not (NER_RUN / "predictions.safetensors").is_file(), reason="no committed CoNLL-2003 run")
def test_conll2003_entity_f1_strict_and_conlleval_from_the_committed_predictions():
    """Issue 33, item 5: CoNLL-2003 masking, lr 3e-3, seed 1, recomputed from its stored predictions: strict IOB2
    90.24 dev / 85.70 test (what the run recorded), conlleval semantics 89.91 / 85.36 (what the tables report)."""
    from maskbench.records import recomputed_score

    record = json.loads((NER_RUN / "metrics.json").read_text())
    scores = {(split, metric): 100 * recomputed_score(NER_RUN, record, split, metric)
              for split in ("dev", "test") for metric in ("seqeval_f1", "conlleval_f1")}
    assert {key: round(value, 2) for key, value in scores.items()} == {
        ("dev", "seqeval_f1"): 90.24, ("test", "seqeval_f1"): 85.70,
        ("dev", "conlleval_f1"): 89.91, ("test", "conlleval_f1"): 85.36}
    assert scores[("dev", "seqeval_f1")] == pytest.approx(100 * record["dev_score"], abs=1e-9)
    assert scores[("test", "seqeval_f1")] == pytest.approx(100 * record["test_score"], abs=1e-9)
    aggregate = json.loads((RESULTS / "aggregate/minilm/conll2003/masking.json").read_text())
    assert aggregate["reported"]["metric"] == "conlleval_f1"
    assert 100 * aggregate["reported"]["dev"]["scores"][0] == pytest.approx(scores[("dev", "conlleval_f1")])
    assert 100 * aggregate["reported"]["test"]["scores"][0] == pytest.approx(scores[("test", "conlleval_f1")])
    assert aggregate["dev"]["scores"][0] == record["dev_score"]  # the recorded (strict) figures stay as recorded


@pytest.mark.parametrize("method", ["finetuning", "masking"])
def test_conlleval_would_choose_the_same_ner_lr(method):
    """The lr was chosen on seed 1's strict entity F1 (selection_seeds); with conlleval semantics, scored on the
    same stored predictions (each run's best epoch under strict F1), every method chooses the same lr."""
    from maskbench.records import recomputed_score

    cell = RESULTS / f"selection/minilm/conll2003/{method}/chosen.json"
    if not cell.is_file():
        pytest.skip(f"{cell} is not committed")
    runs = sorted(RESULTS.glob(f"runs/minilm/conll2003/{method}/lr*/seed1/metrics.json"))
    assert len(runs) >= 3
    scores = {}
    for path in runs:
        record = json.loads(path.read_text())
        scores[record["lr"]] = (record["dev_score"], recomputed_score(path.parent, record, "dev", "conlleval_f1"))
    chosen = float(json.loads(cell.read_text())["best_lr"])
    assert max(scores, key=lambda lr: scores[lr][0]) == pytest.approx(chosen)
    assert max(scores, key=lambda lr: scores[lr][1]) == pytest.approx(chosen), scores


def _validated_config() -> dict:
    """config/reference.yaml with the schema's defaults filled in, as the workflow reads it."""
    from snakemake.utils import validate

    config = yaml.safe_load(CONFIG.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def committed_transfer_records() -> list[Path]:
    return sorted((RESULTS / "analysis" / "generalization").glob("*/*/*.json"))


@pytest.mark.skipif(not committed_transfer_records(), reason="no committed Table 3 records yet")
@pytest.mark.parametrize("path", committed_transfer_records(), ids=lambda p: "-".join(p.with_suffix("").parts[-2:]))
def test_committed_table3_records_are_what_the_chosen_runs_recorded(path, monkeypatch):
    """A Table 3 record (one method trained on one source task) holds the scores on each target that its cell's
    runs at the chosen lr, every seed, recorded when they finished: recomputed from the committed run records,
    with no model loaded and no data read."""
    monkeypatch.chdir(REPO)  # records name their runs relative to the repository root
    config = _validated_config()
    spec = config["analyses"]["generalization"]
    committed = json.loads(path.read_text())
    model, method, source = path.parts[-3], path.parts[-2], path.stem
    chosen = json.loads((RESULTS / f"selection/{model}/{source}/{method}/chosen.json").read_text())["best_lr"]
    runs = [f"{config['results_dir']}/runs/{model}/{source}/{method}/lr{format_lr(chosen)}/seed{seed}/metrics.json"
            for seed in config["seeds"]]
    assert committed["runs"] == runs, f"{path}: not the runs of the chosen lr {chosen:g}"
    targets = {target: {"prepared": None, "max_length": config["training"]["max_length"], "limit": None}
               for target in spec["targets"]}
    again = generalization.transfer_scores(runs, targets, committed["model"], spec["split"])
    assert again["recorded"] == [list(spec["targets"])] * len(runs), "a run did not record its transfer scores"
    if source in spec["targets"] and spec["split"] == "dev":  # the model scored is the run's (rebuilt or not)
        for run in runs:
            record = json.loads(Path(run).read_text())
            assert record["transfer"][source]["accuracy"] == pytest.approx(record["dev_score"], abs=1e-12), run
    committed.pop("versions")
    assert json.loads(json.dumps(again)) == committed, f"{path} differs from what the runs recorded"


def committed_aggregates() -> list[Path]:
    return sorted((RESULTS / "aggregate").glob("*/*/*.json"))


@pytest.mark.skipif(not committed_aggregates(), reason="no committed aggregates yet")
@pytest.mark.parametrize("path", committed_aggregates(), ids=lambda p: "-".join(p.with_suffix("").parts[-2:]))
def test_committed_aggregate_is_what_the_committed_run_records_give(path, monkeypatch):
    """A fresh clone re-aggregates a cell whenever Snakemake finds a record newer than the aggregate (checkout
    order decides the files' times), with only what is committed: the masks and adapters of most runs are not.
    So each run of an aggregated masking, LoRA, BitFit or IA3 cell records its artefact sizes, and aggregating
    the committed records gives the committed aggregate."""
    from maskbench.records import load_runs
    from maskbench.results.aggregate import aggregate_runs

    monkeypatch.chdir(REPO)  # records name their runs relative to the repository root
    committed = json.loads(path.read_text())
    records = load_runs(committed["runs"])
    for run, record in zip(committed["runs"], records):
        assert record["method"] == "finetuning" or "artefact_sizes" in record, (
            f"{run}: no artefact_sizes; a clone without its artefact cannot aggregate {path}")
    again = json.loads(json.dumps(aggregate_runs(records, committed["runs"]), sort_keys=True))
    assert again == committed, f"{path} differs from what its runs' records give"


@pytest.mark.skipif(not (RESULTS / "runs.md").is_file(), reason="no committed run log")
def test_committed_run_log_is_what_the_records_give():
    """results/reference/runs.md lists every committed run exactly as its records say (after a sync, regenerate it
    with the command in its first paragraph)."""
    from maskbench.results.runlog import render_run_log

    assert render_run_log(RESULTS) == (RESULTS / "runs.md").read_text(), \
        "results/reference/runs.md differs from what the committed records give: regenerate it"
    task = r"\| \w+( \(train capped at [\d,]+\))? +\|"  # SST-2's rows, grid or analysis, name its cap
    run_row = re.compile(rf"{task} ({'|'.join(tables.METHOD_LABELS)}) +\|")
    analysis_row = re.compile(rf"{task} masking, [\d.]+ % initial sparsity, blocks [\d-]+ +\|")
    lines = (RESULTS / "runs.md").read_text().splitlines()
    rows = [line for line in lines if run_row.match(line)]
    analysis_rows = [line for line in lines if analysis_row.match(line)]
    assert len(rows) + len(analysis_rows) == len(committed_runs())
    assert len(analysis_rows) == len([path for path in committed_runs() if "_s" in path.parts[-4]])
    # a run on a capped training subset (SST-2's 10,000 of 67,349) says so in its row
    for path in committed_runs():
        record = json.loads(path.read_text())
        cap = record["config"].get("max_train_examples")
        row = f"| {tables.TASK_LABELS[record['task']]} (train capped at {cap:,})" if cap else None
        assert cap is None or any(line.startswith(row) for line in rows), (path, row)


def committed_runs() -> list[Path]:
    return sorted(RESULTS.glob("runs/*/*/*/*/*/metrics.json"))


def _cheapest_run(method: str | None = None) -> Path | None:
    """The committed run (of ``method``, any when None) whose first epoch is quickest to train again (per epoch)."""
    runs = [p for p in committed_runs() if method is None or json.loads(p.read_text())["method"] == method]
    if not runs:
        return None

    def cost(path: Path) -> float:
        record = json.loads(path.read_text())
        return record["train_time_s"] / record["epochs_run"]

    return min(runs, key=cost)


def _planned_jobs(output: str) -> list[tuple[str, dict[str, str], str]]:
    """(rule, wildcards, input line) of each job of a Snakemake dry run's output."""
    jobs = []
    for block in re.split(r"\n\s*\n", output):
        rule = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):$", block, re.MULTILINE)
        if rule:
            found = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
            pairs = [item.split("=", 1) for item in found.group(1).split(", ")] if found else []
            inputs = re.search(r"^\s+input: (.*)$", block, re.MULTILINE)
            jobs.append((rule.group(1), dict(pairs), inputs.group(1) if inputs else ""))
    return jobs


@needs_data
@pytest.mark.skipif(not committed_runs(), reason="no committed reference runs yet")
def test_a_clean_checkout_plans_to_train_only_the_runs_not_committed(tmp_path):
    """`snakemake -n --configfile config/reference.yaml` on the committed records alone, written in path order as a
    checkout writes them (no Snakemake metadata, no prepared data): no committed run is trained again, and data are
    prepared only for the runs still to train. (Records older than their inputs, such as a selection's chosen.json
    next to its round files, are derived again: seconds, from the committed runs.)"""
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file():
            copy = tmp_path / path.relative_to(REPO)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    plan = snakemake(tmp_path, "-n", "--configfile", str(CONFIG))
    output = plan.stdout + plan.stderr
    assert plan.returncode == 0, output[-3000:]
    jobs = _planned_jobs(output)
    assert jobs, output[-3000:]
    trained = set()
    for rule, wildcards, _ in jobs:
        if rule in ("train", "train_analysis"):
            run = RESULTS / "runs" / wildcards["model"] / wildcards["task"] / wildcards.get(
                "method", wildcards.get("variant", "")) / f"lr{wildcards['lr']}" / f"seed{wildcards['seed']}"
            assert not (run / "metrics.json").is_file(), f"committed run planned to train again: {run}"
            trained.add(wildcards["task"])
    # a committed analysis is not remade for lack of the models it was made from (rebuilding one retrains a run)
    rebuilt = [wildcards for rule, wildcards, _ in jobs if rule == "rebuild"]
    assert not rebuilt, f"committed runs planned to be trained again for their models: {rebuilt}"
    prepared = {wildcards["task"] for rule, wildcards, _ in jobs if rule == "prepare"}
    assert prepared <= trained, f"data prepared for tasks with nothing to train: {sorted(prepared - trained)}"
    for rule, wildcards, inputs in jobs:  # Table 3 reads the scores its runs recorded, not the targets' data
        if rule == "generalization" and wildcards["source"] not in trained:
            assert "metrics.json" in inputs and "prepared/" not in inputs, (wildcards, inputs)


@needs_data
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not committed_runs(), reason="no committed reference runs yet")
def test_first_epoch_of_a_committed_run_is_reproduced(tmp_path):
    _reproduce_first_epoch(_cheapest_run(), tmp_path)


def _reproduce_first_epoch(path: Path, tmp_path: Path) -> None:
    """Train the committed run ``path`` again for one epoch on this checkout (with the recording's thread count) and
    compare its epoch-1 dev score with the record: exactly where the record proves the same kernels (same versions
    and device string), within :data:`TOLERANCE` elsewhere; the train loss too where exact."""
    import torch

    from maskbench.training.train import train

    record = json.loads(path.read_text())
    where = ("out", "data_dir", "prepared", "device", "transfer", "transfer_split", "transfer_prepared")
    settings = {k: v for k, v in record["config"].items() if k not in where}
    # the data directory that needs_data found (the env variable or ../shared/data): without it the run would
    # fall back to the hub. from_dict: records from before the method settings were nested (flat lora_r, ...)
    config = TrainConfig.from_dict({**settings, "epochs": 1, "patience": 1, "out": str(tmp_path / "run"),
                                    "data_dir": str(DATA_DIR)})
    # the same run, cut after its first epoch: its identity differs only in epochs/patience
    assert {k: v for k, v in config.result_key().items() if k not in ("epochs", "patience")} == \
        {k: v for k, v in TrainConfig.from_dict(settings).result_key().items() if k not in ("epochs", "patience")}
    threads = re.search(r"(\d+) threads", record["device"])  # the recording's thread count: same kernels' order
    previous = torch.get_num_threads()
    try:  # the thread count is restored whatever happens: later tests in this process depend on it
        torch.set_num_threads(int(threads.group(1)) if threads else previous)
        again = train(config)
    finally:
        torch.set_num_threads(previous)
    # the data it read is the data the migrated record names (maskbench.data.fingerprint; added from the same files)
    assert again["data"] == record["data"], path
    recorded = record["history"][0]["dev_score"]
    # exact where the record proves the same kernels: same versions, and a device string that names torch's CPU
    # capability (AVX2, AVX512; recorded since 2026-12-02) and thread count. Older records name neither the CPU
    # nor its kernels, and machines of one description differ in the last digits (masking amplifies that)
    same_machine = record["versions"] == again["versions"] and record["device"] == again["device"]
    if same_machine:
        assert again["history"][0]["dev_score"] == recorded, path
        assert again["history"][0]["train_loss"] == pytest.approx(record["history"][0]["train_loss"], rel=1e-6)
    else:
        assert abs(again["history"][0]["dev_score"] - recorded) <= TOLERANCE, (path, versions())


@needs_data
@pytest.mark.slow(seconds=100)
@pytest.mark.timeout(1800)
@pytest.mark.skipif(_cheapest_run("masking") is None, reason="no committed masking run yet")
def test_first_epoch_of_a_committed_masking_run_is_reproduced(tmp_path):
    """As test_first_epoch_of_a_committed_run_is_reproduced (which picks the cheapest run of any method, an IA3
    run), for the cheapest committed masking run: the method the benchmark is about. Today that is POS, lr 0.01,
    seed 1 (3,068 training sentences; its record: 87 s per epoch on 1 thread; measured here: 92 s for the whole test,
    1 thread, on a shared 2-core machine)."""
    _reproduce_first_epoch(_cheapest_run("masking"), tmp_path)


@pytest.mark.skipif(not (REPO / ".git").exists() or shutil.which("git") is None, reason="not a git checkout")
def test_gitignore_keeps_every_methods_records_and_drops_their_artefacts():
    """Every method's run records and bookkeeping reach a commit; masks, adapters, weights and checkpoints do not."""
    from maskbench.training.methods import get_method
    from maskbench.training.settings import METHODS

    run = "results/reference/runs/minilm/mrpc/{m}/lr0.001/seed1"
    kept, dropped = [], []
    for m in METHODS:
        kept += [f"{run.format(m=m)}/metrics.json", f"{run.format(m=m)}/predictions.safetensors",
                 f"results/reference/selection/minilm/mrpc/{m}/round0.json",
                 f"results/reference/aggregate/minilm/mrpc/{m}.json"]
        dropped.append(f"{run.format(m=m)}/checkpoint/state.json")
        artefact = get_method(m).artefact  # the folder the method saves its per-task artefact in
        if artefact is not None:
            dropped.append(f"{run.format(m=m)}/{artefact}/artefact.safetensors")
    dropped.append(f"{run.format(m='finetuning')}/model/model.safetensors")  # finetuning's save_weights
    result = subprocess.run(["git", "check-ignore", "--no-index", *kept, *dropped], cwd=REPO,
                            capture_output=True, text=True)
    ignored = set(result.stdout.split())
    assert not ignored & set(kept), sorted(ignored & set(kept))
    assert set(dropped) <= ignored, sorted(set(dropped) - ignored)


def served_cells() -> list[Path]:
    return sorted(RESULTS.glob("selection/*/*/masking/chosen.json"))


@pytest.mark.skipif(not served_cells(), reason="no masking cell has chosen its lr yet")
@pytest.mark.parametrize("chosen", served_cells(), ids=lambda c: c.parts[-3])
def test_the_masks_that_serving_measures_are_committed(chosen):
    """The serving step (Table 8, Fig. 3) serves each task's masks of the chosen lr and first seed. Masks are not
    otherwise committed, and a later working session starts without the earlier ones' files: these must be in the
    repository, and be the masks of the run whose record sits next to them (its recorded sparsity)."""
    from maskbench.training.masking.serialization import read_mask_description, read_masks

    model, task = chosen.parts[-4], chosen.parts[-3]
    seed = yaml.safe_load(CONFIG.read_text())["seeds"][0]
    run = RESULTS / f"runs/{model}/{task}/masking/lr{json.loads(chosen.read_text())['best_lr']}/seed{seed}"
    masks, _ = read_masks(run / "masks", read_mask_description(run / "masks"))
    zeros = sum(int((~mask).sum()) for mask in masks.values())
    assert zeros / sum(mask.numel() for mask in masks.values()) == json.loads((run / "metrics.json").read_text())[
        "sparsity"]
    if shutil.which("git") and (REPO / ".git").exists():  # tracked, not only present in this working tree
        tracked = subprocess.run(["git", "ls-files", str(run / "masks")], cwd=REPO, capture_output=True, text=True)
        assert "masks.safetensors" in tracked.stdout, f"{run / 'masks'}: not committed (git add -f)"


def _finished_results() -> tables.Results:
    """The aggregates of every finished cell (a grid in progress has not all of them)."""
    layout = _layout()
    results = tables.Results(layout)
    for key, path in zip(layout.cells(), _records(layout)["aggregates"]):
        if Path(path).is_file():
            results.aggregates[key] = tables.read_record(path)
    return results


def _readme_table(heading: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (cells stripped) of the first Markdown table of results/reference/README.md whose header
    starts with ``heading``."""
    lines = (RESULTS / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    header, *rows = ([cell.strip() for cell in line.strip("|").split("|")]
                     for line in [lines[start]] + list(takewhile(lambda line: line.startswith("|"),
                                                                 lines[start + 2:])))
    return header, rows


def _label_task(label: str) -> str:
    first = label.split()[0].replace("-", "")
    return next(task for task, text in tables.TASK_LABELS.items() if text == first)


@pytest.mark.skipif(not (RESULTS / "README.md").is_file(), reason="no results README")
def test_the_readme_side_by_side_is_what_the_records_give():
    """The hand-kept side-by-side of results/reference/README.md (the finished tasks, all once the grid is done) agrees
    with the committed aggregates, the paper's Table 1 and the majority class, to the printed digit."""
    results = _finished_results()
    rows = {row["task"]: row for row in paper.comparison_rows(results, "minilm") if "gap" in row}
    header, cells = _readme_table("| task | masking − finetuning here")
    readme = [dict(zip(header, row)) for row in cells]
    assert readme, "no side-by-side table in results/reference/README.md"
    for line in readme:
        task = _label_task(line["task"])
        assert task in rows, f"README lists {line['task']}, whose cells are not both finished"
        row = rows[task]
        expected = (f"**{row['gap']:+.1f}** ({row['masking_mean']:.1f} ± {row['masking_std']:.1f} vs "
                    f"{row['finetuning_mean']:.1f} ± {row['finetuning_std']:.1f})").replace("-", "−")
        assert line["masking − finetuning here (MiniLM, 3 seeds)"] == expected, task
        for column, model in (("paper, BERT-base", "BERT"), ("paper, DistilBERT", "DistilBERT")):
            table1 = paper.PAPER_TABLE1[model]
            assert line[column] == (f"{paper.paper_gap(model, task):+.1f} ({table1['masking'][task][0]:.1f} vs "
                                    f"{table1['finetuning'][task][0]:.1f})").replace("-", "−"), (task, column)
        assert line["majority class"] == f"{row['majority']:.1f}", task
    assert len(readme) == len(rows), f"finished tasks missing from the README: {sorted(rows)}"
    mean_gap = sum(abs(row["gap"]) for row in rows.values()) / len(rows)
    tasks = len(_layout().tasks)
    so_far = " so far" if len(rows) < tasks else ""  # while the grid runs
    summary = f"Mean |masking − finetuning|{so_far}: {mean_gap:.1f} points ({len(rows)} of {tasks} tasks)"
    assert summary in " ".join((RESULTS / "README.md").read_text().split()), summary


@pytest.mark.skipif(not (RESULTS / "README.md").is_file(), reason="no results README")
def test_the_readme_five_method_table_is_what_the_records_give():
    """Each '<TASK> dev' / 'lr' / '<TASK> test' cell of the README's five-method table is the cell's aggregate."""
    results = _finished_results()
    header, rows = _readme_table("| method |")
    assert [row[0] for row in rows] == ["finetuning", "masking", "LoRA", "BitFit", "IA3"]
    methods = {label.lower(): method for method, label in tables.METHOD_LABELS.items()}
    for row in rows:
        method = methods[row[0].lower()]
        task = None
        for column, cell in zip(header[1:], row[1:]):
            if column == "lr":
                assert cell == tables.short_lr(results.aggregates[("minilm", task, method)]["lr"]), (task, method)
                continue
            label, split = column.rsplit(" ", 1)
            task = _label_task(label)
            scores = results.aggregates[("minilm", task, method)][split]
            assert cell == f"{100 * scores['mean']:.1f} ± {100 * scores['std']:.1f}", (task, method, split)
