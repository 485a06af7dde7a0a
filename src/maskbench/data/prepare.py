"""Prepared data: a task's splits tokenised for one tokenizer, cached on disk (a workflow target)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datasets import DatasetDict, load_from_disk

from maskbench.data import tasks
from maskbench.data.fingerprint import DATA_KEY, loaded_fingerprint
from maskbench.data.models import load_tokenizer
from maskbench.data.tokenising import check_max_length, tokenize_dataset
from maskbench.io.errors import ConfigError, DataError
from maskbench.io.fileio import atomic_directory, check_output_directory
from maskbench.io.locks import holds_output
from maskbench.io.output_dirs import PREPARED_FILES
from maskbench.io.provenance import versions

META_FILE = "prepared.json"
WORD_COUNTS = ("num_words", "excluded_words", "empty_words")


def encode_task(task: str, model: str, data_dir: str | Path | None = None, max_length: int = 128,
                allow_partial: bool = False) -> tuple[DatasetDict, dict[str, Any]]:
    """Load a task and tokenise every split for ``model``'s tokenizer; also return a description of the result."""
    spec = tasks.get_task(task)
    data = tasks.load(task, data_dir, allow_partial=allow_partial)
    tokenizer = load_tokenizer(model)
    encoded = DatasetDict({name: tokenize_dataset(split, spec.kind, tokenizer, max_length)
                           for name, split in data.items()})
    meta = {"task": task, "model": model, "max_length": max_length, "allow_partial": allow_partial,
            "kind": spec.kind, "label_names": list(spec.label_names), "sizes": {k: len(v) for k, v in data.items()},
            "word_counts": word_counts(encoded) if spec.kind == "tagging" else None, "versions": versions(),
            DATA_KEY: loaded_fingerprint(task, data_dir, allow_partial, data)}  # what the cache was made from
    notes = {name: split.info.description for name, split in data.items() if split.info.description}
    if notes:  # e.g. tags read in another scheme and converted (IOB1 -> IOB2)
        meta["data_notes"] = notes
    return encoded, meta


def word_counts(encoded: DatasetDict) -> dict[str, dict[str, int]]:
    """Per split: words scored, words cut off by the length limit (excluded), words with no wordpiece."""
    return {name: {column: int(sum(split[column])) for column in WORD_COUNTS} for name, split in encoded.items()}


@holds_output("out")  # one writer per prepared folder (maskbench.io.locks)
def prepare(task: str, model: str, out: str | Path, data_dir: str | Path | None = None, max_length: int = 128,
            allow_partial: bool = False) -> dict[str, Any]:
    """Write the tokenised splits of ``task`` for ``model`` to ``out`` (atomically) with a ``prepared.json``."""
    tasks.get_task(task)
    check_max_length(max_length)
    check_output_directory(out, "prepared", PREPARED_FILES)  # before any work: never replace a user's folder
    encoded, meta = encode_task(task, model, data_dir, max_length, allow_partial)
    with atomic_directory(out, "prepared", PREPARED_FILES) as tmp:
        encoded.save_to_disk(str(tmp / "data"))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def load_prepared(path: str | Path, task: str, model: str, max_length: int) -> tuple[DatasetDict, dict[str, Any]]:
    """Read prepared data and check that it was made for this task, model and length limit, and records the
    fingerprint of the data it was made from (``meta["data"]``).

    A cache without one (made by an older maskbench) is refused: it does not say which data directory it was made
    from, so no run could say what it read; preparing again takes seconds to minutes."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: missing; expected data written by 'maskbench prepare'")
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{meta_path}: not valid JSON ({error}); expected data written by "
                        f"'maskbench prepare'") from None
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path}: expected a JSON object written by 'maskbench prepare'")
    expected = {"task": task, "model": model, "max_length": max_length}
    for key, value in expected.items():
        if meta.get(key) != value:
            raise ConfigError(f"{meta_path}: prepared for {key}={meta.get(key)!r}, but this run has {key}={value!r}")
    if not isinstance(meta.get(DATA_KEY), dict):
        raise DataError(f"{meta_path}: no record of the data it was made from (prepared by an older maskbench); "
                        f"run 'maskbench prepare' again")
    try:
        return load_from_disk(str(path / "data")), meta
    except (OSError, ValueError) as error:  # missing, truncated or foreign files (pyarrow errors are ValueErrors)
        raise DataError(f"{path / 'data'}: unreadable prepared data ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''}); run 'maskbench prepare' again") from None
