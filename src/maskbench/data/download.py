"""The download stage: fetch every model, tokenizer and task data set a configuration needs, once, so that the jobs
that use them can run without internet access (compute nodes of many clusters have none).

Hub models are fetched into the Hugging Face hub cache with :func:`huggingface_hub.snapshot_download`, hub data
sets into the ``datasets`` cache with :func:`datasets.load_dataset`; local models and tasks whose original files
are in the data directory are only checked. The caches are those of the environment, or ``<cache_dir>/hub`` and
``<cache_dir>/datasets`` (:func:`maskbench.io.locations.cache_environment`, the variables the workflow gives its
jobs). A manifest records what was resolved to where. Whatever cannot be fetched is reported in one
:class:`~maskbench.io.errors.MaskbenchError` naming each model or task and what is expected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from maskbench.io.errors import ConfigError, DataError, MaskbenchError
from maskbench.io.fileio import check_output_file, write_json
from maskbench.io.locations import is_local_model, resolve_data_dir, resolve_model

#: fileio.FILE_KINDS: the manifest written by :func:`download`
MANIFEST_KIND = "download-manifest"
#: weights for other frameworks and runtimes that transformers' PyTorch models never read
FOREIGN_FILES = ("*.h5", "*.msgpack", "*.ot", "*.onnx", "*.onnx_data", "*.tflite", "*.mlmodel", "*.gguf",
                 "onnx/*", "openvino/*", "coreml/*")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _offline_hint() -> str:
    if _hub_offline():
        return ("the hub is switched off here (HF_HUB_OFFLINE=1): run the download stage where the hub is "
                "reachable, with the same cache")
    return "check the name and the host's internet access (or fill the cache elsewhere and copy it)"


def _cached_files(name: str, cache: Path | None) -> list[str]:
    """The files of ``name``'s cached snapshot (main revision), if any."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(name, "config.json", cache_dir=cache)
    if not isinstance(config, str):
        return []
    snapshot = Path(config).parent
    return [str(path.relative_to(snapshot)) for path in snapshot.rglob("*") if path.is_file()]


def _repo_files(name: str, cache: Path | None) -> list[str]:
    """The files of hub model ``name``: listed by the hub, or (offline) those of its cached snapshot."""
    if not _hub_offline():
        from huggingface_hub import HfApi

        try:
            return list(HfApi().list_repo_files(name))
        except Exception:  # noqa: BLE001  (unreachable, unknown or gated: snapshot_download reports it)
            pass
    return _cached_files(name, cache)


def ignore_patterns(files: Sequence[str]) -> list[str]:
    """Files of a model repository that are not fetched: other frameworks' weights, and the PyTorch pickles
    (``*.bin``) where safetensors weights exist (transformers reads those)."""
    patterns = list(FOREIGN_FILES)
    if any(name.endswith(".safetensors") for name in files):
        patterns.append("*.bin")
    return patterns


def fetch_model(name: str, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Check a local model (the offline model, a directory) or fetch a hub model with its tokenizer into the cache.

    Raises :class:`ConfigError` naming the model when it cannot be found or fetched.
    """
    path = resolve_model(name)
    if is_local_model(name):
        local = Path(path)
        if not (local / "config.json").is_file():
            raise ConfigError(f"model {name!r}: {local} has no config.json (expected a directory written by "
                              f"save_pretrained, or a hub id)")
        return {"source": "local", "path": str(local.resolve())}
    from huggingface_hub import constants, snapshot_download

    cache = Path(cache_dir) / "hub" if cache_dir is not None else None
    where = cache or Path(constants.HF_HUB_CACHE)
    try:
        ignored = ignore_patterns(_repo_files(name, cache))
        snapshot = Path(snapshot_download(name, cache_dir=cache, ignore_patterns=ignored))
    except Exception as error:  # noqa: BLE001  (network, unknown repo, gated, incomplete cache, ...)
        raise ConfigError(f"model {name!r}: cannot fetch it from the Hugging Face hub into {where} "
                          f"({_first_line(error)}); {_offline_hint()}") from None
    files = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file())
    if "config.json" not in files:
        raise ConfigError(f"model {name!r}: the hub snapshot {snapshot} has no config.json; expected a "
                          f"transformers model")
    return {"source": "hub", "path": str(snapshot), "revision": snapshot.name, "cache": str(where),
            "files": files, "bytes": sum((snapshot / f).stat().st_size for f in files)}


def fetch_task(name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Check a task's local files, or fetch its hub data set into the ``datasets`` cache — the source
    :func:`maskbench.data.tasks.load` reads it from, with the same ``data_dir``.

    Raises :class:`DataError` naming the task when its data can be neither found nor fetched.
    """
    from maskbench.data.tasks import registry

    spec = registry.get_task(name)
    task_dir = registry.local_task_dir(spec, data_dir)
    if task_dir is not None:
        files = [path for path in task_dir.rglob("*") if path.is_file()]
        if not files:
            raise DataError(f"task {name!r}: {task_dir} holds no files; expected the task's original files")
        return {"source": "local", "path": str(task_dir.resolve()), "files": len(files),
                "bytes": sum(path.stat().st_size for path in files)}
    hub = registry.hub_source(spec, data_dir)
    import datasets

    cache = Path(cache_dir) / "datasets" if cache_dir is not None else None
    where = cache or Path(datasets.config.HF_DATASETS_CACHE)
    try:
        raw = datasets.load_dataset(hub.path, hub.name, cache_dir=str(cache) if cache is not None else None)
    except Exception as error:  # noqa: BLE001  (the hub client raises many types)
        raise DataError(f"task {name!r}: cannot fetch {hub.path!r} ({hub.name or 'default'}) from the Hugging Face "
                        f"hub into {where} ({_first_line(error)}); {_offline_hint()}, or put the original files "
                        f"under $MASKBENCH_DATA_DIR/{spec.local_dir}/") from None
    missing = [split for split in hub.splits.values() if split not in raw]
    if missing:
        raise DataError(f"task {name!r}: hub dataset {hub.path!r} has no split(s) {missing}")
    return {"source": "hub", "dataset": hub.path, "config": hub.name, "cache": str(where),
            "rows": {split: raw[split].num_rows for split in hub.splits.values()}}


def _versions() -> dict[str, str]:
    found = {}
    for package in ("maskbench", "huggingface_hub", "datasets", "transformers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def download(models: Sequence[str], tasks: Sequence[str], out: str | Path, data_dir: str | Path | None = None,
             cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Fetch or check every model and task, then write the manifest ``out`` (JSON, atomically) and return it.

    ``data_dir`` is passed on to :func:`fetch_task` (None: ``$MASKBENCH_DATA_DIR``, else the hub); ``cache_dir``
    None uses the Hugging Face caches of the environment. Every model and task is tried; those that fail are
    reported together in one error (nothing is written then).
    """
    check_output_file(out, MANIFEST_KIND)  # before any work
    models, tasks = list(dict.fromkeys(models)), list(dict.fromkeys(tasks))
    errors: list[MaskbenchError] = []
    records: dict[str, dict[str, Any]] = {"models": {}, "tasks": {}}
    for kind, names, fetch in (("models", models, lambda n: fetch_model(n, cache_dir)),
                               ("tasks", tasks, lambda n: fetch_task(n, data_dir, cache_dir))):
        for name in names:
            try:
                records[kind][name] = fetch(name)
            except MaskbenchError as error:
                errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise type(errors[0])(f"{len(errors)} of {len(models) + len(tasks)} downloads failed: "
                              + "; ".join(str(error) for error in errors))
    root = resolve_data_dir(data_dir)
    manifest = {**records, "data_dir": os.path.abspath(root) if root is not None else None,
                "cache_dir": os.path.abspath(Path(cache_dir).expanduser()) if cache_dir is not None else None,
                "hub_offline": _hub_offline(), "versions": _versions()}
    write_json(out, manifest, MANIFEST_KIND)
    return manifest


__all__ = ["FOREIGN_FILES", "MANIFEST_KIND", "download", "fetch_model", "fetch_task", "ignore_patterns"]
