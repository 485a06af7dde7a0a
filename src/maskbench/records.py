"""Run records: the one module that knows a run folder's layout, its file names and how its records are read.

- The layout: a results directory's ``runs/<model>/<task>/<method>/lr<lr>/seed<seed>/`` (:data:`RUN_FOLDERS`,
  :func:`run_record_paths`, :func:`run_directory`) holds :data:`METRICS_FILE` (the record),
  :data:`PREDICTIONS_FILE` (the predictions) and the sub-folders of :data:`RUN_ENTRIES`;
  :func:`check_run_directory` and :func:`check_run_data` guard a folder before a run writes into it.
- The predictions file: :func:`prediction_tensors` (what a run writes), :func:`load_split` and
  :func:`split_predictions` (what ensembles, paper numbers and the dev-score check read; the format is described in
  :mod:`maskbench.results.ensemble`).
- Reading records back, every record checked before anything uses it (below); :func:`load_runs` for many runs.

A run's ``metrics.json`` (written by :func:`maskbench.training.train.train`) is read by the lr selection, aggregation,
ensembles, test evaluation, the run log, the analyses and the workflow's planning; the selection rounds, the chosen
lr and the aggregates of a cell by the workflow, the tables and the run log. Each of them reads through this module:

- :func:`read_run_record`: strictly valid JSON (no ``NaN``/``Infinity``, which Python's ``json`` would accept),
  valid against ``schemas/run_record.schema.json`` (required keys, types, dev/test scores in the metric's range),
  and consistent (``best_epoch`` within ``epochs_run``, one history entry per epoch, ``dev_score`` equal to
  ``history[best_epoch - 1].dev_score`` and ``dev_scores`` to the history's, the top-level task, method, model,
  seed and lr equal to the config's);
- :func:`read_selection_round`, :func:`read_chosen`, :func:`read_aggregate`: the same for the cell records;
- :func:`check_dev_score`: the run's dev score recomputed from its stored ``predictions.safetensors``; a record
  whose score disagrees (beyond float rounding) is refused, naming both numbers.

Any problem is a :class:`~maskbench.io.errors.RecordError` whose one-line message names the file and the first
problem. Keys a schema does not name are allowed: records grow as runs record more.

Torch-free (only :func:`check_dev_score` imports the metric code, when called; numpy and safetensors, not torch,
for the predictions): the workflow imports this module at planning time.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from maskbench.data.fingerprint import DATA_KEY, check_recorded, record_fingerprint
from maskbench.io.errors import DataError, MaskbenchError, OutputError, RecordError
from maskbench.io.fileio import (
    MARKER_FILE,
    check_output_directory,
    check_output_file,
    is_writable_directory,
    write_json,
)
from maskbench.io.locations import resolve_data_dir
from maskbench.io.output_dirs import CHECKPOINT_FILES, MASK_FILES, MODEL_FILES

#: a run folder's record and predictions (:func:`maskbench.training.train.train` writes them)
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.safetensors"
#: the run folders under a results directory's ``runs/``: ``<model>/<task>/<method>/lr<lr>/seed<seed>``
RUN_FOLDERS = "*/*/*/lr*/seed*"
#: tags kept per word in tagging tasks' predictions
TOP_K = 3
#: what a run directory holds: the record, predictions, the sub-directories of the kinds above, and ``tracking``
#: (the trackers' own files of a run with ``report_to``, :mod:`maskbench.training.tracking`: their layout, not
#: maskbench's)
RUN_ENTRIES = {METRICS_FILE: None, PREDICTIONS_FILE: None, "masks": ("masks", MASK_FILES),
               "model": ("model", MODEL_FILES), "checkpoint": ("checkpoint", CHECKPOINT_FILES), "tracking": None}


def run_directory(path: str | Path) -> Path:
    """A run's folder, given the folder or its ``metrics.json``."""
    path = Path(path)
    return path.parent if path.name == METRICS_FILE else path


def run_record_paths(runs_dir: str | Path) -> list[Path]:
    """The ``metrics.json`` of every run folder under ``runs_dir`` (a results directory's ``runs/``), sorted."""
    return sorted(Path(runs_dir).glob(f"{RUN_FOLDERS}/{METRICS_FILE}"))


#: the record kinds, their schema files (in the package's ``schemas`` folder) and what a message calls them
SCHEMAS = {"run": ("run_record.schema.json", "a run's metrics.json written by maskbench train"),
           "selection_round": ("selection_round.schema.json", "an lr selection round written by maskbench"),
           "chosen": ("chosen.schema.json", "a chosen-lr record written by maskbench"),
           "aggregate": ("aggregate.schema.json", "an aggregate record written by maskbench")}
#: largest |recorded - recomputed| dev score accepted (float rounding of the same computation)
SCORE_TOLERANCE = 1e-9
#: a message shows at most this many characters of an offending value
_SHOWN = 80


class _NonFinite(ValueError):
    """A NaN or infinite number in a JSON text (not JSON; Python's ``json`` reads it unless told not to)."""


def _reject_constant(token: str) -> float:
    raise _NonFinite(f"non-finite number {token} (not JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999, which Python reads as inf
        raise _NonFinite(f"number {text} is out of range (infinite)")
    return value


def load_json(path: str | Path, expected: str) -> Any:
    """The JSON value in ``path``, strictly: a missing, unreadable, truncated or non-JSON file (``NaN`` included)
    is a :class:`RecordError` naming the file and ``expected`` (what should be there)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"{path}: missing; expected {expected}") from None
    except UnicodeDecodeError:
        raise RecordError(f"{path}: not UTF-8 text; expected {expected}") from None
    except OSError as error:
        raise RecordError(f"{path}: cannot be read ({error.strerror or error}); expected {expected}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except _NonFinite as error:
        raise RecordError(f"{path}: {error}; expected {expected}") from None
    except json.JSONDecodeError as error:
        ends_early = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        where = "truncated or empty" if ends_early else "not valid JSON"
        raise RecordError(f"{path}: {where} ({error.msg} at line {error.lineno} column {error.colno}); "
                          f"expected {expected}") from None
    except RecursionError:
        raise RecordError(f"{path}: nested too deeply; expected {expected}") from None


@functools.lru_cache(maxsize=None)
def schema(kind: str) -> dict[str, Any]:
    """The JSON schema of a record kind (:data:`SCHEMAS`), shipped inside the package."""
    name = SCHEMAS[kind][0]
    loaded = json.loads(resources.files("maskbench").joinpath("schemas", name).read_text(encoding="utf-8"))
    return loaded


@functools.lru_cache(maxsize=None)
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(schema(kind))


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def _location(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _non_finite(data: Any, where: str = "") -> str | None:
    """The location of the first NaN or infinite number in ``data`` (a record built in memory), else None."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            found = _non_finite(value, f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            found = _non_finite(value, f"{where}[{index}]")
            if found is not None:
                return found
    elif isinstance(data, float) and not math.isfinite(data):
        return where or "(top level)"
    return None


def check_record(record: Any, kind: str, source: str | Path) -> dict[str, Any]:
    """``record`` (already parsed) checked against the schema of ``kind``; ``source`` names it in messages."""
    expected = SCHEMAS[kind][1]
    if not isinstance(record, dict):
        raise RecordError(f"{source}: expected a JSON object ({expected}), got {_shown(record)}")
    where = _non_finite(record)
    if where is not None:
        raise RecordError(f"{source}: invalid record at '{where}': non-finite number (NaN or infinity)")
    error = best_match(_validator(kind).iter_errors(record))
    if error is not None:
        location = _location(error.absolute_path) or "(top level)"
        if error.validator == "required":
            problem = error.message.replace(" is a required property", "") + " is missing"
        elif error.validator in ("type", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
                                 "exclusiveMaximum", "pattern", "minLength", "minItems", "minProperties"):
            problem = f"{_shown(error.instance)} is invalid: expected {_expectation(error)}"
        else:
            problem = error.message if len(error.message) <= 2 * _SHOWN else error.message[:2 * _SHOWN] + "..."
        raise RecordError(f"{source}: invalid record at '{location}': {problem}")
    return record


def _expectation(error: Any) -> str:
    value = error.validator_value
    return {"type": lambda: f"type {' or '.join(value) if isinstance(value, list) else value}",
            "enum": lambda: f"one of {_shown(value)}", "const": lambda: _shown(value),
            "minimum": lambda: f"a number >= {value}", "maximum": lambda: f"a number <= {value}",
            "exclusiveMinimum": lambda: f"a number > {value}", "exclusiveMaximum": lambda: f"a number < {value}",
            "pattern": lambda: f"text matching {value}", "minLength": lambda: f"at least {value} character(s)",
            "minItems": lambda: f"at least {value} item(s)",
            "minProperties": lambda: f"at least {value} key(s)"}[error.validator]()


def check_run_record(record: Any, source: str | Path = "run record") -> dict[str, Any]:
    """A run record (parsed) checked against the schema and for consistency; ``source`` names it in messages."""
    record = check_record(record, "run", source)
    history, best, epochs = record["history"], record["best_epoch"], record["epochs_run"]
    problems = []
    if best > epochs:
        problems.append(f"best_epoch {best} is beyond epochs_run {epochs}")
    elif len(history) != epochs:
        problems.append(f"history has {len(history)} entries for epochs_run {epochs}")
    elif [entry["epoch"] for entry in history] != list(range(1, epochs + 1)):
        problems.append(f"history's epochs are {[entry['epoch'] for entry in history]}, expected 1 to {epochs}")
    elif record["dev_score"] != history[best - 1]["dev_score"]:
        problems.append(f"dev_score {record['dev_score']!r} is not history[{best - 1}].dev_score "
                        f"{history[best - 1]['dev_score']!r} (the best epoch's)")
    elif record["dev_scores"] != [entry["dev_score"] for entry in history]:
        problems.append("dev_scores differ from the history's dev scores")
    config = record["config"]
    for key in ("task", "method", "model", "seed", "lr"):
        if not problems and record[key] != config[key]:
            problems.append(f"{key} {record[key]!r} differs from config.{key} {config[key]!r}")
    if not problems and epochs > config["epochs"]:
        problems.append(f"epochs_run {epochs} exceeds config.epochs {config['epochs']}")
    if problems:
        raise RecordError(f"{source}: inconsistent run record: {problems[0]}")
    return record


def read_run_record(path: str | Path) -> dict[str, Any]:
    """A run's ``metrics.json``, checked (module docstring); a :class:`RecordError` names the file otherwise."""
    return check_run_record(load_json(path, SCHEMAS["run"][1]), path)


def read_selection_round(path: str | Path) -> dict[str, Any]:
    """An lr selection round (``round<N>.json``), checked: its best and next lr lie where it says."""
    record = check_record(load_json(path, SCHEMAS["selection_round"][1]), "selection_round", path)
    problem = None
    if record["best_lr"] not in record["grid"] or record["best_lr"] not in record["by_lr"]:
        problem = f"best_lr {record['best_lr']!r} is not in its grid {record['grid']} and by_lr"
    elif record["final"] != (record["next_lr"] is None):
        problem = f"final is {record['final']} but next_lr is {record['next_lr']!r}"
    elif record["next_lr"] is not None and record["next_lr"] in record["grid"]:
        problem = f"next_lr {record['next_lr']!r} is already in its grid {record['grid']}"
    if problem:
        raise RecordError(f"{path}: inconsistent selection round: {problem}")
    return record


def read_chosen(path: str | Path) -> dict[str, Any]:
    """A cell's chosen lr (``chosen.json``), checked."""
    record = check_record(load_json(path, SCHEMAS["chosen"][1]), "chosen", path)
    if record["lr"] != record["best_lr"] or record["lr"] not in record["final_grid"]:
        raise RecordError(f"{path}: inconsistent chosen lr: lr {record['lr']!r}, best_lr {record['best_lr']!r}, "
                          f"final_grid {record['final_grid']}")
    return record


def read_aggregate(path: str | Path) -> dict[str, Any]:
    """A cell's aggregate over seeds, checked: one dev (and test) score per seed and run."""
    record = check_record(load_json(path, SCHEMAS["aggregate"][1]), "aggregate", path)
    seeds = len(record["seeds"])
    counts = {"dev.scores": len(record["dev"]["scores"]), "runs": len(record["runs"])}
    if record["test"] is not None:
        counts["test.scores"] = len(record["test"]["scores"])
    wrong = [f"{key} has {count}" for key, count in counts.items() if count != seeds]
    if wrong:
        raise RecordError(f"{path}: inconsistent aggregate: {', '.join(wrong)} entries for {seeds} seed(s)")
    return record


def recomputed_dev_score(run_dir: str | Path, record: Mapping[str, Any]) -> float:
    """The dev score of a run recomputed from its ``predictions.safetensors`` with its task's metric (the
    predicted label of a tagging word is the stored top tag, as at training time: see
    :func:`split_predictions`)."""
    score = recomputed_score(run_dir, record, "dev")
    if score is None:
        raise RecordError(f"{Path(run_dir) / PREDICTIONS_FILE}: holds no dev predictions; cannot check the dev score "
                          f"of {Path(run_dir) / METRICS_FILE}")
    return score


def recomputed_score(run_dir: str | Path, record: Mapping[str, Any], split: str,
                     metric: str | None = None) -> float | None:
    """A run's ``split`` score recomputed from its ``predictions.safetensors`` with ``metric`` (default: the one
    it recorded), from the same predicted labels as at training time; None where the run stored no such split."""
    from maskbench.data import tasks
    from maskbench.data.metrics import score_predictions

    path = Path(run_dir) / PREDICTIONS_FILE
    try:
        label_names = tasks.get_task(record["task"]).label_names
        predicted = split_predictions(run_dir, split)
    except MaskbenchError as error:
        raise RecordError(f"{path}: cannot recompute the {split} score of {Path(run_dir) / METRICS_FILE} "
                          f"({error})") from None
    if predicted is None:
        return None
    try:
        return score_predictions(metric or record["metric"], predicted["predictions"], predicted["labels"],
                                 label_names, predicted.get("lengths"))
    except (ValueError, IndexError) as error:
        raise RecordError(f"{path}: {split} predictions do not fit task {record['task']!r} ({error})") from None


def check_dev_score(path: str | Path, record: Mapping[str, Any]) -> None:
    """Refuse the run record at ``path`` (``metrics.json``) when its dev score is not what its stored predictions
    give (beyond float rounding, :data:`SCORE_TOLERANCE`)."""
    path = Path(path)
    recomputed = recomputed_dev_score(path.parent, record)
    if not abs(recomputed - record["dev_score"]) <= SCORE_TOLERANCE:
        raise RecordError(f"{path}: dev_score {record['dev_score']!r} disagrees with {recomputed!r} recomputed from "
                          f"{path.parent / PREDICTIONS_FILE}; the record was edited or belongs to other "
                          f"predictions — delete {path.parent} to train the run again")


def load_runs(metrics_paths: Sequence[str | Path], check_scores: bool = False) -> list[dict[str, Any]]:
    """Read runs' ``metrics.json`` files, each checked (:func:`maskbench.records.read_run_record`); with
    ``check_scores`` also each dev score against the run's stored predictions
    (:func:`maskbench.records.check_dev_score`). A :class:`~maskbench.io.errors.RecordError` names the first bad file.
    """
    records = []
    for path in metrics_paths:
        record = read_run_record(path)
        if check_scores:
            check_dev_score(path, record)
        records.append(record)
    return records

# --- the run folder: what it may hold, checked before a run writes it -------------------------------------------------


def _is_run_entry(name: str) -> bool:
    """A run directory's own entry, or a temporary/previous copy of one (``.NAME.*.tmp``, ``.NAME.old``)."""
    if name in RUN_ENTRIES or name == MARKER_FILE:
        return True
    return any(name.startswith(f".{entry}.") and name.endswith((".tmp", ".old")) for entry in RUN_ENTRIES)


def check_run_directory(out: str | Path, run_hash: str) -> None:
    """Raise :class:`OutputError` unless ``out`` can hold this run: a new path, or a run directory of this
    configuration (``run_hash``) or an unfinished one, whose sub-directories are maskbench's own.

    Checked before any data is read, so that a run that could not save its results never starts.
    """
    out = Path(out)
    if not out.is_dir():
        check_output_directory(out, "run")  # a new path that can be created, or refused (a file)
        return
    if not is_writable_directory(out):
        raise OutputError(f"{out}: run directory is not writable")
    entries = [entry.name for entry in out.iterdir()]
    foreign = sorted(name for name in entries if not _is_run_entry(name))
    if foreign:
        shown = ", ".join(foreign[:4]) + (f", ... ({len(foreign)} entries)" if len(foreign) > 4 else "")
        raise OutputError(f"{out}: exists and holds files that are not a maskbench run's ({shown}); refusing to "
                          f"write a run into it — choose another --out")
    for name, spec in RUN_ENTRIES.items():
        if spec is None:
            continue
        kind, known = spec
        check_output_directory(out / name, kind, known)
    check_output_file(out / PREDICTIONS_FILE, "predictions")
    metrics = out / METRICS_FILE
    check_output_file(metrics, "metrics")
    if metrics.is_file():
        recorded = json.loads(metrics.read_text()).get("config_hash")
        if recorded != run_hash:
            raise OutputError(f"{metrics}: holds a finished run of another configuration (config_hash {recorded} "
                              f"!= {run_hash}); refusing to mix two runs — remove {out} or choose another --out")


def check_run_data(out: str | Path, data: dict[str, str]) -> None:
    """Raise :class:`~maskbench.io.errors.DataError` when ``out`` holds a finished run made from other data than
    ``data`` (the fingerprint of what this run reads), naming what changed: it is never replaced by, or mixed with,
    a run on other data. A finished run that does not say (an older maskbench) is replaced as before: the run
    starts afresh and mixes nothing."""
    metrics = Path(out) / METRICS_FILE
    if not metrics.is_file():
        return
    try:
        recorded = json.loads(metrics.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # an unreadable record is no finished run (check_run_directory reports what it must)
    if isinstance(recorded, dict) and DATA_KEY in recorded:
        check_recorded(metrics, "the finished run", recorded[DATA_KEY], data,
                       f"refusing to mix two runs — remove {out} or choose another --out")

# --- the predictions file (module docstring of maskbench.results.ensemble) --------------------------------------------


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def prediction_tensors(outputs: Mapping[str, Mapping[str, np.ndarray]], kind: str) -> dict[str, np.ndarray]:
    """The tensors of ``predictions.safetensors`` for ``outputs`` (split -> :func:`maskbench.training.train.predict`'s
    ``logits``/``labels``/``lengths``): tagging tasks keep each word's :data:`TOP_K` tags (module docstring)."""
    tensors = {}
    for split, output in outputs.items():
        for key, value in output.items():
            value = np.ascontiguousarray(value)
            if key == "logits" and kind == "tagging":
                num_labels = value.shape[-1]
                log_probs = _log_softmax(value.astype(np.float64))
                top = np.argsort(-log_probs, axis=-1, kind="stable")[:, :TOP_K]
                kept = np.take_along_axis(log_probs, top, axis=-1)
                tensors[f"{split}_top_labels"] = top.astype(np.uint8 if num_labels <= 256 else np.int32)
                tensors[f"{split}_top_log_probs"] = np.maximum(kept, np.finfo(np.float16).min).astype(np.float16)
                tensors[f"{split}_num_labels"] = np.array([num_labels], dtype=np.int64)
            elif key in ("labels", "lengths"):
                tensors[f"{split}_{key}"] = compact_integers(value)
            else:
                tensors[f"{split}_{key}"] = value
    return tensors


def compact_integers(values: np.ndarray) -> np.ndarray:
    """``values`` in the smallest unsigned integer dtype that holds them exactly when they are non-negative
    integers (gold labels and sentence lengths: a tagging split's labels are ~25× smaller as uint8 than int64);
    anything else (floats, negative sentinels) unchanged. :func:`load_split` returns them as int64 again."""
    if values.dtype.kind not in "iu" or values.size == 0 or values.min() < 0:
        return values
    for dtype in (np.uint8, np.uint16, np.uint32):
        if values.max() <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values


def _dense_log_probs(path: Path, split: str, tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-word log-probabilities over all tags from the saved top tags; the rest of the mass spread evenly."""
    top = tensors.get(f"{split}_top_labels", np.empty((0,), dtype=np.int64)).astype(np.int64)
    kept = tensors[f"{split}_top_log_probs"].astype(np.float64)
    num_labels = tensors.get(f"{split}_num_labels")
    if num_labels is None or num_labels.size != 1 or top.ndim != 2 or top.shape != kept.shape:
        raise DataError(f"{path}: {split}_top_labels and {split}_top_log_probs must be (words, k) arrays of the same "
                        f"shape, with {split}_num_labels holding the number of tags (shapes {top.shape}, "
                        f"{kept.shape})")
    num_labels, k = int(num_labels[0]), top.shape[1]
    ordered = np.sort(top, axis=-1)
    if not 0 < k <= num_labels or (top < 0).any() or (top >= num_labels).any() or (np.diff(ordered) == 0).any() \
            or not np.isfinite(kept).all() or (kept > 0).any():
        raise DataError(f"{path}: {split}_top_labels must hold distinct tags below {split}_num_labels = {num_labels} "
                        f"and {split}_top_log_probs finite log-probabilities (≤ 0)")
    dense = np.empty((len(top), num_labels))
    if k < num_labels:
        rest = np.clip(1.0 - np.exp(kept).sum(axis=-1), 1e-30, None) / (num_labels - k)
        dense[:] = np.minimum(np.log(rest), kept.min(axis=-1))[:, None]  # never above a kept tag
    np.put_along_axis(dense, top, kept, axis=-1)
    return dense


def _load_predictions(run_dir: str | Path) -> tuple[Path, dict[str, np.ndarray]]:
    path = Path(run_dir) / PREDICTIONS_FILE
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return path, load_file(str(path))
    except (FileNotFoundError, SafetensorError, OSError) as error:
        raise DataError(f"{path}: cannot read predictions ({error})") from None


def load_split(run_dir: str | Path, split: str) -> dict[str, np.ndarray] | None:
    """A run's saved predictions of ``split``: ``logits`` (float64 logits, or for tagging log-probabilities —
    interchangeable for ensembles and metrics), ``labels`` and, for tagging, ``lengths``; None when the run has no
    such split."""
    return _split(*_load_predictions(run_dir), split)


def _split(path: Path, tensors: Mapping[str, np.ndarray], split: str) -> dict[str, np.ndarray] | None:
    found = [key for key in ("logits", "top_log_probs") if f"{split}_{key}" in tensors]
    if not found:
        return None
    if len(found) > 1 or f"{split}_labels" not in tensors:
        raise DataError(f"{path}: expected {split}_labels and either {split}_logits or {split}_top_labels/"
                        f"{split}_top_log_probs, found {sorted(tensors)}")
    if found == ["logits"]:
        scores = tensors[f"{split}_logits"].astype(np.float64)
    else:
        scores = _dense_log_probs(path, split, tensors)
    labels = tensors[f"{split}_labels"]
    if scores.ndim != 2 or len(scores) != len(labels) or not np.isfinite(scores).all():
        raise DataError(f"{path}: {split}_{found[0]} must be a finite (rows, labels) array with one row per label "
                        f"in {split}_labels (shapes {scores.shape}, {labels.shape})")
    split_tensors = {"logits": scores, "labels": _widened(labels)}
    if f"{split}_lengths" in tensors:
        split_tensors["lengths"] = _widened(tensors[f"{split}_lengths"])
    return split_tensors


def split_predictions(run_dir: str | Path, split: str) -> dict[str, np.ndarray] | None:
    """A single run's predicted label ids of ``split`` (``predictions``), with ``labels`` and (tagging)
    ``lengths``: exactly the predictions its recorded scores were computed from. None without such a split.

    For logits that is their argmax. For tagging it is each word's stored top tag (``{split}_top_labels[:, 0]``),
    not the argmax of the loaded log-probabilities: two top tags whose log-probabilities differ in float64 can
    round to the same float16 value, and the argmax of equal values is the lower tag id, not the run's prediction
    (two of the 23 committed tagging runs have one such word among ~50,000 dev words each).
    """
    path, tensors = _load_predictions(run_dir)
    loaded = _split(path, tensors, split)
    if loaded is None:
        return None
    result = {key: value for key, value in loaded.items() if key != "logits"}
    if f"{split}_top_labels" in tensors:
        result["predictions"] = tensors[f"{split}_top_labels"][:, 0].astype(np.int64)
    else:
        result["predictions"] = loaded["logits"].argmax(-1)
    return result


def _widened(values: np.ndarray) -> np.ndarray:
    """Integer arrays stored compactly (:func:`compact_integers`) back as int64; other dtypes unchanged."""
    return values.astype(np.int64) if values.dtype.kind in "iu" else values

# --- Table 3 scores added to a finished run's record --------------------------------------------------------------


#: marks a Table 3 score that was computed after the run finished (from its saved or rebuilt model)
SCORED_AFTER_TRAINING = "scored_after_training"


def add_transfer_scores(path: str | Path, scores: Mapping[str, Mapping[str, Any]],
                        data: Mapping[str, str]) -> dict[str, Any]:
    """Add Table 3 scores to the finished run record at ``path``: ``scores`` maps a target task to the entry a run
    would have recorded while training (:func:`maskbench.training.train.run_transfer`), computed since from the
    run's own model (saved, or rebuilt and checked against this record: :mod:`maskbench.training.rebuild`); each
    entry is marked :data:`SCORED_AFTER_TRAINING`. ``data``: the fingerprint of the targets' files it read, added
    to the record's ``data`` so that a later change of those files is seen as for any run
    (:func:`maskbench.data.fingerprint.data_changes`).

    Nothing the run recorded is replaced: a target it scored while training is refused, and so is a file the record
    fingerprinted with other contents (the scores would be of other data). The record keeps its modification time:
    what the lr selection, aggregates and ensembles read from it is unchanged, so the workflow does not derive them
    again (nor, on a dry run, stop its plan at a selection checkpoint). Returns the record written."""
    stat = Path(path).stat()
    record = read_run_record(path)
    transfer = dict(record.get("transfer") or {})
    kept = sorted(target for target in scores if target in transfer
                  and not (transfer[target] or {}).get(SCORED_AFTER_TRAINING))
    if kept:
        raise RecordError(f"{path}: already holds the Table 3 scores it recorded while training on {', '.join(kept)}; "
                          f"they are not replaced")
    fingerprint = dict(record.get(DATA_KEY) or {})
    changed = sorted(key for key, value in data.items() if key in fingerprint and fingerprint[key] != value)
    if changed:
        raise DataError(f"{path}: the run recorded other contents of {', '.join(changed)} than the data just scored; "
                        f"its scores would be of other data")
    transfer.update({target: {**entry, SCORED_AFTER_TRAINING: True} for target, entry in scores.items()})
    fingerprint.update(data)
    updated = {**record, "transfer": transfer, DATA_KEY: fingerprint}
    check_run_record(updated, path)
    write_json(path, updated, "metrics")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return updated


# --- migration: records made before data fingerprints were recorded ---------------------------------------------------


def add_data_fingerprints(results_dir: str, data_dir: str | None = None, force: bool = False) -> list[str]:
    """Add ``"data"`` to every finished run record under ``<results_dir>/runs`` that lacks one (``force``: replace
    it), computed from the files under ``data_dir`` (else ``$MASKBENCH_DATA_DIR``): those the runs were trained
    on. No other key changes; the record is rewritten in the same format. Returns the paths changed.
    """
    if resolve_data_dir(data_dir) is None:
        raise DataError("add_data_fingerprints: no data directory (pass data_dir or set $MASKBENCH_DATA_DIR)")
    changed = []
    for path in sorted(run_record_paths(Path(results_dir) / "runs")):
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: unreadable record ({error})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: expected a JSON object")
        if DATA_KEY in record and not force:
            continue
        try:
            fingerprint = record_fingerprint(record, data_dir)
        except DataError as error:
            raise DataError(f"{path}: {error}") from None
        write_json(path, {**record, DATA_KEY: fingerprint}, "metrics")
        changed.append(os.fspath(path))
    return changed
