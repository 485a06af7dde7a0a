"""Reading maskbench's records back: every record is checked before anything uses it.

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

Torch-free (only :func:`check_dev_score` imports the metric code, when called): the workflow imports this module
at planning time.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from maskbench.io.errors import MaskbenchError, RecordError

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
    from maskbench.training.methods.registry import registered

    name = SCHEMAS[kind][0]
    loaded = json.loads(resources.files("maskbench").joinpath("schemas", name).read_text(encoding="utf-8"))
    if "method" in loaded.get("$defs", {}):
        loaded["$defs"]["method"]["enum"] = list(registered())  # the methods are the registry's
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
    :func:`maskbench.results.ensemble.split_predictions`)."""
    from maskbench.data import tasks
    from maskbench.data.metrics import score_predictions
    from maskbench.results.ensemble import split_predictions

    path = Path(run_dir) / "predictions.safetensors"
    try:
        label_names = tasks.get_task(record["task"]).label_names
        dev = split_predictions(run_dir, "dev")
    except MaskbenchError as error:
        raise RecordError(f"{path}: cannot recompute the dev score of {Path(run_dir) / 'metrics.json'} ({error})") \
            from None
    if dev is None:
        raise RecordError(f"{path}: holds no dev predictions; cannot check the dev score of "
                          f"{Path(run_dir) / 'metrics.json'}")
    try:
        return score_predictions(record["metric"], dev["predictions"], dev["labels"], label_names,
                                 dev.get("lengths"))
    except (ValueError, IndexError) as error:
        raise RecordError(f"{path}: dev predictions do not fit task {record['task']!r} ({error})") from None


def check_dev_score(path: str | Path, record: Mapping[str, Any]) -> None:
    """Refuse the run record at ``path`` (``metrics.json``) when its dev score is not what its stored predictions
    give (beyond float rounding, :data:`SCORE_TOLERANCE`)."""
    path = Path(path)
    recomputed = recomputed_dev_score(path.parent, record)
    if not abs(recomputed - record["dev_score"]) <= SCORE_TOLERANCE:
        raise RecordError(f"{path}: dev_score {record['dev_score']!r} disagrees with {recomputed!r} recomputed from "
                          f"{path.parent / 'predictions.safetensors'}; the record was edited or belongs to other "
                          f"predictions — delete {path.parent} to train the run again")
