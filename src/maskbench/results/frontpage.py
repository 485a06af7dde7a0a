"""The generated parts of the front pages: result numbers and the task list, rendered from the records.

README.md, workflow/README.md and results/reference/README.md hold no hand-typed result number: each result
sentence or table lives in a block between two markers,

    <!-- generated: NAME (maskbench step front-page '{}'; do not edit) -->
    ...
    <!-- end generated: NAME -->

that :func:`write_front_page` rewrites from the committed reference records (``config/reference.yaml``,
``results/reference/``) and the task registry. ``tests/test_front_page.py`` renders every block afresh and
compares, and checks that no result number stands outside a block.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from maskbench.io.errors import ConfigError
from maskbench.io.fileio import atomic_path

REFERENCE_CONFIG = "config/reference.yaml"
#: file (relative to the repository root) -> the generated blocks it holds, in order
PAGES = {
    "README.md": ["reference-gaps", "tasks"],
    "results/reference/README.md": ["side-by-side", "five-methods"],
}
BEGIN = "<!-- generated: {name} (maskbench step front-page '{{}}'; do not edit) -->"
END = "<!-- end generated: {name} -->"
_BLOCK = re.compile(r"<!-- generated: ([\w-]+) \(maskbench step front-page '\{\}'; do not edit\) -->\n(.*?)"
                    r"<!-- end generated: \1 -->", re.DOTALL)


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    """The records name their runs relative to the repository root."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _minus(text: str) -> str:
    return text.replace("-", "−")


def reference_results(repo: str | Path = "."):
    """The committed reference aggregates (``results/reference/``) in the layout of ``config/reference.yaml``."""
    from maskbench.results import tables

    repo = Path(repo)
    config = yaml.safe_load((repo / REFERENCE_CONFIG).read_text())
    layout = tables.Layout.from_config(config)
    results_dir = repo / config["results_dir"]
    results = tables.Results(layout)
    for model, task, method in layout.cells():
        path = results_dir / "aggregate" / model / task / f"{method}.json"
        if path.is_file():
            results.aggregates[(model, task, method)] = tables.read_record(path)
    return results


def _comparison(results, repo: Path) -> tuple[str, list[dict[str, Any]]]:
    from maskbench.results import paper

    model = results.layout.models and next(iter(results.layout.models))
    with _cwd(repo):
        rows = [row for row in paper.comparison_rows(results, model) if "gap" in row]
    return model, rows


def _paper_mean_gap(model: str, tasks: list[str]) -> float:
    from maskbench.results import paper

    gaps = [abs(paper.paper_gap(model, task)) for task in tasks if paper.paper_gap(model, task) is not None]
    return float(np.mean(gaps))


def reference_gaps(results, repo: Path) -> str:
    """README.md: masking − finetuning per task on the reference model, next to the paper's BERT-base."""
    from maskbench.results import paper

    model, rows = _comparison(results, repo)
    if not rows:
        return "No reference task has both methods finished yet.\n"
    tasks = [row["task"] for row in rows]
    seeds = sorted({row["seeds"] for row in rows})
    here = ", ".join(row["label"] + " " + _minus(format(row["gap"], "+.1f")) for row in rows)
    bert = ", ".join(_minus(f"{paper.paper_gap('BERT', task):+.1f}") for task in tasks)
    mean_gap = float(np.mean([abs(row["gap"]) for row in rows]))
    return (f"Masking − finetuning on dev ({results.layout.model_label(model)}, "
            f"{'/'.join(map(str, seeds))} seeds; points): {here} (the paper's BERT-base on the same tasks: {bert}); "
            f"**mean |gap| {mean_gap:.2f} points** over {len(rows)} tasks (the paper's BERT-base "
            f"{_paper_mean_gap('BERT', tasks):.2f}, DistilBERT {_paper_mean_gap('DistilBERT', tasks):.2f}).\n")


def side_by_side(results, repo: Path) -> str:
    """results/reference/README.md: the gap per task here and in the paper, with the majority class."""
    from maskbench.results import paper

    model, rows = _comparison(results, repo)
    seeds = sorted({row["seeds"] for row in rows})
    label = results.layout.model_label(model)
    lines = [f"| task | masking − finetuning here ({label}, {'/'.join(map(str, seeds))} seeds) | paper, BERT-base | "
             "paper, DistilBERT | majority class |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [row["label"],
                 _minus(f"**{row['gap']:+.1f}** ({row['masking_mean']:.1f} ± {row['masking_std']:.1f} vs "
                        f"{row['finetuning_mean']:.1f} ± {row['finetuning_std']:.1f})")]
        for paper_model in ("BERT", "DistilBERT"):
            table1 = paper.PAPER_TABLE1[paper_model]
            cells.append(_minus(f"{paper.paper_gap(paper_model, row['task']):+.1f} "
                                f"({table1['masking'][row['task']][0]:.1f} vs "
                                f"{table1['finetuning'][row['task']][0]:.1f})"))
        cells.append(f"{row['majority']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    tasks = len(results.layout.tasks)
    so_far = " so far" if len(rows) < tasks else ""
    gaps = [row["gap"] for row in rows]
    mean_gap = float(np.mean(np.abs(gaps))) if gaps else 0.0
    behind = sum(gap < 0 for gap in gaps)
    signed = _minus(format(float(np.mean(gaps)), "+.1f")) if gaps else "–"
    strict = "".join(_minus(f"; {row['label']} in strict IOB2, as the runs recorded it: {row['recorded_gap']:+.1f} "
                            f"({row['recorded_masking_mean']:.1f} vs {row['recorded_finetuning_mean']:.1f})")
                     for row in rows if "recorded_gap" in row)
    lines += ["", "Dev scores in % (accuracy; CoLA: Matthews correlation × 100; POS: word accuracy; NER: entity "
              "micro-F1 with conlleval semantics, seqeval's default mode, recomputed from the stored predictions"
              f"{strict}), mean ± standard deviation over seeds (population, as in the aggregate records). "
              f"**Mean |masking − finetuning|{so_far}: {mean_gap:.1f} points ({len(rows)} of {tasks} tasks)** — "
              f"{mean_gap:.2f} unrounded; the mean signed gap is {signed}: masking trails"
              f" on {behind} of the {len(rows)} tasks. The paper's own gaps on the same tasks average "
              f"{_paper_mean_gap('BERT', [r['task'] for r in rows]):.2f} (BERT-base) and "
              f"{_paper_mean_gap('DistilBERT', [r['task'] for r in rows]):.2f} (DistilBERT) in absolute value."]
    return "\n".join(lines) + "\n"


def five_methods(results, repo: Path) -> str:
    """results/reference/README.md: every method on the tasks all methods ran on (dev, chosen lr, test)."""
    from maskbench.results import tables

    layout = results.layout
    model = next(iter(layout.models))
    tasks = [task for task in layout.tasks
             if all((model, task, method) in results.aggregates for method in layout.methods)]
    header = ["method"]
    for task in tasks:
        header += [f"{layout.task_label(task)} dev", "lr"]
    tested = [task for task in tasks if results.aggregates[(model, task, layout.methods[0])].get("test")]
    header += [f"{layout.task_label(task)} test" for task in tested]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in layout.methods:
        label = method if method in tables.PAPER_METHODS else tables.METHOD_LABELS[method]
        cells = [label]
        for task in tasks:
            record = results.aggregates[(model, task, method)]
            cells += [tables.mean_pm_std(record["dev"]), tables.short_lr(record["lr"])]
        cells += [tables.mean_pm_std(results.aggregates[(model, task, method)]["test"]) for task in tested]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tasks_table(results=None, repo: Path | None = None) -> str:
    """README.md: every task of the registry, its kind, metric, where its data comes from, and its splits."""
    from maskbench.data.tasks import TASKS

    lines = ["| task | kind | metric | local files (`$MASKBENCH_DATA_DIR/…`) | Hugging Face hub | source and splits |",
             "|---|---|---|---|---|---|"]
    for name, spec in TASKS.items():
        hub = "local files only" if spec.hub is None else \
            f"`{spec.hub.path}`" + (f" (`{spec.hub.name}`)" if spec.hub.name else "")
        description = spec.description.replace("|", "\\|")
        lines.append(f"| `{name}` | {spec.kind} | {spec.metric} | `{spec.local_dir}/` | {hub} | {description} |")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[..., str]] = {"reference-gaps": reference_gaps, "side-by-side": side_by_side,
                                            "five-methods": five_methods, "tasks": tasks_table}


def render_blocks(repo: str | Path = ".") -> dict[str, str]:
    """Every generated block, rendered afresh from the committed records and the task registry."""
    repo = Path(repo).resolve()
    results = reference_results(repo)
    return {name: render(results, repo) for name, render in RENDERERS.items()}


def generated_blocks(text: str) -> dict[str, str]:
    """The blocks a page holds now: name -> content between its markers."""
    return {match[1]: match[2] for match in _BLOCK.finditer(text)}


def rewrite(text: str, blocks: Mapping[str, str], where: str = "page") -> str:
    """``text`` with the content of each of its generated blocks replaced by ``blocks[name]``."""
    def replace(match: re.Match) -> str:
        name = match[1]
        if name not in blocks:
            raise ConfigError(f"{where}: unknown generated block {name!r}; expected one of {sorted(blocks)}")
        return f"{BEGIN.format(name=name)}\n{blocks[name]}{END.format(name=name)}"

    return _BLOCK.sub(replace, text)


def write_front_page(repo: str = ".", check: bool = False) -> list[str]:
    """Workflow step: rewrite the generated blocks of the front pages (:data:`PAGES`) from the committed records.

    With ``check``, write nothing and refuse pages whose blocks differ from a fresh render. Returns the pages that
    changed (or would change)."""
    root = Path(repo)
    blocks = render_blocks(root)
    changed = []
    for page, names in PAGES.items():
        path = root / page
        text = path.read_text(encoding="utf-8")
        found = list(generated_blocks(text))
        if found != names:
            raise ConfigError(f"{path}: expected the generated blocks {names} (between '<!-- generated: NAME ...' "
                              f"markers), found {found}")
        new = rewrite(text, blocks, str(path))
        if new != text:
            changed.append(page)
            if not check:
                with atomic_path(path) as tmp:
                    tmp.write_text(new, encoding="utf-8")
    if check and changed:
        raise ConfigError(f"generated blocks out of date in {', '.join(changed)}: run "
                          "python -m maskbench.cli step front-page '{}'")
    return changed
