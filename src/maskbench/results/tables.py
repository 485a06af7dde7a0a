"""The paper's result tables, rendered from the workflow's JSON records as Markdown, LaTeX and CSV.

Every table is built from per-cell records (one cell = model × task × method) that the workflow writes:
``chosen.json`` (lr selection), ``aggregate.json`` (mean ± std over seeds), ``ensemble.json`` (ensemble chosen on
dev), ``evaluation.json`` (test scores), and per (model, task) the measured sizes of a reference artefact. The
layout follows the paper so that the two can be read side by side: Table 1 (dev scores), Table 2/6 (test error
rates and memory), Table 4 (chosen lrs), Table 5 (dev/test sizes), Table 8 (parameters and memory per task).
The three files of a table hold the same cells; the CSV has no caption and notes. How a :class:`Table` is written
(Markdown, LaTeX, CSV, HTML) and the shared cell formats are :mod:`maskbench.results.rendering`'s; the side-by-side
with the paper (``paper_comparison``) is built by :mod:`maskbench.results.paper` and registered here.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskbench.io.errors import ConfigError, DataError, RecordError
from maskbench.io.fileio import atomic_path
from maskbench.records import load_json
from maskbench.results.paper import analyses_table, comparison_table
from maskbench.results.rendering import (
    METRIC_NAMES,
    MISSING,
    REPORTED_MARK,
    Table,
    mean_pm_std,
    percent,
    reported,
    reported_metric_name,
    short_count,
    short_lr,
)
from maskbench.training.method_registry import method_label, registered
from maskbench.training.sizes import BYTES_PER_MB

TASK_LABELS = {"mrpc": "MRPC", "sst2": "SST2", "cola": "CoLA", "rte": "RTE", "qnli": "QNLI", "sem": "SEM",
               "trec": "TREC", "ag_news": "AG", "pos": "POS", "conll2003": "NER", "swag": "SWAG", "imdb": "IMDB"}
METHOD_LABELS = {name: info.label for name, info in registered().items()}
#: the paper's methods; the others (maskbench.training.methods) add rows, columns and curves after theirs
PAPER_METHODS = tuple(name for name, info in registered().items() if info.paper)

Key = tuple[str, str, str]  # (model key, task, method)


def task_label(task: str, labels: Mapping[str, str] | None = None) -> str:
    """The display name of ``task``: its entry in ``labels`` (a configuration's ``task_labels``, e.g.
    "SST2 (10k of 67k)" for a capped training set), else :data:`TASK_LABELS`, else the task's key."""
    return (labels or {}).get(task) or TASK_LABELS.get(task, task)


# --- loading --------------------------------------------------------------------------------------------


@dataclass
class Layout:
    """What the tables show and in which order (from the workflow configuration)."""

    models: dict[str, dict[str, str]]  # key -> {"name": hub id or path, "label": display name}, in order
    tasks: list[str]
    methods: list[str]
    seeds: list[int] = field(default_factory=list)
    initial_grids: dict[str, list[float]] = field(default_factory=dict)  # per method
    #: column names that differ from :data:`TASK_LABELS`, e.g. "SST2 (10k)" for a capped training set
    task_labels: dict[str, str] = field(default_factory=dict)
    #: the seeds whose runs chose the lr, when not all of them (the others ran at the chosen lr)
    selection_seeds: list[int] = field(default_factory=list)
    #: methods that run on some of the tasks only: method -> its tasks (the other methods run on every task)
    method_tasks: dict[str, list[str]] = field(default_factory=dict)
    #: why ``method_tasks`` leaves tasks out (one phrase, shown in the notes under Tables 1, 2 and 4), if given
    method_tasks_reason: str | None = None
    #: the configuration's analyses (names of ``analyses``), which the side-by-side with the paper points to
    analyses: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Layout":
        return cls(models={k: dict(v) for k, v in data["models"].items()}, tasks=list(data["tasks"]),
                   methods=list(data["methods"]), seeds=list(data.get("seeds", [])),
                   initial_grids={k: list(v) for k, v in data.get("initial_grids", {}).items()},
                   task_labels=dict(data.get("task_labels") or {}),
                   selection_seeds=list(data.get("selection_seeds") or []),
                   method_tasks={k: list(v) for k, v in (data.get("method_tasks") or {}).items()},
                   method_tasks_reason=data.get("method_tasks_reason"),
                   analyses=list(data.get("analyses") or []))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Layout":
        """The layout of a workflow configuration (as the workflow's table rules build it)."""
        from maskbench.results.selection import sorted_grid

        seeds = list(config["seeds"])
        selection_seeds = list(config.get("selection_seeds") or seeds)
        methods = list(config["methods"])
        return cls(
            models={key: {"name": model["name"], "label": model.get("label", key)}
                    for key, model in config["models"].items()},
            tasks=list(config["tasks"]), methods=methods, seeds=seeds,
            initial_grids={method: [float(lr) for lr in sorted_grid(config["lr_grid"][method])]
                           for method in methods},
            task_labels=dict(config.get("task_labels") or {}),
            selection_seeds=selection_seeds if selection_seeds != seeds else [],
            method_tasks={method: list(tasks) for method, tasks in (config.get("method_tasks") or {}).items()
                          if method in methods},
            method_tasks_reason=config.get("method_tasks_reason"),
            analyses=list(config.get("analyses") or {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def task_label(self, task: str) -> str:
        return task_label(task, self.task_labels)

    def common_tasks(self) -> list[str]:
        """The tasks that every method runs on (where methods can be compared over the same tasks)."""
        return [task for task in self.tasks if all(self.runs(task, method) for method in self.methods)]

    def not_in_grid(self) -> str:
        """Why a cell the configuration leaves out is empty: :data:`NOT_IN_GRID`, with the configuration's reason."""
        return f"{NOT_IN_GRID} ({self.method_tasks_reason})" if self.method_tasks_reason else NOT_IN_GRID

    def runs(self, task: str, method: str) -> bool:
        """Whether ``method`` runs on ``task`` (see :attr:`method_tasks`)."""
        return task in self.method_tasks.get(method, self.tasks)

    def cells(self) -> list[Key]:
        """Cells in the order the workflow lists their files: models, then tasks, then methods (the methods that
        run on the task)."""
        return [(model, task, method) for model in self.models for task in self.tasks for method in self.methods
                if self.runs(task, method)]

    def pairs(self) -> list[tuple[str, str]]:
        return [(model, task) for model in self.models for task in self.tasks]

    def model_label(self, model: str) -> str:
        return self.models[model].get("label", model)


@dataclass
class Results:
    """The records of every cell, keyed by (model, task, method); (model, task) for reference sizes."""

    layout: Layout
    choices: dict[Key, dict] = field(default_factory=dict)
    aggregates: dict[Key, dict] = field(default_factory=dict)
    ensembles: dict[Key, dict] = field(default_factory=dict)
    evaluations: dict[Key, dict] = field(default_factory=dict)
    references: dict[tuple[str, str], dict] = field(default_factory=dict)
    serving: dict[str, dict] = field(default_factory=dict)  # model key -> maskbench.serving.memory record
    #: the analyses' data files a table reads besides the records (:data:`ANALYSIS_KINDS` -> paths; read by the
    #: table that uses them)
    analyses: dict[str, list[str]] = field(default_factory=dict)
    sources: dict[tuple[str, Key], str] = field(default_factory=dict)


#: the narrow method column of Table 8

def read_record(path: str | Path) -> dict:
    """A JSON record the workflow wrote (a clear error for a missing or broken one)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def read_cell_record(path: str | Path, kind: str) -> dict:
    """A cell's record (``kind``: choices, aggregates, ensembles, evaluations, references, serving), strictly valid
    JSON (no NaN, :func:`maskbench.records.load_json`) holding an object; an aggregate's dev (and test) summary
    must hold finite numbers. A :class:`~maskbench.io.errors.RecordError` names the file otherwise."""
    what = {"choices": "chosen-lr", "aggregates": "aggregate", "ensembles": "ensemble", "evaluations": "evaluation",
            "references": "reference-size", "serving": "serving-memory"}[kind]
    record = load_json(path, f"a {what} record written by maskbench")
    if not isinstance(record, dict):
        raise RecordError(f"{path}: expected a JSON object (a {what} record), got {type(record).__name__}")
    if kind == "aggregates":
        for split in ("dev", "test"):
            summary = record.get(split)
            if split == "test" and summary is None:
                continue
            numbers = [summary.get(key) for key in ("mean", "std")] if isinstance(summary, dict) else [None]
            if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
                raise RecordError(f"{path}: invalid aggregate at '{split}': expected an object with numbers 'mean' "
                                  f"and 'std', got {json.dumps(summary)[:80]}")
    return record


def load_results(layout: Mapping[str, Any] | Layout, choices: Sequence[str] = (), aggregates: Sequence[str] = (),
                 ensembles: Sequence[str] = (), evaluations: Sequence[str] = (),
                 references: Sequence[str] = (), serving: Sequence[str] = (),
                 **analyses: Sequence[str]) -> Results:
    """Read the records; each list is in :meth:`Layout.cells` order (``references`` in :meth:`Layout.pairs` order,
    ``serving``, the measured serving memory, one per model). ``analyses``: the data files of the analyses
    (:data:`ANALYSIS_KINDS`), kept as paths in :attr:`Results.analyses`.

    Every record must belong to its cell (task, method and model name agree), and the records of one cell must
    come from runs of one configuration (same setting hash, same lr); otherwise a :class:`ConfigError` names the
    files.
    """
    layout = layout if isinstance(layout, Layout) else Layout.from_dict(layout)
    unknown = sorted(set(analyses) - set(ANALYSIS_KINDS))
    if unknown:
        raise ConfigError(f"unknown table input(s) {unknown}; expected some of {RECORD_KINDS + ANALYSIS_KINDS}")
    results = Results(layout, analyses={kind: [str(path) for path in paths] for kind, paths in analyses.items()})
    cells = layout.cells()
    for kind, paths in (("choices", choices), ("aggregates", aggregates), ("ensembles", ensembles),
                        ("evaluations", evaluations)):
        if not paths:
            continue
        if len(paths) != len(cells):
            raise ConfigError(f"{kind}: {len(paths)} files for {len(cells)} cells (models × tasks × methods)")
        store = getattr(results, kind)
        for key, path in zip(cells, paths):
            record = read_cell_record(path, kind)
            model, task, method = key
            expected = {"task": task, "method": method, "model": layout.models[model]["name"]}
            for field_name, value in expected.items():
                if record.get(field_name) != value:
                    raise ConfigError(f"{path}: {field_name} is {record.get(field_name)!r}; the table expects "
                                      f"{value!r} for this cell")
            store[key] = record
            results.sources[(kind, key)] = str(path)
    if references:
        if len(references) != len(layout.pairs()):
            raise ConfigError(f"references: {len(references)} files for {len(layout.pairs())} model × task pairs")
        for pair, path in zip(layout.pairs(), references):
            results.references[pair] = read_cell_record(path, "references")
    if serving:
        if len(serving) != len(layout.models):
            raise ConfigError(f"serving: {len(serving)} files for {len(layout.models)} models")
        for model, path in zip(layout.models, serving):
            results.serving[model] = read_cell_record(path, "serving")
    _check_cells(results)
    return results


def _check_cells(results: Results) -> None:
    """Refuse cells whose records come from different configurations or lrs."""
    for key in results.layout.cells():
        hashes = {kind: getattr(results, kind)[key]["setting_hash"]
                  for kind in ("aggregates", "ensembles", "evaluations") if key in getattr(results, kind)}
        if len(set(hashes.values())) > 1:
            files = ", ".join(f"{results.sources[(kind, key)]} ({value})" for kind, value in hashes.items())
            raise ConfigError(f"refusing to mix runs of different configurations in one table cell {key}: {files}")
        lrs = {kind: float(getattr(results, kind)[key]["lr"]) for kind in ("choices", "aggregates", "ensembles")
               if key in getattr(results, kind)}
        if len(set(lrs.values())) > 1:
            files = ", ".join(f"{results.sources[(kind, key)]} (lr {value:g})" for kind, value in lrs.items())
            raise ConfigError(f"table cell {key} combines records of different lrs: {files}")


# --- notes ------------------------------------------------------------------------------------------------


def _strict_note(results: Results, kind: str) -> str | None:
    """The note under a table whose cells marked :data:`REPORTED_MARK` were rescored: what they are, and the
    recorded (strict) figures beside them (``kind``: aggregates for dev, evaluations for test)."""
    cells = []
    for (model, task, method), record in getattr(results, kind).items():
        if not record.get("reported"):
            continue
        if kind == "aggregates":
            text = mean_pm_std(record["dev"])
        else:
            text = f"{record['single']['error_rate']:.2f} single, {record['ensemble']['error_rate']:.2f} ensemble"
        cells.append((results.layout.task_label(task), METRIC_NAMES.get(record["metric"], record["metric"]),
                      f"{METHOD_LABELS.get(method, method)} {text}"))
    if not cells:
        return None
    groups: dict[tuple[str, str], list[str]] = {}
    for task, metric, text in cells:
        groups.setdefault((task, metric), []).append(text)
    recorded = "; ".join(f"{task}: {', '.join(texts)}" for (task, _), texts in groups.items())
    return (f"{REPORTED_MARK}: entity F1 with conlleval semantics (seqeval's default mode, as CoNLL-2003 results are "
            "reported), recomputed from the runs' stored predictions. The runs recorded strict IOB2 entity F1 "
            "(seqeval mode='strict'), which chose their best epoch and the lr; strict "
            f"{'dev' if kind == 'aggregates' else 'test error rates'}: {recorded}.")


def _method_rows(results: Results, row: Callable[[str, str], list[str]],
                 methods: Sequence[str] | None = None) -> list[list[str]]:
    rows = []
    for model in results.layout.models:
        for index, method in enumerate(methods or results.layout.methods):
            label = results.layout.model_label(model) if index == 0 else ""
            rows.append([label, METHOD_LABELS.get(method, method), *row(model, method)])
    return rows


def _methods_text(layout: Layout) -> str:
    """'masking and finetuning' (the paper's wording), or every method of the layout."""
    if set(layout.methods) <= set(PAPER_METHODS):
        return "masking and finetuning"
    labels = [m if m in PAPER_METHODS else METHOD_LABELS.get(m, m) for m in layout.methods]
    return " and ".join(filter(None, [", ".join(labels[:-1]), labels[-1]]))


def extra_methods(layout: Layout) -> list[str]:
    """The layout's methods beyond the paper's two, in layout order."""
    return [m for m in layout.methods if m not in PAPER_METHODS]


def task_bytes(sizes: Mapping[str, Any]) -> int:
    """Bytes one run's artefact adds per task: masks and head (masking), or the adapter/bias file (others)."""
    return sizes["task_bytes"] if "task_bytes" in sizes else sizes["mask_bytes"] + sizes["head_bytes"]


def _seeds_text(results: Results) -> str:
    """"N seeds (1, 2, ...) at the lr chosen on dev", naming the seeds that chose it when not all did."""
    seeds = results.layout.seeds
    text = f"{len(seeds)} seeds ({', '.join(map(str, seeds))})" if seeds else "seeds"
    text += " at the lr chosen on dev"
    chosen_on = results.layout.selection_seeds
    if chosen_on and set(chosen_on) != set(seeds):
        text += f" with seed{'s' if len(chosen_on) > 1 else ''} {', '.join(map(str, chosen_on))} only"
    return text


def _selection_rule_text(results: Results) -> str:
    """How the lr was chosen: on the mean over every seed, or on the selection seeds only (``selection_seeds``)."""
    chosen_on = results.layout.selection_seeds
    if not chosen_on or set(chosen_on) == set(results.layout.seeds):
        return "highest mean dev score over seeds"
    if len(chosen_on) == 1:
        return f"highest dev score of seed {chosen_on[0]}"
    return f"highest mean dev score over seeds {', '.join(map(str, chosen_on))}"


def _metrics_note(results: Results) -> str:
    metrics: dict[str, list[str]] = {}
    for (model, task, method), record in results.aggregates.items():
        metric = reported_metric_name(record)
        name = METRIC_NAMES.get(metric, metric)
        if results.layout.task_label(task) not in metrics.setdefault(name, []):
            metrics[name].append(results.layout.task_label(task))
    return "Metrics: " + "; ".join(f"{name} for {', '.join(tasks)}" for name, tasks in metrics.items()) + "."


#: why a cell shows :data:`MISSING` (the notes under Tables 1 and 9): the configuration does not run it, or it does
#: and no run has finished
NOT_IN_GRID = "not in this configuration's grid"
NOT_FINISHED = "configured, no finished runs yet"


def _and(names: Sequence[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else ""


def _missing_note(missing: Sequence[tuple[str, str, str]], columns: Sequence[str],
                  describe: Callable[[str, Sequence[str] | None], str]) -> list[str]:
    """One note per reason why cells show :data:`MISSING`: ``missing`` holds (reason, row, column) of each such cell,
    in table order; rows missing the same columns for the same reason are named together, by
    ``describe(rows, columns)`` (columns None when a row misses every one of ``columns``)."""
    by_reason: dict[str, dict[str, list[str]]] = {}
    for reason, row, column in missing:
        by_reason.setdefault(reason, {}).setdefault(row, []).append(column)
    notes = []
    for reason, rows in by_reason.items():
        groups: dict[tuple[str, ...], list[str]] = {}
        for row, missed in rows.items():
            groups.setdefault(tuple(missed), []).append(row)
        parts = [describe(_and(names), None if list(missed) == list(columns) else missed)
                 for missed, names in groups.items()]
        notes.append(f"{MISSING}: {reason}: {'; '.join(parts)}.")
    return notes


# --- the tables -------------------------------------------------------------------------------------------


def table1_dev(results: Results) -> Table:
    """Table 1: dev scores (%), mean ± std over seeds, tasks × (model, method)."""
    layout = results.layout
    train_sizes = []
    for task in layout.tasks:
        sizes = [record["sizes"]["train"] for (m, t, _), record in results.aggregates.items() if t == task]
        train_sizes.append(short_count(sizes[0]) if sizes else MISSING)
    rows = [["", "train size", *train_sizes]]
    def cell(key: Key) -> str:
        record = results.aggregates.get(key)
        if record is None:
            return MISSING
        return mean_pm_std(reported(record, "dev")) + (REPORTED_MARK if record.get("reported") else "")

    rows += _method_rows(results, lambda model, method: [cell((model, task, method)) for task in layout.tasks])
    return Table(
        name="table1_dev",
        caption=f"Table 1: Dev set task performances (%) of {_methods_text(layout)}, mean ± std over "
                f"{_seeds_text(results)}.",
        headers=["", "", *[layout.task_label(t) for t in layout.tasks]], rows=rows,
        notes=[_metrics_note(results),
               "Second row: training set size (sentences for POS and NER); std is the population std over seeds.",
               *filter(None, [_strict_note(results, "aggregates")]), *_table1_missing(results, train_sizes)])


def _table1_missing(results: Results, train_sizes: Sequence[str]) -> list[str]:
    """Why Table 1's empty cells are empty: the configuration leaves the task out for the method
    (:attr:`Layout.method_tasks`), or no run of the cell has finished (nor, for the train size, of its task)."""
    layout = results.layout
    tasks = [layout.task_label(task) for task in layout.tasks]
    missing = [(NOT_FINISHED, "train size", label) for label, size in zip(tasks, train_sizes) if size == MISSING]
    return _cells_missing(results, layout.tasks, lambda key: key in results.aggregates, missing)


def _cells_missing(results: Results, tasks: Sequence[str], present: Callable[[Key], bool],
                   missing: Sequence[tuple[str, str, str]] = ()) -> list[str]:
    """The notes on the (model, task, method) cells of ``tasks`` that are empty (``present`` false): the
    configuration leaves the task out for the method (:meth:`Layout.not_in_grid`, with its reason), or no run of
    the cell has finished; ``missing``: further (reason, row, column) entries, in table order."""
    layout = results.layout
    missing = list(missing)
    for model in layout.models:
        for method in layout.methods:
            row = METHOD_LABELS.get(method, method)
            row = f"{layout.model_label(model)} {row}" if len(layout.models) > 1 else row
            missing += [(layout.not_in_grid() if not layout.runs(task, method) else NOT_FINISHED, row,
                         layout.task_label(task)) for task in tasks if not present((model, task, method))]
    missing.sort(key=lambda entry: entry[0] == NOT_FINISHED)  # the configuration's, then the runs' (stable)
    return _missing_note(missing, [layout.task_label(task) for task in tasks],
                         lambda rows, columns: f"{rows} on {_and(columns) if columns else 'every task'}")


def _memory(results: Results, model: str, method: str, tasks: Sequence[str], members: int) -> float | None:
    """MB to serve one task with one model (members=1) or an ensemble, averaged over ``tasks``."""
    per_task = []
    for task in tasks:
        reference = results.references.get((model, task))
        if reference is None:
            return None
        if _full_weights(method):  # a full model per task (and member)
            per_task.append(members * reference["finetuned_bytes"])
        else:
            aggregate = results.aggregates.get((model, task, method))
            if aggregate is None or not aggregate.get("artefacts"):
                return None
            sizes = list(aggregate["artefacts"].values())
            per_task.append(reference["pretrained_bytes"] + members * sum(map(task_bytes, sizes)) / len(sizes))
    return sum(per_task) / len(per_task) / BYTES_PER_MB if per_task else None


def _megabytes(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def tasks_with_test(results: Results) -> list[str]:
    return [task for task in results.layout.tasks
            if any(e.get("has_test") for (m, t, _), e in results.evaluations.items() if t == task)]


def table2_test(results: Results) -> Table:
    """Table 2 (BERT) / Table 6 (RoBERTa, DistilBERT): test error rates (%), single and ensemble, memory (MB)."""
    layout = results.layout
    tasks = tasks_with_test(results)
    methods = [m for m in PAPER_METHODS if m in layout.methods] + extra_methods(layout)
    rows = []
    for model in layout.models:
        first_model_row = True
        for method in methods:
            for kind, label in (("single", "Single"), ("ensemble", "Ensem.")):
                cells = []
                for task in tasks:
                    record = results.evaluations.get((model, task, method))
                    cells.append(f"{reported(record, kind)['error_rate']:.2f}"
                                 + (REPORTED_MARK if record.get("reported") else "")
                                 if record and record.get("has_test") else MISSING)
                members = 1 if kind == "single" else len(layout.seeds) or 1
                memory = _memory(results, model, method, tasks, members) if tasks else None
                rows.append([layout.model_label(model) if first_model_row else "",
                             method_label(method, short=True)
                             if kind == "single" else "",
                             label, *cells, _megabytes(memory)])
                first_model_row = False
    chosen = sorted({e["ensemble"]["method"] for e in results.evaluations.values() if e.get("has_test")})
    return Table(
        name="table2_test",
        caption=f"Table 2/6: Error rate (%) on the test sets and model size. Single: mean over "
                f"{_seeds_text(results)}; Ensem.: ensemble of those models, combining method chosen on dev.",
        headers=["", "", "", *[layout.task_label(t) for t in tasks], "Memory (MB)"], rows=rows,
        notes=["Error rate = 100 − score (%); the score of NER is entity micro-F1"
               + (f" (with conlleval semantics, {REPORTED_MARK})" if any(e.get("reported") for e in
                                                                         results.evaluations.values()) else "")
               + ", of POS word accuracy.",
               *filter(None, [_strict_note(results, "evaluations")]),
               "Memory: MB (10^6 bytes) of the saved files needed to serve one task, averaged over the tasks shown: "
               "finetuning one full model per member; masking one pretrained model plus each member's masks and "
               "head. Measured from the saved artefacts.",
               *(["LoRA, IA3: one pretrained model plus each member's adapter (with its head); BitFit: plus each "
                  "member's biases and head."] if extra_methods(layout) else []),
               f"Ensemble methods chosen on dev: {', '.join(chosen) if chosen else 'none'}.",
               *_cells_missing(results, tasks, lambda key: bool(results.evaluations.get(key, {}).get("has_test")))])


def table4_lr(results: Results) -> Table:
    """Table 4: the lr chosen on dev per model, task and method (with the grid extensions it took)."""
    layout = results.layout
    capped = False

    def row(model: str, method: str) -> list[str]:
        nonlocal capped
        cells = []
        for task in layout.tasks:
            choice = results.choices.get((model, task, method))
            if choice is None:
                cells.append(MISSING)
                continue
            mark = ("†" if choice["outside_initial_grid"] else "") + ("*" if choice["capped"] else "")
            capped = capped or choice["capped"]
            cells.append(short_lr(choice["lr"]) + mark)
        return cells

    rows = _method_rows(results, row)
    grids = "; ".join(f"{METHOD_LABELS.get(method, method).lower()} "
                      f"{{{', '.join(short_lr(v) for v in grid)}}}" for method, grid in layout.initial_grids.items())
    notes = [f"Initial grids: {grids}." if grids else "",
             "†: outside the initial grid (found by extending the grid at its border)."]
    if capped:
        notes.append("*: still on the border of the grid when the cap on extensions was reached.")
    notes += _cells_missing(results, layout.tasks, lambda key: key in results.choices)
    return Table(name="table4_lr",
                 caption=f"Table 4: The learning rate chosen on dev ({_selection_rule_text(results)}) per task, "
                         "model and method.",
                 headers=["", "", *[layout.task_label(t) for t in layout.tasks]], rows=rows,
                 notes=[n for n in notes if n])


def table5_sizes(results: Results) -> Table:
    """Table 5: number of dev and test examples per task (words for tagging tasks) the runs were scored on."""
    rows, excluded_notes = [], []
    for task in results.layout.tasks:
        records = [r for (m, t, _), r in results.aggregates.items() if t == task]
        if not records:
            rows.append([results.layout.task_label(task), MISSING, MISSING])
            continue
        record = records[0]
        counts = record.get("word_counts")
        cells = []
        for split in ("dev", "test"):
            if split not in record["sizes"]:
                cells.append("n/a")
            elif counts:
                cells.append(f"{counts[split]['num_words']:,}")
            else:
                cells.append(f"{record['sizes'][split]:,}")
        if counts:
            excluded = ", ".join(f"{split} {counts[split]['excluded_words']:,}" for split in ("dev", "test")
                                 if split in counts)
            limit = record.get("config", {}).get("max_length", 128)
            excluded_notes.append(f"{results.layout.task_label(task)}: words not scored because the {limit}-wordpiece "
                                  f"limit cuts them off ({record['model']} tokenizer): {excluded}.")
        rows.append([results.layout.task_label(task), *cells])
    return Table(name="table5_sizes",
                 caption="Table 5: Number of examples in dev and test per task (for POS and NER: scored words).",
                 headers=["", "Dev", "Test"], rows=rows,
                 notes=["Counts of the splits the runs were scored on (subsets where the configuration caps "
                        "max_eval_examples).", *excluded_notes])


def _plus(*values: str) -> str:
    return " ".join(f"+ {v}" for v in values if v)


def memory_per_task(results: Results, model: str) -> list[dict[str, Any]]:
    """Per task of ``model`` (in layout order): parameters and bytes each method adds (from real artefacts).

    Finetuning: the first task turns the pretrained copy into its finetuned model (adds the head), every further
    task adds a full finetuned model. Masking: every task adds its mask bits and its head (file sizes of
    ``masks.safetensors`` and ``head.safetensors``); the pretrained model is stored once.
    """
    rows = []
    for index, task in enumerate(results.layout.tasks):
        reference = results.references.get((model, task))
        if reference is None:
            continue
        row: dict[str, Any] = {"task": task, "pretrained_parameters": reference["pretrained_parameters"],
                               "pretrained_bytes": reference["pretrained_bytes"],
                               "finetuning_head_parameters": reference["head_parameters"],
                               "finetuning_head_bytes": reference["finetuned_bytes"] - reference["pretrained_bytes"],
                               "finetuning_model_parameters": 0 if index == 0 else reference["pretrained_parameters"],
                               "finetuning_model_bytes": 0 if index == 0 else reference["pretrained_bytes"]}
        aggregate = results.aggregates.get((model, task, "masking"))
        if aggregate and aggregate.get("artefacts"):
            sizes = next(iter(aggregate["artefacts"].values()))
            row.update({"masking_head_parameters": sizes["head_parameters"], "masking_head_bytes": sizes["head_bytes"],
                        "masking_mask_bits": sizes["mask_bits"], "masking_mask_bytes": sizes["mask_bytes"]})
        for method in extra_methods(results.layout):
            aggregate = results.aggregates.get((model, task, method))
            if aggregate and aggregate.get("artefacts"):
                sizes = next(iter(aggregate["artefacts"].values()))
                row.update({f"{method}_parameters": sizes["task_parameters"], f"{method}_bytes": sizes["task_bytes"]})
        rows.append(row)
    return rows


def _kilobytes(value: int | float) -> str:
    return f"{value / 1000:,.3f}"


def table8_memory(results: Results) -> Table:
    """Table 8: parameters and memory (KB) that each additional task costs, finetuning vs masking (vs the others)."""
    extras = extra_methods(results.layout)
    rows = []
    for model in results.layout.models:
        per_task = memory_per_task(results, model)
        if not per_task:
            continue
        first = per_task[0]
        label = results.layout.model_label(model)
        parameters, kilobytes = f"{first['pretrained_parameters']:,}", _kilobytes(first["pretrained_bytes"])
        rows.append([label, "Pretrained", parameters, parameters, *[parameters] * len(extras), kilobytes, kilobytes,
                     *[kilobytes] * len(extras)])
        for row in per_task:
            has_mask = "masking_mask_bits" in row
            rows.append([
                "", results.layout.task_label(row["task"]),
                _plus(f"{row['finetuning_head_parameters']:,}",
                      f"{row['finetuning_model_parameters']:,}" if row["finetuning_model_parameters"] else ""),
                _plus(f"{row['masking_head_parameters']:,}", f"{row['masking_mask_bits']:,} bits") if has_mask
                else MISSING,
                *[_plus(f"{row[f'{m}_parameters']:,}") if f"{m}_parameters" in row else MISSING for m in extras],
                _plus(_kilobytes(row["finetuning_head_bytes"]),
                      _kilobytes(row["finetuning_model_bytes"]) if row["finetuning_model_bytes"] else ""),
                _plus(_kilobytes(row["masking_head_bytes"]), _kilobytes(row["masking_mask_bytes"])) if has_mask
                else MISSING,
                *[_plus(_kilobytes(row[f"{m}_bytes"])) if f"{m}_bytes" in row else MISSING for m in extras],
            ])
        measured = serving_summary(results, model)
        if measured:
            tasks = measured["tasks"]
            rows.append(["", f"serving {tasks} task{'s' if tasks != 1 else ''} (resident, measured)", "", "",
                         *[""] * len(extras), _kilobytes(measured["finetuning"] * 2**20),
                         _kilobytes(measured["masking"] * 2**20), *[""] * len(extras)])
    notes = []
    if results.serving:
        notes.append("Serving rows: resident memory (RSS above a process that only loaded the libraries) of one "
                     "process serving that many classification tasks: a full model per task (finetuning) vs one "
                     "backbone with every task's masks and head (masking, maskbench.MultiTaskModel); measured "
                     "by maskbench.serving on the machine that ran the workflow (tagging and multiple-choice tasks "
                     "are not served).")
    return Table(
        name="table8_memory",
        caption="Table 8: Model size when applying masking and finetuning to an increasing number of tasks: what "
                "each task adds to the pretrained model.",
        headers=["", "", "Parameters: finetuning", "Parameters: masking",
                 *[f"Parameters: {METHOD_LABELS.get(m, m)}" for m in extras], "Memory (KB): finetuning",
                 "Memory (KB): masking", *[f"Memory (KB): {METHOD_LABELS.get(m, m)}" for m in extras]], rows=rows,
        notes=["KB = 1,000 bytes of the saved files (safetensors, float32 weights; masks as the runs stored them: "
               "bit-packed, or Rice-coded with mask_format rice-gaps-v1). Finetuning: "
               "the head, then (from the second task on) a full model; masking: the task's head (its random "
               "classifier, stored, not trained) and its mask bits. Unlike the paper, heads are not shared "
               "between tasks with the same number of labels.",
               "Finetuning sizes are those of the model saved with the task's head (save_pretrained); masking "
               "sizes are those of the chosen runs' masks/ directories. Hugging Face's token-classification "
               "models (POS, NER) have no pooler, so their encoder is smaller and no pooler mask is stored.",
               *(["LoRA, IA3: the values and bytes of the adapter file (with the task's head); BitFit: of the "
                  "biases and head it trained."] if extras else []),
               *notes])


def _full_weights(method: str) -> bool:
    """The method's per-task artefact is a whole model (sized by the reference model, not by its runs)."""
    info = registered().get(method)
    return info is not None and info.full_weights


def _learns_masks(method: str) -> bool:
    """The method learns masks (stored in a ``mask_format``)."""
    info = registered().get(method)
    return info is not None and info.mask_settings == "all"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def bytes_per_task_rows(results: Results, model: str) -> list[dict[str, Any]]:
    """Per method of ``model`` (masking once per mask format): mean dev score over the tasks that every method runs
    on (:meth:`Layout.common_tasks`) and the seeds, and the mean bytes and trainable parameters one task adds
    (None where a task's records are missing; ``missing`` then says why, by column)."""
    from maskbench.training.masking.config import COMPRESSED, MASK_FORMATS, PACKED_BITS

    layout = results.layout
    tasks = layout.common_tasks()
    rows = []
    for method in layout.methods:
        aggregates = [results.aggregates.get((model, task, method)) for task in tasks]
        complete = bool(aggregates) and all(aggregates)
        dev = _mean([reported(a, "dev")["mean"] for a in aggregates]) if complete else None
        counts = [a.get("trainable_parameters") for a in aggregates] if complete else [None]
        trainable = _mean(counts) if None not in counts else None
        # why a column is empty: (reason with a {tasks} place, task) per task that lacks it
        unfinished = [(f"{NOT_FINISHED} on {{tasks}}", task) for task, a in zip(tasks, aggregates) if a is None]
        uncounted = unfinished or [("the records on {tasks} hold no count of trainable parameters", task)
                                   for task, count in zip(tasks, counts) if count is None]
        variants: list[tuple[str, str | None]] = [(method, None)]
        if _learns_masks(method):  # masks may be stored in any mask format: a row per format
            variants = [(method, mask_format) for mask_format in MASK_FORMATS]
        for _, mask_format in variants:
            per_task, unsized = [], []
            for task, aggregate in zip(tasks, aggregates):
                if _full_weights(method):
                    reference = results.references.get((model, task))
                    per_task.append(reference["finetuned_bytes"] if reference else None)
                    if reference is None:
                        unsized.append(("no reference model size measured yet on {tasks}", task))
                    continue
                sizes = list((aggregate or {}).get("artefacts") or {})
                sizes = [aggregate["artefacts"][seed] for seed in sizes]
                stored = None
                if mask_format is not None:
                    stored = aggregate.get("config", {}).get("mask_format", PACKED_BITS) if aggregate else None
                    sizes = [s["head_bytes"] + (s["mask_bytes_by_format"][mask_format] if "mask_bytes_by_format" in s
                                                else s["mask_bytes"] if mask_format == stored else float("nan"))
                             for s in sizes]
                else:
                    sizes = [task_bytes(s) for s in sizes]
                per_task.append(_mean(sizes))
                if aggregate is None:
                    unsized.append((f"{NOT_FINISHED} on {{tasks}}", task))
                elif not sizes:
                    unsized.append(("the runs on {tasks} recorded no artefact sizes", task))
                elif any(size != size for size in sizes):
                    unsized.append((f"the runs on {{tasks}} stored their masks as {stored} and recorded no size in "
                                    "the other format", task))
            known = [v for v in per_task if v is not None and v == v]
            label = METHOD_LABELS.get(method, method)
            if mask_format is not None:
                label += " (Rice-coded)" if mask_format == COMPRESSED else " (packed bits)"
            bytes_per_task = _mean(known) if len(known) == len(per_task) else None
            missing = {column: _reason(layout, gaps) for column, value, gaps in (
                ("dev_mean", dev, unfinished), ("bytes_per_task", bytes_per_task, unsized),
                ("trainable_parameters", trainable, uncounted)) if value is None}
            rows.append({"method": method, "mask_format": mask_format, "label": label, "dev_mean": dev,
                         "bytes_per_task": bytes_per_task, "trainable_parameters": trainable, "missing": missing})
    return rows


def _reason(layout: Layout, gaps: Sequence[tuple[str, str]]) -> str:
    """Why a mean over the common tasks is missing: ``gaps`` (reason with a ``{tasks}`` place, task), the tasks of
    one reason named together; no common task at all is a reason of its own."""
    if not layout.common_tasks():
        return f"{NOT_IN_GRID} (its method_tasks leave no task that every method runs on)"
    by_reason: dict[str, list[str]] = {}
    for reason, task in gaps:
        by_reason.setdefault(reason, []).append(layout.task_label(task))
    return "; ".join(reason.format(tasks=_and(labels)) for reason, labels in by_reason.items())


def table9_bytes(results: Results) -> Table:
    """Accuracy vs bytes per task: mean dev score and artefact bytes per task of every method."""
    layout = results.layout
    rows, missing = [], []
    columns = {"dev_mean": "dev score", "bytes_per_task": "bytes per task", "trainable_parameters": "trainable "
               "parameters"}
    for model in layout.models:
        for index, row in enumerate(bytes_per_task_rows(results, model)):
            rows.append([layout.model_label(model) if index == 0 else "", row["label"],
                         f"{percent(row['dev_mean']):.1f}" if row["dev_mean"] is not None else MISSING,
                         _kilobytes(row["bytes_per_task"]) if row["bytes_per_task"] is not None else MISSING,
                         f"{row['trainable_parameters']:,.0f}" if row["trainable_parameters"] is not None
                         else MISSING])
            name = f"{layout.model_label(model)} {row['label']}" if len(layout.models) > 1 else row["label"]
            missing += [(reason, name, columns[column]) for column, reason in row["missing"].items()]
    common = layout.common_tasks()
    tasks = ", ".join(layout.task_label(t) for t in common)
    dev_note = (f"Dev score: mean over the tasks ({tasks}) of the mean over {_seeds_text(results)} (each task's own "
                "metric)." if common else "Dev score: no task that every method runs on (method_tasks), so no "
                "mean compares the methods.")
    beyond: dict[tuple[str, ...], list[str]] = {}  # the methods that run on further tasks, by those tasks
    for method in layout.methods:
        further = tuple(layout.task_label(t) for t in layout.tasks if layout.runs(t, method) and t not in common)
        if further and common:
            beyond.setdefault(further, []).append(METHOD_LABELS.get(method, method))
    if beyond:
        also = "; ".join(f"{_and(names)} also ran on {_and(list(further))}" for further, names in beyond.items())
        dev_note += (" Every row averages these same tasks (those every method runs on); "
                     f"{also} (Table 1), not in these means.")
    return Table(
        name="table9_bytes",
        caption="Accuracy vs bytes per task: mean dev score and the bytes each further task adds, per method.",
        headers=["", "", "Dev score (%)", "Bytes per task (KB)", "Trainable parameters"], rows=rows,
        notes=[dev_note,
               "Bytes per task: KB (1,000 bytes) of the saved tensor files one task needs besides the shared "
               "pretrained model: finetuning a full model (save_pretrained); masking its masks (bit-packed or "
               "Rice-coded, mask_format rice-gaps-v1) and its head; LoRA and IA3 the peft adapter file with the "
               "head; BitFit the biases and head. Mean over tasks and seeds.",
               "Trainable parameters: mean over tasks of the values the optimizer updates (masking: one score per "
               "masked weight).",
               *_missing_note(missing, list(columns.values()),
                              lambda names, missed: f"{names} ({_and(missed)})" if missed else names)])


def serving_summary(results: Results, model: str) -> dict[str, Any] | None:
    """The measured RSS (MiB, above imports) of serving the most tasks, per method, or None when not measured."""
    record = results.serving.get(model)
    if not record or not record.get("points"):
        return None
    most = max(point["tasks"] for point in record["points"])
    by_method = {p["method"]: p["model_rss_mb"] for p in record["points"] if p["tasks"] == most}
    return {"tasks": most, **by_method}


#: the record kinds a table can read (:func:`load_results`), in the order the workflow names them
RECORD_KINDS = ("choices", "aggregates", "ensembles", "evaluations", "references", "serving")
#: the analyses' data files a table can read besides the records: Fig. 3's CSV (``memory``), Table 3's records
#: (``generalization``) and, by the key of the configuration's analysis, the CSV of Fig. 1 (``sparsity``), Fig. 2
#: (``layers``), Fig. 4 (``tsne``), Fig. 5 (``mask_similarity``), Fig. 6 (``mode_connectivity``) and Fig. 7
#: (``bezier``); the workflow gives those of the configured analyses
ANALYSIS_KINDS = ("memory", "sparsity", "generalization", "layers", "tsne", "mask_similarity", "mode_connectivity",
                  "bezier")
#: the analysis kinds of one data file each (the others: ``generalization``, one record per source and method)
_ONE_FILE_KINDS = tuple(kind for kind in ANALYSIS_KINDS if kind != "generalization")


@dataclass(frozen=True)
class TableSpec:
    """A table of the workflow: what it reads, how it is built, and its description in the report.

    The workflow's one ``table`` rule renders every registered table (``results/tables/<name>.md``, ``.tex``,
    ``.csv``, ``.html``) from the records ``inputs`` names (:data:`RECORD_KINDS`, each in
    :meth:`Layout.cells` / :meth:`Layout.pairs` / model order; :data:`ANALYSIS_KINDS`, the analyses' data files),
    when ``shown(layout)`` is true.
    """

    name: str
    build: Callable[[Results], Table]
    inputs: tuple[str, ...]
    #: the report's caption of the table's page (the page itself shows the table's own caption and notes)
    description: str
    shown: Callable[[Layout], bool] = lambda layout: True

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.inputs if kind not in RECORD_KINDS + ANALYSIS_KINDS]
        if unknown:
            raise ConfigError(f"table {self.name!r}: unknown input(s) {unknown}; expected some of "
                              f"{RECORD_KINDS + ANALYSIS_KINDS}")


#: every table of the workflow, by name (:func:`register_table` adds one)
TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    """Add ``spec`` to :data:`TABLES` (a name is registered once)."""
    if spec.name in TABLES:
        raise ConfigError(f"table {spec.name!r} is already registered")
    TABLES[spec.name] = spec
    return spec


#: the entry-point group through which another package adds tables (each entry point names a :class:`TableSpec`)
ENTRY_POINT_GROUP = "maskbench.tables"


def registered_tables() -> dict[str, TableSpec]:
    """:data:`TABLES` with the tables of installed packages' ``maskbench.tables`` entry points (loaded once)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in TABLES:
            spec = entry.load()
            if not isinstance(spec, TableSpec) or spec.name != entry.name:
                raise ConfigError(f"entry point {entry.name!r} ({entry.value}) of {ENTRY_POINT_GROUP!r}: expected "
                                  f"a TableSpec named {entry.name!r}")
            register_table(spec)
    return TABLES


def _paper_comparison(results: Results) -> Table:
    """The side-by-side with the paper's Table 1, followed by the paper's analyses decided from their data files."""
    data = results.analyses
    analyses: dict[str, Any] = {kind: data[kind][0] for kind in _ONE_FILE_KINDS if data.get(kind)}
    analyses.update(generalization=data.get("generalization", []), configured=results.layout.analyses)
    table = comparison_table(results)
    table.sections.append(analyses_table(results, analyses))
    return table


for _spec in (
    TableSpec("table1_dev", table1_dev, ("aggregates",), "Table 1: dev scores (%) of masking and finetuning, mean "
              "± std over seeds at the lr chosen on dev."),
    TableSpec("table2_test", table2_test, ("aggregates", "evaluations", "references"),
              "Table 2/6: test error rates (%) of single models (mean over seeds) and of their ensemble (combining "
              "method chosen on dev), with the memory (MB) needed to serve one task."),
    TableSpec("table4_lr", table4_lr, ("choices",), "Table 4: the learning rate chosen on dev per model, task and "
              "method († = found by extending the grid)."),
    TableSpec("table5_sizes", table5_sizes, ("aggregates",), "Table 5: dev and test sizes the runs were scored on "
              "(words for POS and NER)."),
    TableSpec("table8_memory", table8_memory, ("aggregates", "references", "serving"),
              "Table 8: parameters and memory (KB) each task adds, finetuning vs masking, measured from the saved "
              "files."),
    TableSpec("table9_bytes", table9_bytes, ("aggregates", "references"),
              "Accuracy vs bytes per task: for every method, the mean dev score over the tasks and the bytes of the "
              "saved files one further task needs besides the shared pretrained model (masking in both mask "
              "formats: bit-packed and Rice-coded)."),
    TableSpec("paper_comparison", _paper_comparison, ("aggregates", *ANALYSIS_KINDS),
              "Masking − finetuning per task here next to the same gap in the paper's Table 1 (BERT, DistilBERT, "
              "RoBERTa), with the majority-class baseline of the dev set; then the paper's analyses: its finding, "
              "whether this model shows it and the number that decides.",
              shown=lambda layout: {"finetuning", "masking"} <= set(layout.methods)),
):
    register_table(_spec)


def summary_records(results: Results) -> list[dict[str, Any]]:
    """One row per cell with unrounded numbers (``results/tables/summary.csv``)."""
    records = []
    for key in results.layout.cells():
        model, task, method = key
        choice, aggregate = results.choices.get(key), results.aggregates.get(key)
        ensemble, evaluation = results.ensembles.get(key), results.evaluations.get(key)
        record: dict[str, Any] = {"model": model, "model_name": results.layout.models[model]["name"], "task": task,
                                  "method": method}
        if choice:
            record.update({"lr": choice["lr"], "extensions": choice["extensions"], "capped": choice["capped"]})
        if aggregate:
            record.update({"metric": aggregate["metric"], "seeds": len(aggregate["seeds"]),
                           "dev_mean": aggregate["dev"]["mean"], "dev_std": aggregate["dev"]["std"],
                           "setting_hash": aggregate["setting_hash"]})
            if aggregate.get("reported"):
                record.update({"reported_metric": aggregate["reported"]["metric"],
                               "reported_dev_mean": aggregate["reported"]["dev"]["mean"],
                               "reported_dev_std": aggregate["reported"]["dev"]["std"]})
        if ensemble:
            record.update({"ensemble_method": ensemble["chosen"], "ensemble_dev": ensemble["chosen_dev_score"]})
        if evaluation and evaluation.get("has_test"):
            record.update({"test_single_mean": evaluation["single"]["mean"],
                           "test_single_std": evaluation["single"]["std"],
                           "test_ensemble": evaluation["ensemble"]["score"]})
            if evaluation.get("reported"):
                record.update({"reported_test_single_mean": evaluation["reported"]["single"]["mean"],
                               "reported_test_ensemble": evaluation["reported"]["ensemble"]["score"]})
        records.append(record)
    return records


def write_summary(results: Results, out: str | Path) -> None:
    records = summary_records(results)
    columns: list[str] = []
    for record in records:
        columns += [c for c in record if c not in columns]
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)


def write_table(name: str, layout: Mapping[str, Any], out: Sequence[str | Path], **inputs: Sequence[str]) -> Table:
    """Workflow step: load the records (see :func:`load_results`), build table ``name`` and write ``out``."""
    if name not in TABLES and name != "summary":
        raise ConfigError(f"unknown table {name!r}; expected one of {sorted(TABLES)} or 'summary'")
    results = load_results(layout, **inputs)
    if name == "summary":
        write_summary(results, out[0])
        return None
    table = TABLES[name].build(results)
    note = precision_note(results)
    if note:
        table.notes.append(note)
    table.write(out)
    return table


def precision_note(results: Results) -> str | None:
    """A note naming the precision of each cell when a table's runs were not all trained in one (fp32 and bf16
    runs are never compared silently); None when they were (a record without the key: fp32, the only precision
    before it existed)."""
    found: dict[str, list[str]] = {}
    for (model, task, method), record in sorted(results.aggregates.items()):
        precision = (record.get("config") or {}).get("precision", "fp32")
        found.setdefault(precision, []).append(f"{results.layout.task_label(task)} {method_label(method)}")
    if len(found) <= 1:
        return None
    cells = "; ".join(f"{precision}: {', '.join(names)}" for precision, names in sorted(found.items()))
    return f"The runs were trained in different precisions ({cells})."
