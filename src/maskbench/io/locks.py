"""One writer per output: an exclusive lock on a run folder, prepared folder, prediction file or workflow
``results_dir`` for as long as a process writes it.

The lock of an output ``DIR/NAME`` is the file ``DIR/.NAME.lock`` (``filelock``, i.e. ``flock``: released by the
kernel when its holder exits or crashes), next to the output, not inside it: a run folder holds only a run's own
entries (:func:`maskbench.records.check_run_directory`) and a prepared folder is replaced as a whole
(:func:`maskbench.io.fileio.atomic_directory`). ``flock`` records no holder, so the holder writes
``DIR/.NAME.lock.holder`` (JSON: pid, host, command, since, and for a workflow its token) after acquiring, and a
refused process names it. Both files are removed on release, while the lock is still held (a process that locked
the unlinked file meanwhile sees it unlinked and fails, as ``filelock`` checks): outputs gain no leftovers, and
committed results no untracked files (.gitignore ignores ``.*.lock`` and ``.*.lock.holder`` anyway, for crashes).

Paths are resolved (symbolic links followed) first: two names of one folder share one lock.

The workflow's main process holds the lock of its ``results_dir`` for its lifetime (:func:`hold_results_dir`) and
hands a token to its jobs in :data:`TOKEN_ENV`. Every output lock checks the folders above its output: inside a
folder that another process holds (a workflow's ``results_dir``, a run folder), it is refused unless the holder's
token is the process's own (a job of that workflow). A workflow, for its part, is refused while a process it did
not start holds an output inside its ``results_dir``. Each side acquires before it checks the other, so of two
processes that start together at least one sees the other.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import json
import os
import secrets
import shlex
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from filelock import FileLock, Timeout

from maskbench.io.errors import OutputError

#: set by a workflow's main process for its jobs: the token recorded in its ``results_dir`` lock's holder file
TOKEN_ENV = "MASKBENCH_WORKFLOW_TOKEN"
LOCK_SUFFIX = ".lock"
HOLDER_SUFFIX = ".lock.holder"
#: how long an acquisition waits: long enough for another process's probe of the lock (:func:`_is_held`, a few
#: microseconds), short enough to refuse at once for a user
GRACE_S = 0.5

F = TypeVar("F", bound=Callable[..., Any])


class OutputInUse(OutputError):
    """An output (or a folder it lies in) is held by another maskbench process."""


def _resolved(path: str | Path) -> Path:
    return Path(os.path.realpath(path))  # no ~ expansion: a literal '~' is the folder written


def lock_file(path: str | Path) -> Path:
    """The lock file of the output ``path`` (resolved): the hidden sibling ``.NAME.lock``."""
    path = _resolved(path)
    if not path.name:  # the file system's root
        return path / f".maskbench{LOCK_SUFFIX}"
    return path.with_name(f".{path.name}{LOCK_SUFFIX}")


def holder_file(path: str | Path) -> Path:
    """Where the holder of ``path``'s lock describes itself (next to :func:`lock_file`)."""
    lock = lock_file(path)
    return lock.with_name(lock.name[: -len(LOCK_SUFFIX)] + HOLDER_SUFFIX)


def _command() -> str:
    """This process's command line, for a refused process's message (``maskbench train ...``)."""
    argv = list(sys.argv) or ["python"]
    if argv[0] == "-c":
        argv = ["python", *argv]
    name = Path(argv[0]).name
    if name in ("__main__.py", "cli.py"):  # python -m maskbench.cli / -m snakemake / -m pytest
        name = "maskbench" if Path(argv[0]).parent.name == "maskbench" else Path(argv[0]).parent.name
    text = shlex.join([name, *argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."


def read_holder(path: str | Path, wait_s: float = 1.0) -> dict[str, Any] | None:
    """The holder record of ``path``'s lock; None when there is none (waits up to ``wait_s`` for a holder that
    has just acquired and not yet written it)."""
    holder = holder_file(path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            record = json.loads(holder.read_text())
            if isinstance(record, dict):
                return record
        except (OSError, UnicodeDecodeError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def describe_holder(record: dict[str, Any] | None) -> str:
    """``pid 1234 on host h, 'maskbench train ...', since 2024-05-01T12:00:00+02:00``."""
    if not record:
        return "its holder did not record itself"
    return (f"pid {record.get('pid')} on host {record.get('host')}, {record.get('command')!r}, "
            f"since {record.get('since')}")


def _is_held(lock: Path) -> bool:
    """Whether another process holds ``lock`` (a shared ``flock`` probe, released at once); False when it does
    not exist."""
    try:
        import fcntl
    except ImportError:  # no flock: an existing lock file counts as held
        return lock.exists()
    try:
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a probe that succeeded
    return False


def _can_open(lock: Path) -> bool:
    """Whether the lock file can be opened (created where missing) for writing."""
    try:
        os.close(os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644))
    except OSError:
        return False
    return True


class OutputLock:
    """The exclusive lock of one output; :meth:`acquire` refuses (:class:`OutputInUse`) instead of waiting.

    Re-entrant within a process: the CLI and the library function it calls may both hold it.
    """

    _held: dict[Path, "OutputLock"] = {}  # lock file -> the lock this process holds on it

    def __init__(self, path: str | Path, token: str | None = None) -> None:
        self.path = Path(path)
        self.lock_path = lock_file(path)
        self.holder_path = holder_file(path)
        self.token = token
        self._lock: FileLock | None = None
        self._outer: OutputLock | None = None  # the lock this process already held when this one was acquired
        self._depth = 0
        self._created: list[Path] = []

    def acquire(self) -> "OutputLock":
        """Take the lock (or count once more on the one this process holds) and record the holder."""
        held = OutputLock._held.get(self.lock_path)
        if held is not None:
            held._depth += 1
            self._outer = held
            return self
        self._make_parent()
        lock = FileLock(str(self.lock_path), timeout=GRACE_S)
        for _ in range(5):  # a holder that lets go just after the wait timed out: try again
            try:
                lock.acquire()
                break
            except Timeout:
                if _is_held(self.lock_path):
                    self._remove_created()
                    raise OutputInUse(f"{self.path}: in use by another maskbench process "
                                      f"({describe_holder(read_holder(self.path))})") from None
                if not _can_open(self.lock_path):
                    self._remove_created()
                    raise OutputError(f"{self.path}: cannot create or open its lock file {self.lock_path}") from None
            except OSError as error:
                self._remove_created()
                raise OutputError(f"{self.path}: cannot create its lock file {self.lock_path} "
                                  f"({error.strerror or error})") from None
        else:
            self._remove_created()
            raise OutputInUse(f"{self.path}: in use by other maskbench processes, taken and released in turn")
        self._lock, self._depth = lock, 1
        OutputLock._held[self.lock_path] = self
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                  "since": datetime.now().astimezone().isoformat(timespec="seconds"), "token": self.token}
        try:
            self.holder_path.write_text(json.dumps(record) + "\n")
        except OSError:
            pass  # the lock holds without it; a refused process then says that the holder did not record itself
        return self

    def release(self) -> None:
        """Release (the outermost holder removes the holder record and the lock file first)."""
        if self._outer is not None:
            outer, self._outer = self._outer, None
            outer.release()
            return
        if self._lock is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        OutputLock._held.pop(self.lock_path, None)
        for path in (self.holder_path, self.lock_path):  # while still held: see the module docstring
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self._lock.release()
        self._lock = None
        self._remove_created()

    def _make_parent(self) -> None:
        """Create the lock's folder (the output's parent) where missing, remembering what was created, after the
        checks of :func:`maskbench.io.fileio.check_writable_parent` (their messages); refuse an unwritable one."""
        from maskbench.io.fileio import check_writable_parent, is_writable_directory

        parent = self.lock_path.parent
        if parent.is_dir():
            if is_writable_directory(parent):
                return
            if not os.path.lexists(self.path):
                check_writable_parent(self.path)  # its message: the output cannot be created
            raise OutputError(f"{self.path}: cannot hold it, directory {parent} is not writable (maskbench keeps "
                              f"a lock file next to each output while it writes)")
        check_writable_parent(self.path)
        missing = []
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        try:
            for directory in reversed(missing):
                directory.mkdir()
                self._created.append(directory)
        except OSError as error:
            self._remove_created()
            raise OutputError(f"{self.path}: cannot create the folder {self.lock_path.parent} "
                              f"({error.strerror or error})") from None

    def _remove_created(self) -> None:
        """Remove the folders :meth:`_make_parent` created, where still empty (a refused run leaves nothing)."""
        for directory in reversed(self._created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        self._created = []

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_enclosing(path: str | Path, token: str | None = None) -> None:
    """Raise :class:`OutputInUse` when a folder above ``path`` is held by another process, unless its holder's
    token is ``token`` (default: this process's :data:`TOKEN_ENV`, i.e. the workflow whose job this is)."""
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    for folder in _resolved(path).parents:
        lock = lock_file(folder)
        if not lock.exists() or lock in OutputLock._held:
            continue
        holder = read_holder(folder, wait_s=0)
        if token and holder and holder.get("token") == token:
            continue  # held by the workflow this process is a job of
        if not _is_held(lock):
            continue  # left by a killed holder
        holder = holder or read_holder(folder)  # a holder that has just acquired writes it next
        if not (token and holder and holder.get("token") == token):
            raise OutputInUse(f"{path}: inside {folder}, which is in use by another maskbench process "
                              f"({describe_holder(holder)})")


@contextlib.contextmanager
def hold_output(path: str | Path | None) -> Iterator[None]:
    """Hold the lock of the output ``path`` (nothing for None) for the ``with`` block; refused when another
    process holds it or a folder above it (:func:`check_enclosing`)."""
    if path is None:
        yield
        return
    with OutputLock(path):
        check_enclosing(path)  # after acquiring: see the module docstring
        yield


def holds_output(argument: str, get: Callable[[Any], str | Path | None] | None = None) -> Callable[[F], F]:
    """Decorator: the function holds the lock of its output (:func:`hold_output`) while it runs; the output is its
    parameter ``argument`` (or ``get`` of it, e.g. ``config.out``)."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                value = signature.bind(*args, **kwargs).arguments.get(argument)
            except TypeError:
                return function(*args, **kwargs)  # its own error
            with hold_output(get(value) if get is not None and value is not None else value):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def held_outputs_inside(folder: str | Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """Outputs inside ``folder`` whose lock another process holds, with their holder records."""
    found = []
    for directory, subdirectories, files in os.walk(_resolved(folder)):
        for name in files:
            if name.startswith(".") and name.endswith(LOCK_SUFFIX) and len(name) > len(LOCK_SUFFIX) + 1:
                lock = Path(directory) / name
                if lock not in OutputLock._held and _is_held(lock):
                    output = lock.with_name(name[1: -len(LOCK_SUFFIX)])
                    found.append((output, read_holder(output)))
    return found


_WORKFLOW_LOCKS: dict[Path, tuple[OutputLock, str]] = {}


def hold_results_dir(results_dir: str | Path) -> str:
    """Hold the lock of a workflow's ``results_dir`` until this process exits, and return its token (also set
    in :data:`TOKEN_ENV`, for the workflow's jobs). Refused (:class:`OutputInUse`, naming the holder) when another
    process holds it, a folder above it, or an output inside it."""
    key = _resolved(results_dir)
    if key in _WORKFLOW_LOCKS:
        return _WORKFLOW_LOCKS[key][1]
    token = secrets.token_hex(16)
    lock = OutputLock(results_dir, token=token).acquire()
    try:
        check_enclosing(results_dir, token=token)
        busy = held_outputs_inside(results_dir)
        if busy:
            output, holder = busy[0]
            more = f" (and {len(busy) - 1} more)" if len(busy) > 1 else ""
            raise OutputInUse(f"{results_dir}: {output}{more} is in use by another maskbench process "
                              f"({describe_holder(holder)}); wait for it to finish or use another 'results_dir'")
    except BaseException:
        lock.release()
        raise
    _WORKFLOW_LOCKS[key] = (lock, token)
    os.environ[TOKEN_ENV] = token
    atexit.register(lock.release)
    return token


__all__ = ["GRACE_S", "HOLDER_SUFFIX", "LOCK_SUFFIX", "TOKEN_ENV", "OutputInUse", "OutputLock", "check_enclosing",
           "describe_holder", "held_outputs_inside", "hold_output", "hold_results_dir", "holder_file",
           "holds_output", "lock_file", "read_holder"]
