"""The data a run read, as part of its identity: a fingerprint per task and split.

Torch- and datasets-free at import (the workflow calls it while planning). A fingerprint is a flat JSON object of
strings, one entry per source of one split: ``"<task>/<split>/<file>": "<sha256 hex>"``.

- Local original files: the SHA-256 of each file the task's reader reads for that split (:data:`SPLIT_FILES`, a
  declaration per task of which files feed which split). A split carved from another (TREC's, AG News' and IMDB's
  dev from train, QNLI's offline stand-in) names the file it is carved from, so a change of that file changes
  both splits. Checksums are cached in the process by (path, size, mtime_ns), except for a file modified in the
  last seconds (whose change within one clock tick would keep its mtime, as git's "racily clean" entries): hashing
  the whole data directory (~60 MB) takes ~0.2 s, so planning needs no cache on disk.
- Hub data (no local files): the SHA-256 of the split's rows as loaded (our columns, after conversion and carving;
  canonical JSON), under ``"<task>/<split>/hub:<dataset>[:<config>]"``, computed where the data is loaded
  (prepare, train). The workflow cannot know it while planning without loading the data: it checks finished runs
  of local data only (hub data comes from the download stage's cache, which a run does not change).

A run records the fingerprint of its task's splits and of the split of each ``transfer`` target it scores
(:func:`run_fingerprint`); ``maskbench prepare`` records its task's in ``prepared.json``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from maskbench.io.errors import DataError
from maskbench.io.locations import resolve_data_dir

#: the record key (metrics.json, prepared.json, a checkpoint's state.json)
DATA_KEY = "data"
#: the split name of the files of a task without a :data:`SPLIT_FILES` declaration (they feed every split)
ALL_SPLITS = "*"

_GLUE = {"train": (("train.tsv",),), "dev": (("dev.tsv",),)}
#: task -> split -> alternatives, the first whose patterns all match a file is what the reader reads; each a tuple of
#: glob patterns relative to the task's directory (``<data_dir>/<task>``). Mirrors maskbench.data.tasks.readers (a test
#: checks that every task is declared and that the declared files are those the readers read).
SPLIT_FILES: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {
    "sst2": _GLUE, "mrpc": _GLUE, "cola": _GLUE, "rte": _GLUE,
    "qnli": _GLUE,  # allow_partial without train.tsv: both splits carved from dev.tsv (PARTIAL_FILES)
    "sem": {"train": (("train.tsv",),), "dev": (("dev.tsv",),), "test": (("test.tsv",),)},
    "trec": {"train": (("train.txt",),), "dev": (("train.txt",),), "test": (("test.txt",),)},
    "ag_news": {"train": (("train.csv",), ("train_subset_5k.csv",)), "dev": (("train.csv",), ("train_subset_5k.csv",)),
                "test": (("test.csv",),)},
    # readers.POS_FILE_SPLITS: wsj_0001-0139 train, 0140-0169 dev, 0170-0199 test
    "pos": {"train": (("treebank/combined/wsj_00??.mrg", "treebank/combined/wsj_01[0-3]?.mrg"),),
            "dev": (("treebank/combined/wsj_01[4-6]?.mrg",),),
            "test": (("treebank/combined/wsj_01[7-9]?.mrg",),)},
    "conll2003": {"train": (("train.txt",),), "dev": (("dev.txt",),), "test": (("test.txt",),)},
    "swag": {"train": (("train.csv",),), "dev": (("val.csv",),)},
    "imdb": {split: (("aclImdb_train_test.tar.gz",),) for split in ("train", "dev", "test")},
}  # fmt: skip
#: what ``allow_partial`` reads where the full files are missing (readers.read_qnli_partial)
PARTIAL_FILES: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {
    "qnli": {"train": (("train.tsv",), ("dev.tsv",))},
}

_CHECKSUMS: dict[tuple[str, int, int], str] = {}
#: a file modified less than this long ago (ns) is hashed again at each call, never taken from the cache
_RACY_NS = 3_000_000_000


def file_checksum(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, cached in this process by (path, size, mtime_ns)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _CHECKSUMS:
        return _CHECKSUMS[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if time.time_ns() - stat.st_mtime_ns > _RACY_NS:
        _CHECKSUMS[key] = digest.hexdigest()
    return digest.hexdigest()


def split_files(task: str, task_dir: Path, allow_partial: bool = False) -> dict[str, list[Path]]:
    """The files each split of ``task`` is read from (sorted); a split whose files are missing is left out.

    A task without a declaration in :data:`SPLIT_FILES` (a newly added task) counts every file of its folder for
    every split, under the split name ``*``: coarser (any change refuses every split's runs), never blind."""
    if task not in SPLIT_FILES:
        every = sorted(path for path in task_dir.rglob("*") if path.is_file()
                       and not any(part.startswith(".") for part in path.relative_to(task_dir).parts))
        return {ALL_SPLITS: every} if every else {}
    declared = {**SPLIT_FILES[task], **(PARTIAL_FILES.get(task, {}) if allow_partial else {})}
    result = {}
    for split, alternatives in declared.items():
        for patterns in alternatives:
            matches = [sorted(p for p in task_dir.glob(pattern) if p.is_file()) for pattern in patterns]
            if all(matches):
                result[split] = sorted({path for found in matches for path in found})
                break
    return result


def local_fingerprint(task: str, task_dir: str | Path, allow_partial: bool = False,
                      splits: Iterable[str] | None = None) -> dict[str, str]:
    """``{"<task>/<split>/<file>": sha256}`` of the original files in ``task_dir`` (``splits``: only those)."""
    task_dir = Path(task_dir)
    wanted = set(splits) if splits is not None else None
    result = {}
    for split, paths in split_files(task, task_dir, allow_partial).items():
        if wanted is None or split in wanted or split == ALL_SPLITS:
            for path in paths:
                result[f"{task}/{split}/{path.relative_to(task_dir).as_posix()}"] = file_checksum(path)
    return result


def rows_checksum(dataset: Any) -> str:
    """SHA-256 of a :class:`datasets.Dataset`'s rows (canonical JSON of each batch of column values)."""
    digest = hashlib.sha256(json.dumps(sorted(dataset.column_names)).encode())
    for batch in dataset.with_format(None).iter(batch_size=1000):
        digest.update(json.dumps(batch, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


def hub_origin(task: str) -> str:
    """The name a hub task's entries carry: ``hub:<dataset>[:<config>]``."""
    from maskbench.data.tasks.registry import get_task

    hub = get_task(task).hub
    return f"hub:{hub.path}" + (f":{hub.name}" if hub.name else "") if hub is not None else "hub"


def dataset_fingerprint(task: str, splits: Mapping[str, Any], origin: str | None = None) -> dict[str, str]:
    """``{"<task>/<split>/<origin>": sha256 of the rows}`` of loaded splits (hub data)."""
    origin = origin or hub_origin(task)
    return {f"{task}/{split}/{origin}": rows_checksum(dataset) for split, dataset in splits.items()}


def local_task_dir(task: str, data_dir: str | Path | None) -> Path | None:
    """``<data_dir>/<task>`` (else under ``$MASKBENCH_DATA_DIR``) where it exists: where tasks.load reads from."""
    root = resolve_data_dir(data_dir)
    task_dir = root / task if root is not None else None
    return task_dir if task_dir is not None and task_dir.is_dir() else None


def loaded_fingerprint(task: str, data_dir: str | Path | None, allow_partial: bool, loaded: Mapping[str, Any],
                       ) -> dict[str, str]:
    """The fingerprint of data just loaded by :func:`maskbench.data.tasks.load` with these arguments: its files' where
    it came from local files, else its rows."""
    task_dir = local_task_dir(task, data_dir)
    if task_dir is not None:
        return local_fingerprint(task, task_dir, allow_partial, splits=loaded.keys())
    return dataset_fingerprint(task, loaded)


def task_fingerprint(task: str, data_dir: str | Path | None, allow_partial: bool = False,
                     splits: Iterable[str] | None = None) -> dict[str, str] | None:
    """The current data of ``task`` without loading it: its local files' checksums; None for hub data."""
    task_dir = local_task_dir(task, data_dir)
    return local_fingerprint(task, task_dir, allow_partial, splits) if task_dir is not None else None


def run_fingerprint(config: Mapping[str, Any], data_dir: str | Path | None,
                    splits: Iterable[str] | None = None) -> dict[str, str] | None:
    """What a run of ``config`` (a TrainConfig as a dict) reads now: its task's splits (``splits``: only those) and
    the ``transfer_split`` of each transfer target; None when some of it is unknown (:func:`task_fingerprint`)."""
    allow_partial = bool(config.get("allow_partial"))
    result = task_fingerprint(config["task"], data_dir, allow_partial, splits)
    if result is None:
        return None
    for target in transfer_targets(config):
        found = task_fingerprint(target, data_dir, allow_partial, [config.get("transfer_split") or "dev"])
        if found is None:
            return None
        result.update(found)
    return result


def transfer_targets(config: Mapping[str, Any]) -> list[str]:
    transfer = config.get("transfer")
    return [name for name in transfer.split(",") if name] if isinstance(transfer, str) else []


def prepared_fingerprint(prepared: str | Path | None, target: str, split: str) -> dict[str, str]:
    """The fingerprint of ``target``'s ``split`` that its prepared data recorded (``PREPARED/prepared.json``), or
    nothing (no prepared data, or unreadable: loading it names the problem)."""
    if not prepared:
        return {}
    try:
        recorded = json.loads((Path(prepared) / "prepared.json").read_text()).get(DATA_KEY)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return {}
    prefix = f"{target}/{split}/"
    return {k: v for k, v in (recorded or {}).items() if k.startswith(prefix) and isinstance(v, str)}


def _parts(key: str) -> tuple[str, str, str]:
    task, split, source = (key.split("/", 2) + ["?", "?"])[:3]
    return task, split, source


def changes(recorded: Mapping[str, str], current: Mapping[str, str], limit: int = 3) -> str | None:
    """What differs between two fingerprints, in words (``task split file: old → new``, checksum prefixes), or
    None when they are equal."""
    lines = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if old != new:
            task, split, source = _parts(key)
            lines.append(f"task {task} split {split} file {source}: {(old or 'not read')[:12]} → "
                         f"{(new or 'not read')[:12]}")
    if not lines:
        return None
    more = f"; and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more


def check_recorded(where: str | Path, what: str, recorded: Any, current: Mapping[str, str], remedy: str) -> None:
    """Raise :class:`DataError` unless ``recorded`` (a fingerprint read from ``where``) equals ``current``."""
    if not isinstance(recorded, Mapping):
        raise DataError(f"{where}: {what} has no record of the data it read (made by an older maskbench); {remedy}")
    changed = changes(recorded, current)
    if changed is not None:
        raise DataError(f"{where}: {what} was made from other data than this run reads ({changed}); {remedy}")


# --- the migration of records made before fingerprints were recorded ---------------------------------------


def record_fingerprint(record: Mapping[str, Any], data_dir: str | Path | None) -> dict[str, str]:
    """The fingerprint of the data a finished run's record says it read (its task's splits: the keys of its
    ``sizes``; its transfer targets, also those scored after training: the keys of its ``transfer``), computed
    from the files under ``data_dir`` now."""
    config = record.get("config")
    sizes = record.get("sizes")
    if not isinstance(config, Mapping) or not isinstance(sizes, Mapping):
        raise DataError("record without 'config' or 'sizes'")
    found = run_fingerprint(config, data_dir, splits=sizes.keys())
    transfer = record.get("transfer") if isinstance(record.get("transfer"), Mapping) else {}
    for target in (set(transfer) - set(transfer_targets(config)) if found is not None else ()):  # scored later
        entry = transfer[target] if isinstance(transfer[target], Mapping) else {}
        scored = task_fingerprint(target, data_dir, bool(config.get("allow_partial")),
                                  [entry.get("split") or config.get("transfer_split") or "dev"])
        if scored is None:
            found = None
            break
        found.update(scored)
    if found is None:
        raise DataError(f"task {config.get('task')!r} (or a transfer target) has no local files under {data_dir}")
    missing = sorted(set(sizes) - {_parts(key)[1] for key in found if _parts(key)[0] == config["task"]})
    if missing:
        raise DataError(f"no files of split(s) {missing} of task {config['task']!r} under {data_dir}")
    return found


def data_changes(path: str | Path, record: Mapping[str, Any], expected: Mapping[str, Any],
                 data_dir: str | Path | None) -> str | None:
    """For the workflow's planning: why the finished run at ``path`` (its ``record``) cannot stand for a run of
    ``expected`` (a TrainConfig as a dict) on the data it would read now (the end of a sentence about the run), or
    None when it can, or when the current data is unknown (hub data)."""
    sizes = record.get("sizes")
    current = run_fingerprint(expected, data_dir, sizes.keys() if isinstance(sizes, Mapping) else None)
    if current is None:
        return None
    recorded = record.get(DATA_KEY)
    if not isinstance(recorded, Mapping):
        results = Path(path).parents[6] if len(Path(path).parents) > 6 else "RESULTS_DIR"
        return ("has no record of the data it read (made by an older maskbench): if it was made from the data this "
                "configuration reads, add the record with `python -m maskbench.cli step data-fingerprints "
                f"'{{\"results_dir\": \"{results}\"}}'`, else")
    changed = changes(*_comparable(recorded, current, expected))
    return None if changed is None else f"was made from other data than this configuration reads ({changed}):"


def _comparable(recorded: Mapping[str, str], current: Mapping[str, str],
                expected: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The parts of two fingerprints that decide whether a finished run stands for ``expected``: every file of the
    run's own task, and the files of a Table 3 target that the run scored *and* that ``expected`` scores. A target
    the run did not score (a target or source added to Table 3 after it finished) or no longer scores is not part
    of what it trained on: the Table 3 step scores it from the run's rebuilt model instead
    (``generalization_inputs``) and adds the score, with that target's fingerprint, to the run's record
    (:func:`maskbench.records.add_transfer_scores`). A target it scored from other files than there are now
    still refuses it (its recorded score is of other data)."""
    own = expected["task"]
    shared = {key for key in set(recorded) & set(current) if _parts(key)[0] != own}
    keep = {key for key in set(recorded) | set(current) if _parts(key)[0] == own} | shared
    return ({key: value for key, value in recorded.items() if key in keep},
            {key: value for key, value in current.items() if key in keep})


__all__ = ["DATA_KEY", "PARTIAL_FILES", "SPLIT_FILES", "changes", "check_recorded",
           "data_changes", "dataset_fingerprint", "file_checksum", "loaded_fingerprint", "local_fingerprint",
           "record_fingerprint", "run_fingerprint", "split_files", "task_fingerprint"]
