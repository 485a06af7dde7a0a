"""What maskbench writes where: the kinds of output directories and their known contents, and the checks that run
before any work so that a run never starts (let alone replaces anything) when its outputs cannot be written.

A directory written by :func:`maskbench.io.fileio.atomic_directory` carries a marker of its kind; the ``*_FILES`` sets
below recognise such directories written before the marker existed (they hold nothing else).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from maskbench.data.fingerprint import DATA_KEY, check_recorded
from maskbench.io.errors import OutputError
from maskbench.io.fileio import MARKER_FILE, check_output_directory, check_output_file, is_writable_directory

#: (Snakemake marks a directory() output with .snakemake_timestamp)
PREPARED_FILES = frozenset({"data", "prepared.json", ".snakemake_timestamp"})
MASK_FILES = frozenset({"mask_config.json", "masks.safetensors", "head.safetensors"})
CHECKPOINT_FILES = frozenset({"tensors.safetensors", "state.json"})
#: what ``save_pretrained`` of a model and its tokenizer writes (the finetuned weights of a run)
MODEL_FILES = frozenset({"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                         "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                         "merges.txt", "added_tokens.json", "chat_template.jinja", "spiece.model"})
#: what a run directory holds: the record, predictions, the sub-directories of the kinds above, and ``tracking``
#: (the trackers' own files of a run with ``report_to``, :mod:`maskbench.training.tracking`: their layout, not
#: maskbench's)
RUN_ENTRIES = {"metrics.json": None, "predictions.safetensors": None, "masks": ("masks", MASK_FILES),
               "model": ("model", MODEL_FILES), "checkpoint": ("checkpoint", CHECKPOINT_FILES), "tracking": None}


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
    check_output_file(out / "predictions.safetensors", "predictions")
    metrics = out / "metrics.json"
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
    metrics = Path(out) / "metrics.json"
    if not metrics.is_file():
        return
    try:
        recorded = json.loads(metrics.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # an unreadable record is no finished run (check_run_directory reports what it must)
    if isinstance(recorded, dict) and DATA_KEY in recorded:
        check_recorded(metrics, "the finished run", recorded[DATA_KEY], data,
                       f"refusing to mix two runs — remove {out} or choose another --out")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10**10 else f"{size / 1e9:.1f} GB"


def check_free_space(out: str | Path, needed: int, what: str) -> None:
    """Raise :class:`OutputError` unless the file system that will hold ``out`` (a path that may not exist yet)
    has ``needed`` bytes free; ``what`` says what needs them."""
    out = Path(out).absolute()
    target = next((folder for folder in (out, *out.parents) if folder.is_dir()), None)
    if target is None:
        return
    try:
        free = shutil.disk_usage(target).free
    except OSError:
        return  # no statistics (a pseudo file system): the writes themselves report a full disk
    if free < needed:
        raise OutputError(f"{out}: not enough free space: {what} needs about {_megabytes(needed)}, but its file "
                          f"system ({target}) has {_megabytes(free)} free; free space (df -h {target}) or choose "
                          f"another --out")
