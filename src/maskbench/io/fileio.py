"""Atomic file writing and checksums: a killed process never leaves a half-written output behind.

Atomic replacement only ever replaces maskbench's own earlier output of the same kind: a directory written by
:func:`atomic_directory` carries a small marker file (:data:`MARKER_FILE`, ``{"kind": ...}``); an existing
directory without it is replaced only when it is empty or holds nothing but the files that kind of output consists
of (outputs written before the marker existed). Files are recognised by their contents (``kind`` recognisers in
:data:`FILE_KINDS`). Anything else is refused with :class:`~maskbench.io.errors.OutputError`. Temporary siblings left
by a killed write (``.NAME.*.tmp``) are removed by the next write of the same path.

Environment faults while writing (disk full, quota, read-only file system, permissions, a symbolic link loop) end
as one :class:`~maskbench.io.errors.OutputError` naming the output path (:func:`write_faults_reported`), and every
temporary file or folder of the write is removed, also on KeyboardInterrupt. What is written follows the umask
(:func:`current_umask`): ``tempfile`` creates 0600 files and 0700 folders, which ``os.replace`` would keep.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import numbers
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from maskbench.io.errors import MaskbenchError, OutputError

#: marker file in every directory written by :func:`atomic_directory`: JSON ``{"kind": ..., "writer": "maskbench"}``
MARKER_FILE = ".maskbench-output.json"


#: errno values that say the environment refused a write (not a bug): reported in one line naming the output
WRITE_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ELOOP,
                          errno.EFBIG, errno.EIO, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EMLINK})
#: what to do about a fault, by errno
_FAULT_HINTS = {
    errno.ENOSPC: "free space on its file system (df -h) and run again",
    errno.EDQUOT: "the disk quota is exhausted; free space (quota -s) and run again",
    errno.EROFS: "the file system is mounted read-only; choose another path",
    errno.EACCES: "no permission to write there; choose another path",
    errno.EPERM: "the operation is not permitted there; choose another path",
    errno.ELOOP: "a symbolic link in the path points back to itself; fix the link or choose another path",
    errno.EFBIG: "the file is larger than this file system allows",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def fault_errno(error: BaseException) -> int | None:
    """The errno of an environment fault: an OSError's, or the OS error code that a library (safetensors,
    pyarrow) wrote into its message (``(os error 28)``, ``[Errno 28]``); None when there is none."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    found = re.search(r"\(os error (\d+)\)|\[Errno (\d+)\]", str(error))
    return int(found.group(1) or found.group(2)) if found else None


def describe_fault(number: int) -> str:
    """``"no space left on device (ENOSPC; free space ...)"``: the OS's text for ``number``, its name and a hint."""
    text = os.strerror(number)
    text = text[:1].lower() + text[1:]
    name = errno.errorcode.get(number, f"errno {number}")
    hint = _FAULT_HINTS.get(number)
    return f"{text} ({name}{'; ' + hint if hint else ''})"


@contextlib.contextmanager
def write_faults_reported(path: str | Path) -> Iterator[None]:
    """Turn an environment fault (:data:`WRITE_FAULTS`, from an OSError or a library's error naming its errno)
    raised inside into one :class:`OutputError` naming ``path``; anything else passes unchanged."""
    try:
        yield
    except MaskbenchError:
        raise
    except Exception as error:
        number = fault_errno(error)
        if number not in WRITE_FAULTS:
            raise
        raise OutputError(f"{path}: cannot be written: {describe_fault(number)}") from None


def current_umask() -> int:
    """The process's umask, read without changing it (``/proc/self/status``, thread-safe on Linux); elsewhere
    set and restored at once (``os.umask`` is the only portable way, and is process-global)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path, directory: bool = False) -> None:
    """Give ``path`` (a file or folder ``tempfile`` created private) the mode a plain ``open``/``mkdir`` gives:
    0o666 (files) or 0o777 (folders) less the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def _follow_umask_tree(root: Path) -> None:
    """:func:`follow_umask` for ``root`` and everything in it (links left alone): writers such as safetensors
    create their files 0600 whatever the umask."""
    follow_umask(root, directory=True)
    for folder, directories, files in os.walk(root):
        for name in directories:
            if not os.path.islink(os.path.join(folder, name)):
                follow_umask(os.path.join(folder, name), directory=True)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                follow_umask(os.path.join(folder, name))


def check_resolvable(path: str | Path) -> None:
    """Raise :class:`OutputError` when ``path`` or one of its ancestors cannot be looked up for another reason
    than not existing (yet) or not being a folder (the callers name that case): a symbolic link loop (ELOOP), no
    permission to search a folder (EACCES), a name too long."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        try:
            os.stat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            where = "" if candidate == path else f", {candidate} cannot be resolved"
            what = describe_fault(error.errno) if error.errno else str(error)
            raise OutputError(f"{path}: cannot be used as an output path{where}: {what}") from None
        return

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
    check_resolvable(path)
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
    check_resolvable(path)
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
    check_resolvable(path)
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
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error (also
    KeyboardInterrupt) removed.

    An existing ``path`` is replaced only when it is maskbench's output of ``kind`` (see :func:`check_output_file`);
    a directory is never replaced. The file gets the mode the umask gives a new file. An environment fault while
    writing is an :class:`OutputError` naming ``path`` (:func:`write_faults_reported`).
    """
    path = Path(path)
    check_output_file(path, kind)
    tmp_path: Path | None = None
    try:
        with write_faults_reported(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_temporaries(path, directories=False)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            tmp_path = Path(tmp)
            os.close(fd)
            yield tmp_path
            follow_umask(tmp_path)  # after the write: a writer may have replaced the file (safetensors: 0600)
            check_output_file(path, kind)
            os.replace(tmp_path, path)
    finally:
        if tmp_path is not None:
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

    The new directory carries :data:`MARKER_FILE` for ``kind`` and gets the mode the umask gives a new folder. An
    existing ``path`` is replaced only when it is maskbench's output of the same ``kind``
    (:func:`check_output_directory`); leftovers of killed writes of ``path`` are removed first. On any error (also
    KeyboardInterrupt) the temporary directory is removed and ``path`` keeps its previous version; an environment
    fault is an :class:`OutputError` naming ``path`` (:func:`write_faults_reported`).
    """
    path = Path(path)
    check_output_directory(path, kind, known)
    old = path.with_name(f".{path.name}.old")
    tmp: Path | None = None
    moved_aside = False  # the previous version is at ``old`` and the new one not yet in place
    try:
        with write_faults_reported(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_temporaries(path, directories=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            (tmp / MARKER_FILE).write_text(json.dumps({"kind": kind, "writer": "maskbench"}) + "\n")
            yield tmp
            _follow_umask_tree(tmp)
            check_output_directory(path, kind, known)
            if path.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                moved_aside = True
                os.replace(tmp, path)
                moved_aside = False
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
    finally:
        if moved_aside and not path.exists():
            os.replace(old, path)  # interrupted between the two renames: the previous version goes back
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

def _is_json_record(path: Path, keys: Collection[str]) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and set(keys) <= set(data)


def _is_jsonl_of(path: Path, keys: Collection[str], optional: Collection[str] = ()) -> bool:
    """Whether every line of ``path`` is a JSON object with exactly ``keys`` (and any of ``optional``)."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return all(isinstance(r, dict) and set(r) - set(optional) == set(keys) for r in records)


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
    "predict-output": lambda path: _is_jsonl_of(path, ("task", "label", "probabilities"), optional=("id",)),
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
