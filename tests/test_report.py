"""`snakemake --report` on the committed reference results: tables shown as tables with their notes, one caption per
figure, and no warnings.

Snakemake warns "Missing metadata" for every output of the DAG that it has no record of (its records live in
`.snakemake/metadata/`, which a checkout does not have). `snakemake --touch --forceall` records them without running
anything (it only touches the outputs, in the DAG's order); the report that follows is then warning-free. That is
the documented way (workflow/README.md, "Reports") and what this test does, on a copy of the committed results.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO, needs_data, snakemake

CONFIG = REPO / "config" / "reference.yaml"
RESULTS = REPO / "results" / "reference"


def report_entries(report: Path) -> dict[str, dict]:
    """The report's items (path → name, caption, data_uri, ...): the single-file HTML report of Snakemake 9's html
    plugin holds them as one JavaScript object literal, ``var results = {...};``, on a line of its own."""
    line = next((line for line in report.read_text(encoding="utf-8").splitlines()
                 if line.strip().startswith("var results = {")), None)
    assert line is not None, f"{report}: no 'var results = {{...}}' line (another report format?)"
    return json.loads(line.strip().removeprefix("var results = ").rstrip(";"))


def decoded(entry: dict) -> str:
    """The file behind a report item (a base64 data URI)."""
    header, data = entry["data_uri"].split(",", 1)
    assert header.endswith(";base64"), header
    return base64.b64decode(data).decode("utf-8")


def test_report_entries_reads_the_results_object(tmp_path):
    """The parser of the report's item list, on a hand-made page."""
    page = tmp_path / "report.html"
    uri = "data:text/html;charset=utf8;base64," + base64.b64encode("<table></table>".encode()).decode()
    page.write_text('<script>\n    var results = {"a.html": {"caption": "<p>A</p>", "data_uri": "%s"}};\n</script>\n'
                    % uri)
    entries = report_entries(page)
    assert list(entries) == ["a.html"] and decoded(entries["a.html"]) == "<table></table>"


@needs_data
@pytest.mark.slow(seconds=90)
@pytest.mark.timeout(900)
@pytest.mark.skipif(not (RESULTS / "tables" / "table1_dev.html").is_file(), reason="no committed reference tables")
def test_the_report_of_the_committed_results_shows_tables_with_notes_and_one_caption_per_figure(tmp_path):
    for path in sorted(RESULTS.rglob("*")):  # a checkout writes files in path order, with no Snakemake metadata
        if path.is_file():
            copy = tmp_path / path.relative_to(REPO)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    touched = snakemake(tmp_path, "--configfile", str(CONFIG), "--touch", "--forceall", "--quiet", "all")
    assert touched.returncode == 0, (touched.stdout + touched.stderr)[-3000:]
    report = tmp_path / "report.html"
    made = snakemake(tmp_path, "--configfile", str(CONFIG), "--report", str(report))
    output = made.stdout + made.stderr
    assert made.returncode == 0, output[-3000:]
    assert "Report created" in output, output[-3000:]
    assert not re.search(r"warn|missing metadata", output, re.IGNORECASE), output[-3000:]
    assert "Missing metadata" not in touched.stdout + touched.stderr

    entries = report_entries(report)
    # Table 1 is shown as a table (an HTML page) with its caption and every note of the committed Markdown table
    table1 = entries["results/reference/tables/table1_dev.html"]
    page = decoded(table1)
    markdown = (RESULTS / "tables" / "table1_dev.md").read_text(encoding="utf-8")
    notes = [line[2:] for line in markdown.splitlines() if line.startswith("- ")]
    assert notes, "the committed Table 1 has no notes"
    assert "<table" in page and "<strong>Table 1: " in page
    for note in notes:
        assert html.escape(note) in page, note  # as Table.html escapes it (quotes too: the NER note has some)
    assert "Table 1" in table1["caption"]
    # every table of the report is such a page, not a bare CSV (summary.csv is the raw data, one row per cell)
    shown = {path for path in entries if "/tables/" in path and path.endswith(".html")}
    committed = {f"results/reference/tables/{p.name}" for p in (RESULTS / "tables").glob("*.md")}
    assert shown == {path.removesuffix(".md") + ".html" for path in committed}
    assert all(not path.endswith(".csv") or path.endswith("summary.csv") for path in entries)
    # one caption per figure, each its own, naming its figure
    figures = {path: entry["caption"] for path, entry in entries.items() if path.endswith(".png")}
    assert set(figures) == {f"results/reference/figures/{p.name}" for p in (RESULTS / "figures").glob("*.png")}
    for path, caption in figures.items():
        paper_figure = re.search(r"fig(\d)", Path(path).name)  # the paper's Fig. N, else a figure of ours by name
        assert (f"Fig. {paper_figure.group(1)}" if paper_figure else Path(path).stem) in caption, (path, caption)
    captions = [entry["caption"] for entry in entries.values()]
    assert len(set(captions)) == len(captions), "two report items share a caption"
