"""The paper's Table 1 as data, the majority baseline, and the side-by-side table."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from maskbench.results.paper import PAPER_TABLE1, majority_baseline, paper_gap


def test_paper_gaps_are_the_table_1_differences():
    assert paper_gap("BERT", "mrpc") == pytest.approx(0.7)
    assert paper_gap("RoBERTa", "rte") == pytest.approx(-9.0)
    assert paper_gap("DistilBERT", "cola") == pytest.approx(-2.0)
    assert paper_gap("BERT", "imdb") is None
    assert all(set(methods["masking"]) == set(methods["finetuning"]) for methods in PAPER_TABLE1.values())


def test_majority_baseline_from_saved_dev_labels(tmp_path):
    save_file({"dev_labels": np.array([1, 1, 0, 1, 2], dtype=np.int64),
               "dev_logits": np.zeros((5, 3), dtype=np.float32)}, tmp_path / "predictions.safetensors")
    assert majority_baseline(tmp_path, "accuracy", ["a", "b", "c"]) == pytest.approx(0.6)
    assert majority_baseline(tmp_path, "matthews", ["a", "b", "c"]) == 0.0
    save_file({"dev_labels": np.array([0, 1, 2, 0], dtype=np.int64), "dev_lengths": np.array([2, 2]),
               "dev_logits": np.zeros((4, 3), dtype=np.float32)}, tmp_path / "predictions.safetensors")
    assert majority_baseline(tmp_path, "seqeval_f1", ["O", "B-PER", "I-PER"]) == 0.0


def _write_csv(path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def test_the_analyses_section_decides_each_finding_from_its_data(tmp_path):
    """Each analysis that ran gets a verdict from its own data (and its own model's rows); the others say that they
    have not run. Fig. 1 shown: 5 % best, 50 % below it; Fig. 3 not decidable from a single task."""
    from maskbench.results.paper import NOT_RUN, analyses_table
    from maskbench.results.tables import Layout, Results

    layout = Layout(models={"m": {"name": "tiny", "label": "Tiny"}, "other": {"name": "big", "label": "Big"}},
                    tasks=["rte"], methods=["finetuning", "masking"])
    header = "task,metric,model,lr,blocks,initial_sparsity,dev_mean,dev_std,final_sparsity_mean,seeds,dev_scores"
    sparsity = _write_csv(tmp_path / "fig1.csv", header, [
        "rte,accuracy,tiny,0.001,2-5,0.01,0.55,0.0,0.01,[1],[0.55]",
        "rte,accuracy,tiny,0.001,2-5,0.05,0.60,0.0,0.05,[1],[0.60]",
        "rte,accuracy,tiny,0.001,2-5,0.5,0.52,0.0,0.5,[1],[0.52]",
        "rte,accuracy,big,0.001,2-5,0.5,0.99,0.0,0.5,[1],[0.99]"])  # another model's sweep: its own finding
    memory = _write_csv(tmp_path / "fig3.csv", "model,label,method,tasks,position,last_task,parameters,bytes,"
                        "resident_mb", ["m,Tiny,finetuning,1,1,rte,10,1000,", "m,Tiny,masking,1,1,rte,11,1010,"])
    rows = {(row[0], row[1]): row for row in analyses_table(Results(layout), {"sparsity": sparsity,
                                                                              "memory": memory}).rows}
    assert rows[("Tiny", "Fig. 1")][3:] == ["yes (grid 1, 5, 50 %)", "RTE: best 5 % (60.0), 50 % 52.0"]
    assert rows[("Big", "Fig. 1")][3:] == ["no (grid 50 %)", "RTE: best 50 % (99.0), 50 % 99.0"]
    assert rows[("Tiny", "Fig. 3")][3] == "undecided"
    assert rows[("Tiny", "Table 3")][3] == rows[("Tiny", "Fig. 7")][3] == rows[("Big", "Fig. 3")][3] == NOT_RUN
    assert rows[("Tiny", "Table 1")][3] == NOT_RUN  # no aggregates: nothing compared


def test_the_registered_side_by_side_reads_the_analyses_data_files_the_workflow_gives(tmp_path):
    """The `table` rule renders paper_comparison like every registered table: the analyses' data files arrive as
    input kinds (tables.ANALYSIS_KINDS), the configured analyses with the layout; the analyses section follows the
    side-by-side in Markdown, not in the CSV (one table per CSV file). An unknown input kind is refused."""
    from maskbench.io.errors import ConfigError
    from maskbench.results.paper import NOT_RUN
    from maskbench.results.tables import ANALYSIS_KINDS, TABLES, TableSpec, load_results, write_table

    assert set(TABLES["paper_comparison"].inputs) == {"aggregates", *ANALYSIS_KINDS}
    layout = {"models": {"m": {"name": "tiny", "label": "Tiny"}}, "tasks": ["rte"],
              "methods": ["finetuning", "masking"], "analyses": ["sparsity", "tsne"]}
    sparsity = _write_csv(tmp_path / "fig1.csv", "task,model,initial_sparsity,dev_mean",
                          ["rte,tiny,0.05,0.60", "rte,tiny,0.5,0.52"])
    out = [tmp_path / "paper_comparison.md", tmp_path / "paper_comparison.csv"]
    table = write_table("paper_comparison", layout, out, aggregates=[], memory=[], sparsity=[sparsity],
                        generalization=[])
    rows = {row[1]: row[3] for row in table.sections[0].rows}
    assert rows["Fig. 1"] == "yes (grid 5, 50 %)"
    assert rows["Fig. 4"] == "configured; not decided here"  # tsne: configured, decided in its own figure
    assert rows["Fig. 3"] == rows["Table 3"] == NOT_RUN
    markdown = out[0].read_text()
    assert "The paper's analyses" in markdown and "RTE: best 5 % (60.0), 50 % 52.0" in markdown
    assert "The paper's finding" not in out[1].read_text()
    with pytest.raises(ConfigError, match="unknown table input"):
        load_results(layout, figures=[sparsity])
    with pytest.raises(ConfigError, match="unknown input"):
        TableSpec("toy", lambda results: table, ("figures",), "Toy.")


# --- the deciders of Figs. 2, 4, 5, 6 and 7, from CSVs written by the analyses' own writers ------------------------

#: MiniLM's block sets of the reference configuration: top-down, then bottom-up; 0-5 (every block) is both
BLOCK_SETS = ["0-5", "1-5", "2-5", "3-5", "4-5", "0-4", "0-3", "0-2", "0-1"]


def _layers_csv(tmp_path, name: str, scores: dict[str, float], model: str = "tiny") -> str:
    """Fig. 2's CSV as sweeps.write_layers writes it, from one RTE run per block set at 5 % (dev score given)."""
    from maskbench.analysis import sweeps
    from run_records import complete_record

    paths = []
    for blocks, dev in scores.items():
        run = tmp_path / name / blocks
        run.mkdir(parents=True)
        record = {"task": "rte", "method": "masking", "model": model, "seed": 1, "lr": 1e-3, "dev_score": dev,
                  "config": {"mask": {"initial_sparsity": 0.05, "blocks": blocks}}}
        (run / "metrics.json").write_text(json.dumps(complete_record(record)))
        paths.append(run / "metrics.json")
    out = tmp_path / name
    tables = [out / f"table7{suffix}" for suffix in (".md", ".csv")]
    sweeps.write_layers(paths, list(scores), out / "fig2.png", out / "fig2.csv", tables)
    return str(out / "fig2.csv")


def test_fig2_top_down_against_bottom_up_masking_of_as_many_blocks(tmp_path):
    """Fig. 2: the pairs are (2-5 blocks) 4-5 vs 0-1, 3-5 vs 0-2, 2-5 vs 0-3, 1-5 vs 0-4; 0-5 is in none. Shown when
    top-down is ahead or level in more than half of them (3 of 4), not at 2 of 4; no rows of the model: not run;
    block sets without a pair: undecided."""
    from maskbench.results.paper import NOT_RUN, _layers_finding

    top = {"4-5": 0.60, "3-5": 0.62, "2-5": 0.61, "1-5": 0.58}
    bottom = {"0-1": 0.55, "0-2": 0.62, "0-3": 0.63, "0-4": 0.57}  # 2 blocks +5.0, 3 level, 4 −2.0, 5 +1.0
    shown = _layers_csv(tmp_path, "shown", {"0-5": 0.59, **top, **bottom})
    labels = {"rte": "RTE"}
    assert _layers_finding(shown, labels, "tiny") == (
        "yes", "top-down ahead or level in 3 of 4 pairs, mean difference +1.0 points (top-down − bottom-up; RTE at "
        "5 %: 2 blocks +5.0, 3 blocks +0.0, 4 blocks −2.0, 5 blocks +1.0)")
    not_shown = _layers_csv(tmp_path, "not_shown", {**top, **bottom, "0-4": 0.59})  # 5 blocks now −1.0
    verdict, number = _layers_finding(not_shown, labels, "tiny")
    assert verdict == "no" and number.startswith("top-down ahead or level in 2 of 4 pairs, mean difference +0.5")
    assert _layers_finding(shown, labels, "another") == (NOT_RUN, "–")
    unpaired = _layers_csv(tmp_path, "unpaired", {"0-5": 0.59, "2-5": 0.61, "0-1": 0.55})
    assert _layers_finding(unpaired, labels, "tiny")[0] == "undecided"


def _tsne_csv(tmp_path, monkeypatch, name: str, separable: tuple[str, ...], model: str = "tiny") -> str:
    """Fig. 4's CSV as tsne.write_tsne writes it (its points given instead of embedded): 60 points per encoder, two
    labels; an encoder in ``separable`` has one cluster per label, the others one cloud of both."""
    from maskbench.analysis import tsne

    rng = np.random.default_rng(0)
    labels = ["negative", "positive"] * 30
    points = []
    for encoder in ("pretrained", "finetuned", "masked"):
        xy = rng.normal(size=(60, 2))
        if encoder in separable:
            xy[1::2] += 8.0  # the positives apart
        points += [{"encoder": encoder, "task": "sst2", "model": model, "index": i, "x": float(x), "y": float(y),
                    "label": label} for i, ((x, y), label) in enumerate(zip(xy, labels))]
    monkeypatch.setattr(tsne, "tsne_points", lambda *args, **kwargs: points)
    out = tmp_path / name
    out.mkdir()
    tsne.write_tsne("finetuned", "masked", "prepared", 128, out / "fig4.png", out / "fig4.csv")
    return str(out / "fig4.csv")


def _loo_knn_accuracy(path: str, encoder: str, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy (%) by brute force: the check of the decider's scikit-learn neighbours."""
    rows = [row for row in csv.DictReader(open(path)) if row["encoder"] == encoder]
    xy = np.array([(float(row["x"]), float(row["y"])) for row in rows])
    gold = [row["label"] for row in rows]
    right = 0
    for i in range(len(rows)):
        distance = np.hypot(*(xy - xy[i]).T)
        distance[i] = np.inf
        votes = [gold[j] for j in np.argsort(distance, kind="stable")[:k]]
        right += max(set(votes), key=votes.count) == gold[i]
    return 100 * right / len(rows)


def test_fig4_leave_one_out_neighbours_of_the_gold_label_in_the_tsne_points(tmp_path, monkeypatch):
    """Fig. 4: shown when the finetuned and the masked encoder's points give their gold label to their 5 nearest
    neighbours (leave-one-out) at least 80 % of the time and 10 points more than the pretrained one's; a masked
    encoder whose points mix the labels is not; no points of the model: not run; a missing encoder: undecided."""
    from maskbench.results.paper import NOT_RUN, _tsne_finding

    shown = _tsne_csv(tmp_path, monkeypatch, "shown", ("finetuned", "masked"))
    pretrained = _loo_knn_accuracy(shown, "pretrained")
    assert pretrained < 70
    assert _tsne_finding(shown, {"sst2": "SST2"}, "tiny") == (
        "yes (SST2 dev, 60 points)", f"leave-one-out 5-NN accuracy of the gold label in the 2-D points: pretrained "
        f"{pretrained:.1f}, finetuned 100.0, masked 100.0 %")
    not_shown = _tsne_csv(tmp_path, monkeypatch, "not_shown", ("finetuned",))
    verdict, number = _tsne_finding(not_shown, {}, "tiny")
    assert verdict == "no (sst2 dev, 60 points)" and number.endswith(
        f"masked {_loo_knn_accuracy(not_shown, 'masked'):.1f} %")
    assert _tsne_finding(shown, {}, "another") == (NOT_RUN, "–")
    rows = list(csv.DictReader(open(shown)))
    partial = tmp_path / "partial.csv"
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(row for row in rows if row["encoder"] != "pretrained")
    assert _tsne_finding(partial, {}, "tiny") == ("undecided", "no points of the pretrained encoder")


def _mask_similarity_csv(tmp_path, monkeypatch, name: str, trend: float, model: str = "tiny") -> str:
    """Fig. 5's CSV as mask_similarity.write_mask_similarity writes it (its rows given instead of measured): three
    tasks, blocks 2-5, W_O's s = 0.4 + trend × (block − 2) (+ 0.02, + 0.01 for the second and third pair; the third
    unchanged in block 5: nan); W_I goes the other way."""
    from maskbench.analysis import mask_similarity

    rows = []
    for pair, (task_1, task_2) in enumerate((("mrpc", "rte"), ("mrpc", "sst2"), ("rte", "sst2"))):
        for block in range(2, 6):
            for role, slope in (("W_I", -trend), ("W_O", trend)):
                s = 0.4 + slope * (block - 2) + (0.0, 0.02, 0.01)[pair]
                if (pair, block, role) == (2, 5, "W_O"):
                    s = float("nan")  # neither task changed this block's masks: left out
                rows.append({"model": model, "seed": 1, "task_1": task_1, "task_2": task_2, "block": block,
                             "role": role, "layer": f"bert.encoder.layer.{block}", "s": s, "changed_1": 5,
                             "changed_2": 5, "weights": 100})
    monkeypatch.setattr(mask_similarity, "mask_dissimilarities", lambda run_dirs: rows)
    out = tmp_path / name
    out.mkdir()
    mask_similarity.write_mask_similarity(["a", "b"], ["W_O"], None, out / "fig5.png", out / "fig5.csv")
    return str(out / "fig5.csv")


def test_fig5_w_o_masks_differ_more_in_the_last_masked_block_than_in_the_first(tmp_path, monkeypatch):
    """Fig. 5: W_O's mean s over the task pairs, last masked block against the first (W_I's rows are not read; a
    pair with nan s in either block is left out of both means)."""
    from maskbench.results.paper import NOT_RUN, _mask_similarity_finding

    shown = _mask_similarity_csv(tmp_path, monkeypatch, "shown", 0.1)
    assert _mask_similarity_finding(shown, {}, "tiny") == (
        "yes", "W_O, mean s over 2 task pairs: block 2 0.41, block 5 0.71; higher in block 5 for 2 of 2 pairs")
    not_shown = _mask_similarity_csv(tmp_path, monkeypatch, "not_shown", -0.1)
    assert _mask_similarity_finding(not_shown, {}, "tiny") == (
        "no", "W_O, mean s over 2 task pairs: block 2 0.41, block 5 0.11; higher in block 5 for 0 of 2 pairs")
    assert _mask_similarity_finding(shown, {}, "another") == (NOT_RUN, "–")


def _path_csv(tmp_path, name: str, figure: int, scores: dict[str, dict[str, list[float]]]) -> str:
    """Fig. 6's or Fig. 7's CSV as connectivity.write_lines_figure / write_bezier_figure write it, from one record
    per task: ``scores`` task -> path (Fig. 6: segment; Fig. 7: curve) -> dev scores at evenly spaced positions."""
    from maskbench.analysis import connectivity

    out = tmp_path / name
    out.mkdir()
    records = []
    for task, paths in scores.items():
        points = [{"segment" if figure == 6 else "curve": path, "gamma" if figure == 6 else "t": i / (len(s) - 1),
                   "dev_score": score} for path, s in paths.items() for i, score in enumerate(s)]
        record = {"task": task, "model": "tiny", "seed": 1, "metric": "accuracy", "points": points,
                  **({} if figure == 6 else {"bends": 3})}
        records.append(out / f"{task}.json")
        records[-1].write_text(json.dumps(record))
    write = connectivity.write_lines_figure if figure == 6 else connectivity.write_bezier_figure
    write(records, out / f"fig{figure}.png", out / f"fig{figure}.csv")
    return str(out / f"fig{figure}.csv")


def test_figs6_7_the_lowest_score_along_the_path_against_its_end_points(tmp_path):
    """Figs. 6/7: shown when, on every task, the lowest score along the finetuned → masked line (Fig. 6) or the
    trained Bézier curve (Fig. 7) is at most 2 points below the lower end point (2.0 exactly is still shown); the
    other segments (Fig. 6's pretrained ones, Fig. 7's straight line) do not decide."""
    from maskbench.results.paper import NOT_RUN, _bezier_finding, _lines_finding

    low = {"pretrained->finetuned": [0.5, 0.5, 0.8], "pretrained->masked": [0.5, 0.5, 0.79]}
    lines = _path_csv(tmp_path, "fig6", 6, {"mrpc": {"finetuned->masked": [0.80, 0.77, 0.79], **low},
                                            "sst2": {"finetuned->masked": [0.90, 0.895, 0.91], **low}})
    labels = {"mrpc": "MRPC", "sst2": "SST2"}
    assert _lines_finding(lines, labels, "tiny") == (
        "yes", "MRPC: ends 80.0 and 79.0, lowest 77.0 (at 0.5); SST2: ends 90.0 and 91.0, lowest 89.5 (at 0.5)")
    dip = _path_csv(tmp_path, "fig6_dip", 6, {"mrpc": {"finetuned->masked": [0.80, 0.7699, 0.79], **low},
                                              "sst2": {"finetuned->masked": [0.90, 0.895, 0.91], **low}})
    assert _lines_finding(dip, labels, "tiny")[0] == "no"
    assert _lines_finding(lines, labels, "another") == (NOT_RUN, "–")
    curve = _path_csv(tmp_path, "fig7", 7, {"sst2": {"bezier": [0.90, 0.89, 0.88, 0.91], "line": [0.9, 0.6, 0.7,
                                                                                                    0.91]}})
    assert _bezier_finding(curve, labels, "tiny") == (
        "yes", "SST2: ends 90.0 and 91.0, lowest 88.0 (at 0.666667), straight segment's lowest 60.0")
    bent = _path_csv(tmp_path, "fig7_dip", 7, {"sst2": {"bezier": [0.90, 0.6, 0.7, 0.91], "line": [0.9] * 4}})
    assert _bezier_finding(bent, labels, "tiny")[0] == "no"
    assert _bezier_finding(curve, labels, "another") == (NOT_RUN, "–")


def test_a_figure_csv_without_the_decider_columns_is_refused_naming_it(tmp_path):
    from maskbench.io.errors import DataError
    from maskbench.results.paper import _layers_finding

    broken = _write_csv(tmp_path / "fig2.csv", "task,model,dev_mean", ["rte,tiny,0.6"])
    with pytest.raises(DataError, match=r"fig2\.csv: expected the columns blocks, initial_sparsity"):
        _layers_finding(broken, {}, "tiny")


def test_every_configured_analysis_is_decided_from_its_figure_csv_in_the_side_by_side(tmp_path, monkeypatch):
    """The registered table, given each analysis's figure CSV under its analysis key (as the workflow's
    analysis_data_files does), decides Figs. 2, 4, 5, 6 and 7 — none is left "configured; not decided here" — and
    the paper's findings are worded as in the paper (Fig. 2: top-down vs bottom-up)."""
    from maskbench.results.paper import CRITERIA, PAPER_ANALYSES
    from maskbench.results.tables import write_table

    data = {"layers": _layers_csv(tmp_path, "fig2", {"4-5": 0.6, "0-1": 0.5}),
            "tsne": _tsne_csv(tmp_path, monkeypatch, "fig4", ("finetuned", "masked")),
            "mask_similarity": _mask_similarity_csv(tmp_path, monkeypatch, "fig5", 0.1),
            "mode_connectivity": _path_csv(tmp_path, "fig6", 6, {"rte": {"finetuned->masked": [0.6, 0.6]}}),
            "bezier": _path_csv(tmp_path, "fig7", 7, {"rte": {"bezier": [0.6, 0.4, 0.6], "line": [0.6, 0.5, 0.6]}})}
    layout = {"models": {"m": {"name": "tiny", "label": "Tiny"}}, "tasks": ["rte"],
              "methods": ["finetuning", "masking"], "analyses": list(data)}
    table = write_table("paper_comparison", layout, [tmp_path / "paper_comparison.md"], aggregates=[],
                        **{kind: [path] for kind, path in data.items()})
    rows = {row[1]: row[3] for row in table.sections[0].rows}
    assert rows == {"Table 1": "not run at full data yet", "Fig. 1": "not run at full data yet",
                    "Fig. 2 / Table 7": "yes", "Table 3": "not run at full data yet",
                    "Fig. 3": "not run at full data yet", "Fig. 4": "yes (sst2 dev, 60 points)",
                    "Fig. 5": "yes", "Fig. 6": "yes", "Fig. 7": "no"}
    findings = {name: finding for name, finding, _ in PAPER_ANALYSES}
    assert "top-down masking" in findings["Fig. 2 / Table 7"] and "bottom-up" in findings["Fig. 2 / Table 7"]
    assert all(f"Fig. {n}," in CRITERIA for n in (2, 4, 5)) and "Figs. 6 and 7" in CRITERIA


def test_table3_verdict_says_when_it_covers_only_part_of_the_papers_table(tmp_path):
    """Table 3's verdict compares masking with finetuning on every target other than the source (gap against the
    two seed spreads combined); it says "only" while the records cover fewer than the paper's three directions
    (SST-2 ↔ SEM, SST-2 → IMDB), and not once they cover them all."""
    from maskbench.results.paper import _generalization_finding

    def record(method, source, gains):  # target -> (improvement mean, std)
        path = tmp_path / f"{method}-{source}.json"
        path.write_text(json.dumps({"model": "tiny", "method": method, "source": source, "targets": {
            target: {"improvement_mean": mean, "improvement_std": std} for target, (mean, std) in gains.items()}}))
        return path

    sst2 = [record("masking", "sst2", {"sst2": (0.36, 0.0), "imdb": (0.28, 0.01)}),
            record("finetuning", "sst2", {"sst2": (0.36, 0.0), "imdb": (0.29, 0.01)})]
    verdict, number = _generalization_finding(sst2, {"sst2": "SST2"}, "tiny")
    assert verdict == "yes (SST2 → imdb only)"  # −1.0 ± 1.4: within the noise
    assert number == "SST2 → imdb: masking +28.0 vs finetuning +29.0 over the majority class (−1.0 ± 1.4)"
    both = [record("masking", "sst2", {"sem": (-0.14, 0.02), "imdb": (0.28, 0.01)}),
            record("finetuning", "sst2", {"sem": (-0.08, 0.04), "imdb": (0.29, 0.01)}),
            record("masking", "sem", {"sst2": (0.15, 0.02)}), record("finetuning", "sem", {"sst2": (0.18, 0.02)})]
    verdict, number = _generalization_finding(both, {}, "tiny")
    assert verdict == "no"  # sst2 → sem: −6.0 ± 4.5 and sem → sst2: −3.0 ± 2.8 lie beyond the noise
    assert "sem → sst2: masking +15.0 vs finetuning +18.0 over the majority class (−3.0 ± 2.8)" in number
    # a loss against the majority class is signed like every other number of the side-by-side (U+2212)
    assert "sst2 → sem: masking −14.0 vs finetuning −8.0 over the majority class (−6.0 ± 4.5)" in number
