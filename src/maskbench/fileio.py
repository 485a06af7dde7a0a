"""Atomic file writing and checksums: a killed process never leaves a half-written output behind.

Atomic replacement only ever replaces maskbench's own earlier output of the same kind: a directory written by
:func:`atomic_directory` carries a small marker file (:data:`MARKER_FILE`, ``{"kind": ...}``); an existing
directory without it is replaced only when it is empty or holds nothing but the files that kind of output consists
of (outputs written before the marker existed). Files are recognised by their contents (``kind`` recognisers in
:data:`FILE_KINDS`). Anything else is refused with :class:`~maskbench.errors.OutputError`. Temporary siblings left
by a killed write (``.NAME.*.tmp``) are removed by the next write of the same path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from maskbench.errors import OutputError

#: marker file in every directory written by :func:`atomic_directory`: JSON ``{"kind": ..., "writer": "maskbench"}``
MARKER_FILE = ".maskbench-output.json"


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(entries: list[str]) -> str:
    shown = ", ".join(sorted(entries)[:4])
    return shown + (f", ... ({len(entries)} entries)" if len(entries) > 4 else "")


def _marker_kind(directory: Path) -> str | None:
    """The kind recorded in ``directory``'s marker file; None without a readable marker."""
    try:
        data = json.loads((directory / MARKER_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("kind") if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


def check_output_directory(path: str | Path, kind: str, known: Collection[str] = ()) -> None:
    """Raise :class:`OutputError` unless ``path`` may be (re)written as maskbench output of ``kind``.

    Allowed: a path that does not exist, an empty directory, a directory marked as output of ``kind``, or (output
    from before the marker) a directory holding only entries named in ``known``. The nearest existing ancestor
    must be a writable directory.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise OutputError(f"{path}: exists and is not a directory (or is a link); expected a new path or "
                          f"maskbench's {kind} output directory — refusing to replace it")
    if not path.exists():
        check_writable_parent(path)
        return
    try:
        entries = [entry.name for entry in path.iterdir()]
    except OSError as error:
        raise OutputError(f"{path}: cannot list the directory ({error.strerror})") from None
    if not is_writable_directory(path):
        raise OutputError(f"{path}: directory is not writable")
    if not entries:
        return
    marked = _marker_kind(path) if MARKER_FILE in entries else None
    if marked == kind or (MARKER_FILE not in entries and known and set(entries) <= set(known)):
        return
    what = f"maskbench {marked} output" if marked else f"files that are not maskbench's {kind} output"
    raise OutputError(f"{path}: exists and holds {what} ({_describe(entries)}); refusing to replace it — "
                      f"remove it or choose another path")


def check_writable_parent(path: str | Path) -> None:
    """Raise :class:`OutputError` unless ``path`` could be created: its nearest existing ancestor is a writable
    directory (no ancestor is a file)."""
    path = Path(path).absolute()
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(f"{path}: cannot be created, {ancestor} is not a directory")
            if not is_writable_directory(ancestor):
                raise OutputError(f"{path}: cannot be created, directory {ancestor} is not writable")
            return


def is_writable_directory(directory: str | Path) -> bool:
    """Whether a file can be created in ``directory``, tried with a temporary file (removed at once): permission
    bits say nothing for root, read-only mounts or pseudo file systems."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".maskbench-probe.", dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def check_output_file(path: str | Path, kind: str | None = None) -> None:
    """Raise :class:`OutputError` unless ``path`` may be (re)written: it does not exist, or it is a file that
    :data:`FILE_KINDS` recognises as maskbench's output of ``kind`` (any file when ``kind`` is None)."""
    path = Path(path)
    if path.is_dir() or (path.is_symlink() and not path.exists()):
        raise OutputError(f"{path}: is a directory or a dangling link; expected a file path")
    if not path.exists():
        check_writable_parent(path)
        return
    if not is_writable_directory(path.parent):
        raise OutputError(f"{path}: directory {path.parent} is not writable")
    if kind is not None and not FILE_KINDS[kind](path):
        raise OutputError(f"{path}: exists and is not maskbench's {kind} output; refusing to replace it — "
                          f"remove it or choose another path")


def _remove_stale_temporaries(path: Path, directories: bool) -> None:
    """Remove ``.NAME.*.tmp`` siblings of ``path`` left behind by a killed write (maskbench's own names)."""
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        if stale.is_symlink():
            continue
        if directories and stale.is_dir() and (not any(stale.iterdir()) or _marker_kind(stale) is not None):
            shutil.rmtree(stale, ignore_errors=True)  # ours: marked at creation (or killed before the marker)
        elif not directories and stale.is_file():
            stale.unlink(missing_ok=True)


def recover_directory(path: str | Path) -> None:
    """Finish a replacement by :func:`atomic_directory` that was killed between its two renames: when ``path`` is
    missing but its previous version (``.NAME.old``) exists, put the previous version back."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.is_dir() and not old.is_symlink():
        os.replace(old, path)


def remove_directory(path: str | Path) -> None:
    """Remove maskbench's output directory ``path`` with the leftovers of killed writes of it (``.NAME.*.tmp``,
    ``.NAME.old``)."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    old = path.with_name(f".{path.name}.old")
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    _remove_stale_temporaries(path, directories=True)


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters quoted."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def atomic_path(path: str | Path, kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error removed.

    An existing ``path`` is replaced only when it is maskbench's output of ``kind`` (see :func:`check_output_file`);
    a directory is never replaced.
    """
    path = Path(path)
    check_output_file(path, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path, directories=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        check_output_file(path, kind)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


#: key added to a JSON record that held non-finite numbers: the paths of the values written as null
NON_FINITE_KEY = "non_finite"


def _without_non_finite(data: Any, where: str, found: list[str]) -> Any:
    """``data`` with every NaN/infinite number replaced by None; their paths are appended to ``found``."""
    if isinstance(data, dict):
        return {key: _without_non_finite(value, f"{where}.{key}" if where else str(key), found)
                for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_without_non_finite(value, f"{where}[{i}]", found) for i, value in enumerate(data)]
    if isinstance(data, numbers.Real) and not isinstance(data, (bool, int)) and not math.isfinite(float(data)):
        found.append(f"{where}={float(data)}")
        return None
    return data


def write_json(path: str | Path, data: Any, kind: str | None = None) -> None:
    """Write ``data`` as indented, strictly valid JSON, atomically.

    Non-finite numbers (NaN, infinity: not JSON) are written as null, and a record (a JSON object) then lists
    them under :data:`NON_FINITE_KEY` (e.g. ``["history[2].train_loss=nan"]``) so that a null is never mistaken
    for a missing value. ``kind``: see :func:`atomic_path`.
    """
    found: list[str] = []
    data = _without_non_finite(data, "", found)
    if found:
        if not isinstance(data, dict):
            raise OutputError(f"{path}: non-finite number(s) {found} cannot be written as JSON")
        data[NON_FINITE_KEY] = found
    text = json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=False)
    with atomic_path(path, kind) as tmp:
        tmp.write_text(text + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path, kind: str, known: Collection[str] = ()) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``path``; on success it replaces ``path`` as a whole.

    The new directory carries :data:`MARKER_FILE` for ``kind``. An existing ``path`` is replaced only when it is
    maskbench's output of the same ``kind`` (:func:`check_output_directory`); leftovers of killed writes of
    ``path`` are removed first.
    """
    path = Path(path)
    check_output_directory(path, kind, known)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path, directories=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        (tmp / MARKER_FILE).write_text(json.dumps({"kind": kind, "writer": "maskbench"}) + "\n")
        yield tmp
        check_output_directory(path, kind, known)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _is_json_record(path: Path, keys: Collection[str]) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and set(keys) <= set(data)


def _is_jsonl_of(path: Path, keys: Collection[str]) -> bool:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return all(isinstance(r, dict) and set(r) == set(keys) for r in records)


def _is_safetensors_with_prefixes(path: Path, prefixes: tuple[str, ...]) -> bool:
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size < 1 << 24:
                return False
            header = json.loads(handle.read(size))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    names = [name for name in header if name != "__metadata__"] if isinstance(header, dict) else []
    return bool(names) and all(name.startswith(prefixes) for name in names)


#: recognisers of maskbench's own output files, by kind (an existing file is replaced only when it matches)
FILE_KINDS: dict[str, Callable[[Path], bool]] = {
    "metrics": lambda path: _is_json_record(path, ("config_hash", "task", "method")),
    "predictions": lambda path: _is_safetensors_with_prefixes(path, ("dev_", "test_")),
    "predict-output": lambda path: _is_jsonl_of(path, ("task", "label", "probabilities")),
    "download-manifest": lambda path: _is_json_record(path, ("models", "tasks", "hub_offline")),
    "run-log": lambda path: _starts_with(path, b"# Finished runs ("),
}


def _starts_with(path: Path, prefix: bytes) -> bool:
    """Whether the file ``path`` begins with ``prefix`` (a text output's own heading)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(prefix)) == prefix
    except OSError:
        return False


def read_json_file(path: str | Path, error: type[Exception], expected: str) -> Any:
    """A JSON file maskbench wrote, or ``error`` naming the file: missing (``expected`` says what should be
    there) or not valid JSON."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: missing; expected {expected}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as failure:
        raise error(f"{path}: not valid JSON ({failure})") from None
