"""The Snakemake workflow: config validation, planning the paper's grid, and the tiny CI config end to end.

Snakemake runs as a subprocess with the repository's Snakefile and a temporary working directory, so results
land in the test's tmp_path. Timings on a shared 2-core machine vary a lot; the planning test bounds the CPU
time of `snakemake -n`, which load from other processes does not inflate.
"""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, needs_data, snakemake


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count} (without the total)."""
    counts = {}
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def test_paper_grid_plans_every_training_run_quickly(tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "paper.yaml"), timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout + result.stderr)
    # 11 tasks × 3 models × 5 methods (the paper's 2, LoRA, BitFit, IA3) × 4 seeds × 5 initial lrs; extensions
    # are planned after the checkpoints
    assert counts["train"] == 3300
    # 11 tasks × 3 models, plus IMDB for BERT: the SST2 and SEM runs of BERT (Table 3's sources) score themselves
    # on IMDB when they finish (--transfer), so its prepared data is an input of those runs
    assert counts["prepare"] == 33 + 1 and counts["select_lr"] == 165
    print(f"paper dry run: {sum(counts.values())} jobs, {wall:.1f} s wall, {cpu:.1f} s CPU")
    assert cpu < 20, f"planning took {cpu:.1f} s of CPU time"
    assert not (tmp_path / "results").exists()  # planning writes nothing


@pytest.mark.parametrize("change, expected", [
    ({"lr_grd": {"masking": [0.001]}}, r"'\(top level\)' \(.*bad.yaml\): .*'lr_grd' was unexpected"),
    ({"training": {"initial_sparsity": 1.5}}, r"'training.initial_sparsity'.*: 1.5 is greater than or equal to"),
    ({"lr_grid": {"masking": ["1e-3"]}}, r"'lr_grid.masking.0'.*write 1.0e-5"),
    ({"methods": ["finetuning", "masking"], "lr_grid": {"masking": [0.001]}},
     r"'lr_grid': no grid for method\(s\) \['finetuning'\]"),
    # method names are the registry's (maskbench.training.method_registry), not a list in the schema
    ({"methods": ["finetuning", "maskng"]}, r"'methods'.*unknown method\(s\) \['maskng'\]; registered"),
    ({"lr_grid": {"finetuning": [0.001], "masking": [0.001], "lora2": [0.001]}},
     r"'lr_grid'.*unknown method\(s\) \['lora2'\]"),
])
def test_a_wrong_key_or_value_stops_the_run_naming_it(tmp_path, change, expected):
    _assert_config_refused(tmp_path, change, expected)


def test_a_method_on_some_tasks_plans_only_its_cells(tmp_path):
    import yaml

    config = yaml.safe_load((REPO / "config" / "ci_methods.yaml").read_text())
    config.update(tasks=["trec", "rte"], method_tasks={"lora": ["trec"], "bitfit": ["trec"], "ia3": ["rte"]})
    path = tmp_path / "methods.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--configfile", str(path), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    # finetuning and masking on both tasks, the others on one: 7 cells x 1 lr x 2 seeds in the first round
    assert job_counts(result.stdout + result.stderr)["train"] == 14
    output = result.stdout + result.stderr
    assert "task=trec, method=lora" in output and "task=rte, method=lora" not in output
    _assert_config_refused(tmp_path, {"method_tasks": {"lora": ["mrpc"]}}, r"'method_tasks.lora'.*\['mrpc'\]")


def _assert_config_refused(tmp_path: Path, change: dict, expected: str) -> None:
    """config/ci.yaml with ``change`` stops the plan with a message matching ``expected``; nothing is written."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--configfile", str(path), timeout=120)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid configuration at" in output and re.search(expected, output), output[-2000:]
    assert not (tmp_path / "results").exists()


def test_the_workflow_uses_the_maskbench_of_its_own_checkout(tmp_path):
    """Steps that run inside the Snakemake process import maskbench from the Snakefile's checkout, not from the
    installed one (an editable install of another checkout would silently run other code)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, checkout / name)
    for name in ("workflow", "src"):
        shutil.copytree(REPO / name, checkout / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    marker = tmp_path / "imported_from"
    with open(checkout / "src" / "maskbench" / "__init__.py", "a") as module:
        module.write(f"\nfrom pathlib import Path as _Path\n_Path({str(marker)!r}).write_text(__file__)\n")
    work = tmp_path / "work"
    work.mkdir()
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(checkout / "Snakefile"), "--directory",
               str(work), "--configfile", str(checkout / "config.yaml"), "--list-rules"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.is_file(), "the Snakefile imported a maskbench other than its checkout's"
    assert Path(marker.read_text()).resolve().is_relative_to((checkout / "src").resolve())


def test_lint_has_no_findings(tmp_path):
    result = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


@needs_data
@pytest.mark.slow(seconds=170)
@pytest.mark.timeout(1200)
def test_ci_config_runs_every_stage_and_is_cached(tmp_path):
    config = str(REPO / "config" / "ci.yaml")
    results = _run_workflow(tmp_path, config)
    for name in ("table1_dev", "table2_test", "table4_lr", "table5_sizes", "table8_memory", "table9_bytes",
                 "paper_comparison"):
        for suffix in (".md", ".tex", ".csv"):
            assert (results / "tables" / f"{name}{suffix}").stat().st_size > 0
    assert (results / "figures" / "fig3_memory.png").read_bytes()[:4] == b"\x89PNG"
    # the side-by-side with the paper: TREC's gap here next to the paper's (BERT: 96.0 - 96.4 = -0.4)
    comparison = list(csv.DictReader((results / "tables" / "paper_comparison.csv").open()))
    assert [row["Task"] for row in comparison] == ["TREC"] and comparison[0]["Gap BERT (paper)"] == "−0.4"
    assert float(comparison[0]["Majority"]) > 0
    assert "| MiniLM | Finetuning |" in (results / "tables" / "table1_dev.md").read_text()
    assert "TREC" in (results / "tables" / "table2_test.md").read_text()
    # Table 8 and Fig. 3 carry the measured memory of serving the task (one backbone + masks vs one model)
    serving = json.loads((results / "artefacts" / "minilm" / "serving_memory.json").read_text())
    measured = {(point["method"], point["tasks"]): point["model_rss_mb"] for point in serving["points"]}
    assert set(measured) == {("masking", 1), ("finetuning", 1)} and all(v > 0 for v in measured.values())
    assert "serving 1 task (resident, measured)" in (results / "tables" / "table8_memory.md").read_text()
    assert "resident_mb" in (results / "figures" / "fig3_memory.csv").read_text().splitlines()[0]

    # masking's two-lr grid always has its best lr on a border: one extension round (the cap), three lrs trained
    selection = results / "selection" / "minilm" / "trec"
    assert json.loads((selection / "masking" / "round0.json").read_text())["next_lr"] is not None
    chosen = json.loads((selection / "masking" / "chosen.json").read_text())
    assert chosen["extensions"] == 1 and len(chosen["final_grid"]) == 3
    assert len(list((results / "runs" / "minilm" / "trec" / "masking").glob("lr*/seed*/metrics.json"))) == 6
    assert json.loads((selection / "finetuning" / "chosen.json").read_text())["extensions"] == 0

    # the HTML report embeds the tables and Fig. 3
    report = snakemake(tmp_path, "--configfile", config, "--report", "results/report.html", timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert (results / "report.html").stat().st_size > 10_000

    # everything is cached: a second run has nothing to do
    again = snakemake(tmp_path, "-n", "--configfile", config, timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]

    # a run's identity is its settings: the finished runs alone (as committed to git: no prepared data, no
    # Snakemake metadata, fresh modification times) are finished targets — nothing to train
    clean = tmp_path / "clean"
    for stage in ("runs", "selection"):
        shutil.copytree(results / stage, clean / "results" / stage)
    # runs newer than the selection that read them, as a fresh checkout may leave them: the selection is planned
    # again, and Snakemake takes the runs for plain input files
    now = time.time()
    for path in (clean / "results").rglob("*"):
        stamp = now if path.relative_to(clean / "results").parts[0] == "runs" else now - 60
        os.utime(path, (stamp, stamp))
    plan = snakemake(clean, "-n", "--configfile", config, timeout=120)
    counts = job_counts(plan.stdout + plan.stderr)
    assert plan.returncode == 0 and "train" not in counts and "prepare" not in counts, plan.stdout[-3000:]

    # ... and a finished run of other settings is refused, not silently reused or overwritten (also with the
    # selection out of date, where Snakemake would take the run for a plain input file)
    other = tmp_path / "other.yaml"
    other.write_text(Path(config).read_text().replace("epochs: 1", "epochs: 2"))
    plan = snakemake(clean, "-n", "--configfile", str(other), timeout=120)
    message = plan.stdout + plan.stderr
    assert plan.returncode != 0 and "holds a finished run of other settings" in message, message[-3000:]

    # deleting one run recomputes that run and what depends on it, nothing else
    run = results / "runs" / "minilm" / "trec" / "finetuning" / f"lr{chosen_lr(selection)}" / "seed2"
    shutil.rmtree(run)
    plan = snakemake(tmp_path, "-n", "--configfile", config, timeout=120)
    output = plan.stdout + plan.stderr
    counts = job_counts(output)
    assert counts.pop("train") == 1 and f"{run.relative_to(tmp_path)}/metrics.json" in output
    assert set(counts) == {"select_lr", "choose_lr", "aggregate", "ensemble", "evaluate", "table", "summary",
                           "fig3_memory", "dev_vs_bytes", "all"}
    # the one `table` rule: Tables 1, 2, 4, 5, 8, 9 and paper_comparison, each read the changed records
    assert counts["table"] == 7
    assert all(counts[rule] == 1 for rule in ("select_lr", "choose_lr", "aggregate", "ensemble", "evaluate"))
    outputs = [line for line in output.splitlines() if line.strip().startswith("output:")]
    assert outputs and not any("masking" in line for line in outputs)  # the other method is untouched




@needs_data
@pytest.mark.slow(seconds=170)
@pytest.mark.timeout(1200)
def test_ci_methods_config_trains_every_method_and_renders_the_tables(tmp_path):
    config = str(REPO / "config" / "ci_methods.yaml")
    results = _run_workflow(tmp_path, config)
    labels = ["Finetuning", "Masking", "LoRA", "BitFit", "IA3"]
    table1 = (results / "tables" / "table1_dev.md").read_text()
    assert all(f"| {label}" in table1 for label in labels), table1
    runs = results / "runs" / "minilm" / "trec"
    for method, artefact in (("lora", "lora/adapter_model.safetensors"), ("ia3", "ia3/adapter_model.safetensors"),
                             ("bitfit", "bitfit/bitfit.safetensors"), ("masking", "masks/masks.safetensors")):
        assert len(list(runs.glob(f"{method}/lr*/seed*/{artefact}"))) == 2, method
    recorded = json.loads(next(runs.glob("lora/lr*/seed1/metrics.json")).read_text())
    assert recorded["config"]["lora"]["lora_r"] == 4  # training.lora_r of the configuration reaches the run
    table9 = list(csv.reader((results / "tables" / "table9_bytes.csv").open()))
    methods = [row[1] for row in table9[1:]]
    assert methods == ["Finetuning", "Masking (packed bits)", "Masking (Rice-coded)", "LoRA", "BitFit", "IA3"]
    assert all(row[3] != "–" for row in table9[1:]), table9
    table8 = (results / "tables" / "table8_memory.md").read_text()
    assert "Memory (KB): LoRA" in table8 and "Memory (KB): IA3" in table8
    fig3 = {row["method"] for row in csv.DictReader((results / "figures" / "fig3_memory.csv").open())}
    assert {"finetuning", "masking", "lora", "bitfit", "ia3"} <= fig3
    # the runs' recorded settings are those the workflow asks for: everything is cached
    again = snakemake(tmp_path, "-n", "--configfile", config, timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]


def _run_workflow(workdir: Path, config: str) -> Path:
    """Run the workflow with ``config`` on 2 cores in ``workdir``; returns its results directory."""
    started = time.perf_counter()
    result = snakemake(workdir, "--cores", "2", "--configfile", config, timeout=1100)
    print(f"workflow {Path(config).name}: {time.perf_counter() - started:.0f} s")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir / "results"


def chosen_lr(selection: Path) -> str:
    return json.loads((selection / "finetuning" / "chosen.json").read_text())["lr"]


ANALYSIS_FILES = {
    "fig1_sparsity": ["figures/fig1_sparsity.png", "figures/fig1_sparsity.csv"],
    "fig2_layers": ["figures/fig2_layers.png", "figures/fig2_layers.csv", "tables/table7_layers.md",
                    "tables/table7_layers.tex", "tables/table7_layers.csv"],
    "table3_generalization": ["tables/table3_generalization.md", "tables/table3_generalization.tex",
                              "tables/table3_generalization.csv"],
    "fig4_tsne": ["figures/fig4_tsne.png", "figures/fig4_tsne.csv"],
    "fig5_mask_dissimilarity": ["figures/fig5_mask_dissimilarity.png", "figures/fig5_mask_dissimilarity.csv"],
    "fig6_mode_connectivity": ["figures/fig6_mode_connectivity.png", "figures/fig6_mode_connectivity.csv"],
    "fig7_bezier": ["figures/fig7_bezier.png", "figures/fig7_bezier.csv"],
}


def test_paper_config_plans_every_analysis_output(tmp_path):
    files = [f"results/{path}" for paths in ANALYSIS_FILES.values() for path in paths]
    # targets before --configfile, which takes several values
    result = snakemake(tmp_path, *files, "-n", "--configfile", str(REPO / "config" / "paper.yaml"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout + result.stderr)
    assert all(counts.get(rule) == 1 for rule in ANALYSIS_FILES), counts
    # Fig. 1 (4 tasks × 21 sparsities × 4 seeds) and Fig. 2 (3 tasks × 9 block sets × 2 sparsities × 4 seeds)
    # share their 0-11 runs at 5 % and 15 % on MRPC, RTE and CoLA (3 × 2 × 4)
    assert counts["train_analysis"] == 4 * 21 * 4 + 3 * 9 * 2 * 4 - 3 * 2 * 4
    # the analyses that read the grid's selected runs wait for the lr selection of every cell they need, all
    # planned at once: finetuning of SST2, SEM, MRPC, masking of the 8 tasks of Fig. 5, and Table 3's other methods
    # (LoRA, BitFit, IA3 of its sources SST2 and SEM): 17 cells × 5 lrs × 4 seeds
    assert counts["select_lr"] == 3 + 8 + 3 * 2 and counts["train"] == 17 * 5 * 4
    # Table 3: every method of the paper config (five) on its two sources
    assert counts["generalization"] == 5 * 2 and counts["mode_connectivity"] == 2


@pytest.mark.parametrize("change, expected", [
    ({"analyses": {"tsne": {"model": "bert", "task": "trec", "seed": 1}}},
     r"'analyses.tsne.model': 'bert' is not a key of 'models'"),
    ({"analyses": {"tsne": {"model": "minilm", "task": "sst2", "seed": 1}}},
     r"'analyses.tsne': task\(s\) \['sst2'\] must be in 'tasks'"),
    ({"analyses": {"mode_connectivity": {"model": "minilm", "tasks": ["trec"], "seed": 7}}},
     r"'analyses.mode_connectivity.seed': 7 is not in 'seeds'"),
    ({"analyses": {"sparsity": {"model": "minilm", "tasks": ["trec"], "initial_sparsities": [1.5], "lr": 0.001,
                                "seeds": [1]}}},
     r"'analyses.sparsity.initial_sparsities.0'.*1.5 is greater than or equal to"),
])
def test_a_wrong_analysis_setting_stops_the_run_naming_it(tmp_path, change, expected):
    _assert_config_refused(tmp_path, change, expected)


@needs_data
@pytest.mark.slow(seconds=420)
@pytest.mark.timeout(1200)
def test_ci_analyses_config_runs_every_analysis(tmp_path):
    config = str(REPO / "config" / "ci_analyses.yaml")
    results = _run_workflow(tmp_path, config)
    for paths in ANALYSIS_FILES.values():
        for path in paths:
            assert (results / path).stat().st_size > 0, path
            if path.endswith(".png"):
                assert (results / path).read_bytes()[:4] == b"\x89PNG"
    # Fig. 1's 5 % runs and Fig. 2's 2-5 runs are the grid's masking runs; only the other settings were trained
    runs = results / "runs" / "minilm" / "sst2"
    assert sorted(p.name for p in runs.iterdir()) == ["finetuning", "masking", "masking_s0.05_b4-5",
                                                      "masking_s0.5_b2-5"]
    fig1 = list(csv.DictReader((results / "figures" / "fig1_sparsity.csv").open()))
    assert [float(row["initial_sparsity"]) for row in fig1] == [0.05, 0.5]
    # the finetuning runs the analyses rebuild saved their weights; masking runs always keep their masks
    assert len(list(runs.glob("finetuning/lr*/seed*/model/model.safetensors"))) == 2
    table3 = (results / "tables" / "table3_generalization.md").read_text()
    assert "| Masking" in table3 and "| Finetuning" in table3 and "SEM" in table3
    # every Table 3 score comes from the runs' own records (--transfer), none from a rebuilt model
    records = sorted((results / "analysis" / "generalization").rglob("*.json"))
    assert len(records) == 4
    for path in records:
        record = json.loads(path.read_text())
        assert record["recorded"] == [record["target_order"]] * len(record["seeds"]), path
    fig6 = list(csv.DictReader((results / "figures" / "fig6_mode_connectivity.csv").open()))
    assert {row["segment"] for row in fig6} == {"finetuned->masked", "pretrained->finetuned", "pretrained->masked"}
    again = snakemake(tmp_path, "-n", "--configfile", config, timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]

    # Committed results keep records, not models: without the t-SNE pair's weights and masks, the analyses made from
    # them are not remade (a fresh checkout of results/reference plans no retraining) ...
    pair = [runs / "finetuning/lr0.0003/seed1/model", runs / "masking/lr0.001/seed1/masks"]
    for folder in pair:
        shutil.rmtree(folder)
    again = snakemake(tmp_path, "-n", "--configfile", config, timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    # ... and a deleted figure is remade from the models rebuilt by training their runs again (`rebuild`, checked
    # against each record): the same models, so the same t-SNE numbers
    fig4 = results / "figures" / "fig4_tsne.csv"
    before = fig4.read_bytes()
    fig4.unlink()
    remade = snakemake(tmp_path, "--cores", "2", "--configfile", config, timeout=600)
    log = remade.stdout + remade.stderr
    assert remade.returncode == 0, log[-3000:]
    assert log.count("rule rebuild:") == 2 and "rule train:" not in log, log[-3000:]
    assert all(folder.is_dir() for folder in pair)
    assert fig4.read_bytes() == before

    # Table 3 from a run that did not record its scores on the targets (a committed reference run from before a
    # target was added to Table 3), its masks not kept: the record that covers the targets is not remade for lack of
    # the model; deleted, it is remade from the model rebuilt by training the run again, with the scores the run
    # had recorded
    run = runs / "masking/lr0.001/seed1"
    metrics = run / "metrics.json"
    stat, record = metrics.stat(), json.loads(metrics.read_text())
    del record["transfer"]
    metrics.write_text(json.dumps(record, indent=2))
    os.utime(metrics, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the record is as old as before: nothing downstream
    shutil.rmtree(run / "masks")
    again = snakemake(tmp_path, "-n", "--configfile", config, timeout=120)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    table3 = results / "analysis" / "generalization" / "minilm" / "masking" / "sst2.json"
    before = json.loads(table3.read_text())
    table3.unlink()  # the default target remakes it, although Table 3 made from it is still there
    remade = snakemake(tmp_path, "--cores", "2", "--configfile", config, timeout=600)
    log = remade.stdout + remade.stderr
    assert remade.returncode == 0, log[-3000:]
    assert log.count("rule rebuild:") == 1 and "rule train:" not in log, log[-3000:]
    after = json.loads(table3.read_text())
    # seed 1 scored from its rebuilt masks, and those scores added to its record (marked); seed 2 recorded them
    assert after["recorded"] == [before["target_order"]] * 2
    assert after["targets"] == before["targets"]
    rescored = json.loads(metrics.read_text())["transfer"]
    assert sorted(rescored) == sorted(before["target_order"]), rescored
    assert all(entry["scored_after_training"] is True for entry in rescored.values()), rescored

    # A target added to Table 3 after the runs finished (as SST-2 <-> SEM was added to the reference's SST-2 -> IMDB):
    # a record of the old targets is refused, naming the file to delete (Snakemake would keep it: it exists and
    # its inputs are older) ...
    added = tmp_path / "imdb.yaml"
    added.write_text(yaml.safe_dump({"analyses": {"generalization": {
        "model": "minilm", "sources": ["sst2", "sem"], "targets": ["sst2", "sem", "imdb"]}}}))
    refused = snakemake(tmp_path, "-n", "--configfile", config, str(added), timeout=300)
    log = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "scored sst2, sem on dev, but 'analyses.generalization' asks for sst2, " \
        "sem, imdb on dev: delete it" in log, log[-3000:]
    # ... and deleted, every record is made again: the finished runs did not read the new target, which is not a
    # change of their data; each run without a kept model is rebuilt (retrained, checked), none trained anew. (The
    # new target is fetched first: a dry run stops its plan at the changed download step.)
    shutil.rmtree(results / "analysis" / "generalization")
    shutil.rmtree(run / "masks")
    fetched = snakemake(tmp_path, "results/download/manifest.json", "--cores", "1", "--configfile", config,
                        str(added), timeout=300)
    assert fetched.returncode == 0, (fetched.stdout + fetched.stderr)[-3000:]
    planned = snakemake(tmp_path, "-n", "--configfile", config, str(added), timeout=300)
    log = planned.stdout + planned.stderr
    counts = job_counts(log)
    assert planned.returncode == 0, log[-3000:]
    assert counts.get("generalization") == 4 and counts.get("rebuild") == 1 and "train" not in counts, counts
