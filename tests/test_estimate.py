"""`maskbench estimate`: the jobs it counts are the jobs `snakemake -n` plans for the same configuration, and its
sums, worst case and throughput figures follow from the configuration and the committed records."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import DATA_DIR, REPO, needs_data, snakemake
from maskbench.io.errors import ConfigError
from maskbench.records import run_record_paths
from maskbench.results.estimate import (
    FULL_SCALE_BASIS,
    LOCAL_BASIS,
    REFERENCE_RUNS,
    TRAIN_EXAMPLES,
    estimate,
    load_config,
    measured_cpu,
    render,
)

CONFIGS = ["config/ci.yaml", "config/ci_analyses.yaml", "config/ci_methods.yaml",
           pytest.param("config/paper.yaml", marks=pytest.mark.slow(seconds=60))]


def _dry_run_jobs(workdir: Path, configfile: Path) -> dict[str, int]:
    """Jobs per rule that `snakemake -n` plans for ``configfile`` in an empty ``workdir``."""
    result = snakemake(workdir, "-n", "--configfile", str(configfile), "--quiet", "rules", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    return {rule: int(count) for rule, count in
            re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, flags=re.MULTILINE)}


@pytest.mark.parametrize("name", CONFIGS)
def test_planned_jobs_are_the_dry_runs_train_jobs(name, tmp_path, data_dir):
    config_file = REPO / name
    jobs = _dry_run_jobs(tmp_path, config_file)
    result = estimate(load_config([config_file]))
    grid = sum(row.planned_jobs for row in result.rows if row.part == "grid")
    analyses = sum(row.planned_jobs for row in result.rows if row.part == "analyses")
    assert grid == jobs.get("train", 0) > 0, (grid, jobs)
    assert analyses == jobs.get("train_analysis", 0), (analyses, jobs)
    # the CLI prints the same sums
    cli = subprocess.run([sys.executable, "-m", "maskbench.cli", "estimate", "--configfile", str(config_file),
                          "--json"], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert cli.returncode == 0, cli.stderr
    totals = json.loads(cli.stdout)["totals"]
    assert totals["planned_jobs"] == jobs.get("train", 0) + jobs.get("train_analysis", 0)


def test_worst_case_counts_extensions_other_seeds_and_epochs(tmp_path):
    config = {
        "models": {"small": {"name": "minilm"}, "base": {"name": "bert-base-uncased"}},
        "tasks": ["trec", "mrpc", "swag"],
        "methods": ["finetuning", "masking", "lora"],
        "method_tasks": {"lora": ["mrpc"]},
        "seeds": [1, 2, 3],
        "selection_seeds": [1, 2],
        "lr_grid": {"finetuning": [1.0e-5, 3.0e-5, 5.0e-5], "masking": [1.0e-4], "lora": [1.0e-4, 3.0e-4]},
        "lr_extension": {"max_extensions": 2},
        "training": {"epochs": 3, "max_train_examples": 1000},
        "task_settings": {"mrpc": {"epochs": 5, "max_train_examples": None}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = estimate(load_config([path]))
    rows = {(row.model, row.task): row for row in result.rows}
    assert set(rows) == {(m, t) for m in ("small", "base") for t in ("trec", "mrpc", "swag")}
    for (model, task), row in rows.items():
        # finetuning: 3 lrs x 2 selection seeds, + 2 rounds x 2 seeds, + 1 other seed at the chosen lr;
        # masking: one distinct lr (no border, no extension) x 2 + 1; lora (mrpc only): 2 x 2 + 2 x 2 + 1
        planned = 3 * 2 + 1 * 2 + (2 * 2 if task == "mrpc" else 0)
        worst = (3 * 2 + 2 * 2 + 1) + (1 * 2 + 1) + ((2 * 2 + 2 * 2 + 1) if task == "mrpc" else 0)
        examples = (TRAIN_EXAMPLES["mrpc"] * 5) if task == "mrpc" else 1000 * 3
        assert (row.planned_jobs, row.worst_case_jobs, row.train_examples) == (planned, worst, worst * examples)
        assert row.cpu_hours > 0 and row.gpu_hours > 0
    # bert-base costs more than MiniLM by its non-embedding parameters (85 M vs 10.6 M), on either device
    ratio = rows[("base", "trec")].gpu_hours / rows[("small", "trec")].gpu_hours
    assert ratio == pytest.approx(rows[("base", "trec")].cpu_hours / rows[("small", "trec")].cpu_hours)
    assert 7.5 < ratio < 8.5, ratio
    # a multiple-choice example is 4 sequences on the GPU; the totals are the rows' sums
    assert rows[("base", "swag")].gpu_hours == pytest.approx(4 * rows[("base", "trec")].gpu_hours)
    totals = result.totals()
    assert totals["worst_case_jobs"] == sum(row.worst_case_jobs for row in result.rows)
    assert totals["gpu_hours"] == pytest.approx(sum(row.gpu_hours for row in result.rows))


def test_cpu_throughput_is_the_median_of_the_committed_records():
    rates, device, model = measured_cpu(REFERENCE_RUNS)
    assert model == "minilm" and device.startswith("cpu")
    records = [json.loads(path.read_text()) for path in REFERENCE_RUNS.glob("minilm/trec/masking/*/*/metrics.json")]
    assert records
    assert rates[("trec", "masking")] == statistics.median(r["train_examples_per_s"] for r in records)
    # one trec masking run of MiniLM for 4,904 examples x 10 epochs at that rate, in core-hours
    config = {"models": {"m": {"name": "minilm"}}, "tasks": ["trec"], "methods": ["masking"], "seeds": [1],
              "lr_grid": {"masking": [1.0e-3]}, "training": {"epochs": 10}}
    row = estimate(_validated(config)).rows[0]
    assert row.cpu_hours == pytest.approx(4_904 * 10 / rates[("trec", "masking")] / 3600)
    assert row.cpu_basis == "measured"


# --- the train split: the one the runs load (local data), else the full-scale size ---------------------------------
# Written against the old estimate, which counted TRAIN_EXAMPLES (96,000 for AG News) whatever the data: the local-data
# tests fail there (no train_split/train_basis; 24x the examples), checked with PYTHONPATH=/work/main/src.

def _ag_news_config(**extra) -> dict:
    return {"models": {"m": {"name": "minilm"}}, "tasks": ["ag_news", "trec"], "methods": ["masking"], "seeds": [1, 2],
            "lr_grid": {"masking": [1.0e-3]}, "training": {"epochs": 2},
            "task_settings": {"trec": {"max_train_examples": 100}}, **extra}


@pytest.mark.parametrize("given_by", ["data_dir", "environment"])
def test_the_train_split_is_the_one_the_runs_load_from_local_data(given_by, data_dir, monkeypatch):
    from maskbench.data import tasks

    if given_by == "data_dir":
        monkeypatch.delenv("MASKBENCH_DATA_DIR", raising=False)
        config = _validated(_ag_news_config(data_dir=str(data_dir)))
    else:
        monkeypatch.setenv("MASKBENCH_DATA_DIR", str(data_dir))
        config = _validated(_ag_news_config())
    result = estimate(config)
    rows = {row.task: row for row in result.rows}
    # AG News: the 5k subset less the dev carved from it, as the loader gives it (not the hub's 96,000)
    loaded = len(tasks.load("ag_news", data_dir)["train"])
    assert loaded < TRAIN_EXAMPLES["ag_news"]
    ag_news = rows["ag_news"]
    assert ag_news.train_examples == ag_news.worst_case_jobs * 2 * loaded
    assert (ag_news.train_split, ag_news.train_basis) == (loaded, LOCAL_BASIS)
    # max_train_examples still caps a local split, and the row says so
    assert (rows["trec"].train_split, rows["trec"].train_basis) == (100, f"{LOCAL_BASIS}, capped by max_train_examples")
    assert rows["trec"].train_examples == rows["trec"].worst_case_jobs * 2 * 100
    # the notes name the basis and the directory; the table shows each row's basis
    assert any(LOCAL_BASIS in note and str(data_dir) in note for note in result.notes), result.notes
    line = next(line for line in render(result).splitlines() if " ag_news " in line)
    assert f"{loaded:,}" in line and LOCAL_BASIS in line, line


@needs_data
def test_the_reference_configuration_counts_what_its_committed_runs_read(monkeypatch):
    """The finding: the reference config on the local data counted AG News at 96,000 examples per epoch (33.6 M in
    all, 506 core-hours); its committed runs trained on 4,000. Every row's split is now what the records say."""
    monkeypatch.setenv("MASKBENCH_DATA_DIR", str(DATA_DIR))
    read: dict[str, set[int]] = {}
    for path in run_record_paths(REFERENCE_RUNS):
        record = json.loads(path.read_text())
        read.setdefault(record["task"], set()).add(record["sizes"]["train"])
    rows = estimate(load_config([REPO / "config" / "reference.yaml"])).rows
    assert {row.task for row in rows} <= set(read)
    for row in rows:
        assert {row.train_split} == read[row.task], (row, read[row.task])
        assert row.train_basis.startswith(LOCAL_BASIS), row


@pytest.mark.parametrize("where", ["unset", "without the task"])
def test_without_local_data_the_full_scale_size_is_counted(where, tmp_path, monkeypatch):
    if where == "unset":
        monkeypatch.delenv("MASKBENCH_DATA_DIR", raising=False)
    else:  # a data directory without an ag_news/ folder: the run loads AG News from the hub
        monkeypatch.setenv("MASKBENCH_DATA_DIR", str(tmp_path))
    result = estimate(_validated(_ag_news_config(tasks=["ag_news"])))
    (row,) = result.rows
    assert (row.train_split, row.train_basis) == (TRAIN_EXAMPLES["ag_news"], FULL_SCALE_BASIS)
    assert row.train_examples == row.worst_case_jobs * 2 * TRAIN_EXAMPLES["ag_news"]
    assert any(FULL_SCALE_BASIS in note for note in result.notes), result.notes
    assert FULL_SCALE_BASIS in render(result)


@pytest.mark.parametrize("case", ["configured data_dir without the task", "qnli train missing",
                                  "qnli train missing, allow_partial_data"])
def test_local_files_a_run_cannot_read_are_a_note_not_an_error(case, tmp_path, data_dir, monkeypatch):
    """The estimate validates nothing new: where a run would stop at its data, the row counts the full-scale size
    and a note says why; with allow_partial_data the run's stand-in split is counted."""
    from maskbench.data import tasks

    monkeypatch.delenv("MASKBENCH_DATA_DIR", raising=False)
    qnli = {"tasks": ["qnli"], "data_dir": str(data_dir)}
    config = {"configured data_dir without the task": {"tasks": ["ag_news"], "data_dir": str(tmp_path)},
              "qnli train missing": qnli,
              "qnli train missing, allow_partial_data": {**qnli, "allow_partial_data": True}}[case]
    result = estimate(_validated(_ag_news_config(**config)))
    (row,) = result.rows
    task = config["tasks"][0]
    if case.endswith("allow_partial_data"):
        partial = len(tasks.load("qnli", data_dir, allow_partial=True)["train"])
        assert (row.train_split, row.train_basis) == (partial, LOCAL_BASIS)
        return
    assert (row.train_split, row.train_basis) == (TRAIN_EXAMPLES[task], FULL_SCALE_BASIS)
    where = str(tmp_path / "ag_news") if task == "ag_news" else "train.tsv"
    assert any(note.startswith(f"{task}: ") and where in note for note in result.notes), result.notes


def test_a_bad_configuration_is_one_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("models: {m: {name: minilm}}\ntasks: [trec]\nmethods: [masking]\nseeds: [1]\n"
                    "lr_grid: {masking: [1e-3]}\n")
    with pytest.raises(ConfigError, match=r"invalid configuration at 'lr_grid.masking.0'"):
        load_config([path])
    cli = subprocess.run([sys.executable, "-m", "maskbench.cli", "estimate", "--configfile", str(path)],
                         capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "Traceback" not in cli.stderr, cli.stderr


def _validated(config: dict) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return load_config([path])
