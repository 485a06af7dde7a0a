"""CONTRIBUTING.md's recipe "Add a table", followed: a toy table declared in a package of its own (an entry point of
the group ``maskbench.tables``, no other module touched) becomes a target of the workflow's one ``table`` rule and
is rendered in every format. On the code before this change there is no table registry (maskbench.results.tables has no
TableSpec) and one rule per table: the import below fails, and no rule makes ``tables/toy_sizes.md``."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import yaml

from conftest import DATA_DIR, REPO, SNAKEMAKE, needs_data
from maskbench.results.tables import TABLES, Results, Table, TableSpec, write_table

TOY = '''
from maskbench.results.tables import Table, TableSpec


def toy_sizes(results):
    """Recipe step 1: a function from the loaded records to a Table."""
    rows = [[task, str(record["head_parameters"])] for (_, task), record in sorted(results.references.items())]
    return Table("toy_sizes", "Toy: the parameters of each task's head", ["Task", "Head parameters"], rows,
                 ["from the reference sizes"])


# recipe step 2: the table's spec (name, build, the records it reads, its report caption)
SPEC = TableSpec("toy_sizes", toy_sizes, ("references",), "Toy table: head parameters per task.")
'''


def _plugin(tmp_path):
    """A package that declares the toy table through the ``maskbench.tables`` entry point group."""
    root = tmp_path / "plugin"
    (root / "toy_table-0.1.dist-info").mkdir(parents=True)
    (root / "toy_table.py").write_text(TOY)
    (root / "toy_table-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-table\nVersion: 0.1\n")
    (root / "toy_table-0.1.dist-info" / "entry_points.txt").write_text(
        "[maskbench.tables]\ntoy_sizes = toy_table:SPEC\n")
    return root


def test_a_table_spec_renders_through_write_table(tmp_path):
    spec = TableSpec("toy_counts", lambda results: Table("toy_counts", "Toy", ["Tasks"],
                                                         [[str(len(results.layout.tasks))]]), (), "Toy.")
    TABLES[spec.name] = spec
    try:
        layout = {"models": {"m": {"name": "minilm"}}, "tasks": ["rte", "trec"], "methods": ["masking"]}
        write_table("toy_counts", layout, [tmp_path / "toy_counts.md", tmp_path / "toy_counts.csv"])
    finally:
        del TABLES[spec.name]
    assert (tmp_path / "toy_counts.csv").read_text() == "Tasks\n2\n"
    assert "**Toy**" in (tmp_path / "toy_counts.md").read_text()
    assert isinstance(Results, type)


@needs_data
def test_a_new_table_is_rendered_by_the_workflow(tmp_path):
    config = yaml.safe_load((REPO / "config" / "reference.yaml").read_text())
    config.update(results_dir=str(tmp_path / "results"), tasks=["trec", "rte"], methods=["finetuning", "masking"],
                  method_tasks={}, analyses={})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    results = REPO / "results" / "reference"
    # the records the toy table reads (the download stage runs: it only checks the local model and task files)
    for path in ("artefacts/minilm/trec/reference_sizes.json", "artefacts/minilm/rte/reference_sizes.json"):
        (tmp_path / "results" / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(results / path, tmp_path / "results" / path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MASKBENCH_DATA_DIR": str(DATA_DIR),
           "PYTHONPATH": os.pathsep.join([str(_plugin(tmp_path)), str(REPO / "src")])}
    target = tmp_path / "results" / "tables" / "toy_sizes.md"
    result = subprocess.run([*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
                             "--cores", "1", str(target)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "rule table:" in result.stdout + result.stderr  # the one table rule, with {name} = toy_sizes
    assert target.read_text() == textwrap.dedent("""\
        **Toy: the parameters of each task's head**

        | Task   | Head parameters   |
        |--------|-------------------|
        | rte    | 770               |
        | trec   | 2310              |

        - from the reference sizes
        """)
    for suffix in (".tex", ".csv", ".html"):
        assert target.with_suffix(suffix).is_file()
