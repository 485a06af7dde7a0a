"""The paper's Table 1 as data, the majority baseline, and the side-by-side table."""

from __future__ import annotations

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
        load_results(layout, tsne=[sparsity])
    with pytest.raises(ConfigError, match="unknown input"):
        TableSpec("toy", lambda results: table, ("figures",), "Toy.")
