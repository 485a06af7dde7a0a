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

from conftest import REPO, snakemake
from maskbench.io.errors import ConfigError
from maskbench.results.estimate import REFERENCE_RUNS, TRAIN_EXAMPLES, estimate, load_config, measured_cpu

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
