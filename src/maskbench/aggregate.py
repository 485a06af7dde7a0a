"""Combining training runs: mean ± std over seeds, a check that the runs share one setting, artefact sizes.

A run's ``config_hash`` covers everything that determines its numbers, seed and lr included, so runs that belong
together (the seeds of one lr, the lrs of one grid) have different hashes. :func:`setting_hash` hashes the same
configuration without the keys that are meant to vary; runs that are combined must agree on it, otherwise the
combination is refused with a message naming the runs (e.g. a stale run left from an earlier configuration).
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.errors import ConfigError, DataError
from maskbench.fileio import write_json
from maskbench.settings import NON_RESULT_KEYS, config_hash, result_key

BYTES_PER_MB = 1_000_000  # the paper's units: KB = 1,000 bytes, MB = 1,000,000 bytes


def load_runs(metrics_paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read runs' ``metrics.json`` files (a clear error for a missing or unreadable one)."""
    records = []
    for path in metrics_paths:
        path = Path(path)
        try:
            records.append(json.loads(path.read_text()))
        except FileNotFoundError:
            raise DataError(f"{path}: missing; expected a run's metrics.json") from None
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from None
    return records


def setting_hash(metrics: Mapping[str, Any], vary: Sequence[str] = ("seed",)) -> str:
    """Hash of a run's result-determining configuration without the keys in ``vary``."""
    config = result_key(metrics["config"])
    for key in vary:
        config.pop(key, None)
    return config_hash(config)


def check_same_setting(records: Sequence[Mapping[str, Any]], vary: Sequence[str],
                       paths: Sequence[str | Path] | None = None) -> str:
    """The common :func:`setting_hash` of ``records``; raises :class:`ConfigError` naming the odd runs out."""
    if not records:
        raise ConfigError("no runs to combine")
    names = [str(p) for p in paths] if paths is not None else [f"run {i}" for i in range(len(records))]
    hashes = [setting_hash(r, vary) for r in records]
    if len(set(hashes)) > 1:
        groups: dict[str, list[str]] = {}
        for name, value in zip(names, hashes):
            groups.setdefault(value, []).append(name)
        detail = "; ".join(f"{value}: {', '.join(members)}" for value, members in groups.items())
        raise ConfigError(f"refusing to combine runs of different configurations (only {', '.join(vary)} may "
                          f"differ); configuration hashes: {detail}")
    return hashes[0]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (numpy's default, ddof=0) of the seeds' scores."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std())


# --- artefact sizes ---------------------------------------------------------------------------------------


def safetensors_summary(path: str | Path) -> dict[str, int]:
    """Bytes on disk and number of stored values of a safetensors file, read from its header (no tensors loaded)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable safetensors file ({error})") from None
    values = sum(int(np.prod(entry["shape"])) for name, entry in header.items() if name != "__metadata__")
    return {"bytes": path.stat().st_size, "values": values, "tensors": len(header) - ("__metadata__" in header)}


def mask_artefact_sizes(mask_dir: str | Path) -> dict[str, int]:
    """Sizes of a saved mask directory: mask bits (one per masked weight), their file, and the head's file."""
    mask_dir = Path(mask_dir)
    description_path = mask_dir / "mask_config.json"
    if not description_path.is_file():
        raise DataError(f"{description_path}: missing; expected the masks saved by a masking run")
    description = json.loads(description_path.read_text())
    mask_bits = sum(int(np.prod(shape)) for shape in description["layers"].values())
    masks = safetensors_summary(mask_dir / "masks.safetensors")
    head = safetensors_summary(mask_dir / "head.safetensors")
    return {"mask_bits": mask_bits, "mask_bytes": masks["bytes"], "head_parameters": head["values"],
            "head_bytes": head["bytes"],
            "config_bytes": description_path.stat().st_size}


def mask_bytes_by_format(mask_dir: str | Path) -> dict[str, int]:
    """Bytes of the masks file in every mask format (the run's file, and the others written to a scratch file)."""
    from safetensors.torch import save_file

    from maskbench.masking.serialization import MASKS_FILE, read_mask_description, read_masks
    from maskbench.storage import MASK_FORMATS, to_stored

    mask_dir = Path(mask_dir)
    description = read_mask_description(mask_dir)
    stored_format = description.get("mask_format", MASK_FORMATS[0])
    sizes = {stored_format: (mask_dir / MASKS_FILE).stat().st_size}
    masks = None
    for mask_format in MASK_FORMATS:
        if mask_format in sizes:
            continue
        masks = masks if masks is not None else read_masks(mask_dir, description)[0]
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / MASKS_FILE
            save_file({name: to_stored(mask, mask_format) for name, mask in masks.items()}, path,
                      metadata={"format": mask_format})
            sizes[mask_format] = path.stat().st_size
    return {mask_format: sizes[mask_format] for mask_format in MASK_FORMATS}


def method_artefact_sizes(run_dir: str | Path, method: str) -> dict[str, int]:
    """Values and bytes of the tensor files of a LoRA, IA3 or BitFit run's artefact (the adapter includes the head)."""
    from maskbench.methods import get_method

    method_ = get_method(method)
    directory = Path(run_dir) / method_.artefact
    summaries = []
    for name in method_.tensor_files:
        if not (directory / name).is_file():
            raise DataError(f"{directory / name}: missing; expected the artefact saved by a {method} run")
        summaries.append(safetensors_summary(directory / name))
    return {"task_parameters": sum(s["values"] for s in summaries), "task_bytes": sum(s["bytes"] for s in summaries)}


def reference_model_sizes(model: str, task: str, scratch: str | Path) -> dict[str, Any]:
    """Save ``model`` with ``task``'s head as finetuning does (``save_pretrained``) and its encoder alone (the copy
    that masking shares across tasks) under ``scratch``, measure both files, and delete them again.

    A finetuned model has exactly these tensors (only their values differ), so the file sizes are those of the
    finetuned artefacts without keeping a full model per run.
    """
    from maskbench import tasks
    from maskbench.models import load_model

    spec = tasks.get_task(task)
    network = load_model(model, spec.kind, spec.label_names)
    prefix = network.base_model_prefix + "."
    parameters = dict(network.named_parameters())
    encoder = sum(p.numel() for name, p in parameters.items() if name.startswith(prefix))
    Path(scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".reference.", dir=scratch) as tmp:
        network.save_pretrained(Path(tmp) / "finetuned")
        network.base_model.save_pretrained(Path(tmp) / "pretrained")
        finetuned = safetensors_summary(Path(tmp) / "finetuned" / "model.safetensors")
        pretrained = safetensors_summary(Path(tmp) / "pretrained" / "model.safetensors")
    return {"model": model, "task": task, "kind": spec.kind, "num_labels": len(spec.label_names),
            "pretrained_parameters": encoder, "pretrained_bytes": pretrained["bytes"],
            "head_parameters": sum(p.numel() for p in parameters.values()) - encoder,
            "finetuned_parameters": finetuned["values"], "finetuned_bytes": finetuned["bytes"]}


def write_reference_sizes(model: str, task: str, out: str | Path) -> dict[str, Any]:
    """Workflow step: :func:`reference_model_sizes` to ``out`` (JSON); the model files are removed again."""
    out = Path(out)
    sizes = reference_model_sizes(model, task, out.parent)
    write_json(out, sizes)
    return sizes


# --- aggregation over seeds -------------------------------------------------------------------------------


def _same(records: Sequence[Mapping[str, Any]], key: str, paths: Sequence[str]) -> Any:
    values = [json.dumps(r.get(key), sort_keys=True) for r in records]
    if len(set(values)) > 1:
        raise ConfigError(f"runs disagree on {key!r}: " + "; ".join(f"{p}: {v}" for p, v in zip(paths, values)))
    return records[0].get(key)


def aggregate_runs(records: Sequence[Mapping[str, Any]], paths: Sequence[str | Path]) -> dict[str, Any]:
    """Mean ± std over the seeds of one (model, task, method, lr): dev and, where labelled, test scores.

    Refuses runs of different settings (see :func:`check_same_setting`) and runs that disagree on data sizes.
    """
    paths = [str(p) for p in paths]
    setting = check_same_setting(records, vary=("seed",), paths=paths)
    seeds = [int(r["seed"]) for r in records]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"the same seed appears twice among {paths}")
    order = np.argsort(seeds)
    records = [records[i] for i in order]
    paths = [paths[i] for i in order]
    dev_mean, dev_std = mean_std([r["dev_score"] for r in records])
    tests = [r["test_score"] for r in records]
    if any(t is None for t in tests) and not all(t is None for t in tests):
        raise ConfigError(f"only some runs have a test score: {paths}")
    test = None
    if tests and tests[0] is not None:
        mean, std = mean_std(tests)
        test = {"scores": tests, "mean": mean, "std": std}
    artefacts = {}
    for path, record in zip(paths, records):
        mask_dir = Path(path).parent / "masks"
        if record["method"] == "masking":
            artefacts[str(record["seed"])] = {**mask_artefact_sizes(mask_dir),
                                              "mask_bytes_by_format": mask_bytes_by_format(mask_dir)}
        elif record["method"] in ("lora", "bitfit", "ia3"):
            artefacts[str(record["seed"])] = method_artefact_sizes(Path(path).parent, record["method"])
    first = records[0]
    return {
        "task": first["task"], "method": first["method"], "model": first["model"], "metric": first["metric"],
        "kind": first["kind"], "lr": first["lr"], "seeds": sorted(seeds),
        "dev": {"scores": [r["dev_score"] for r in records], "mean": dev_mean, "std": dev_std},
        "test": test,
        "best_epochs": [r["best_epoch"] for r in records], "epochs_run": [r["epochs_run"] for r in records],
        "train_time_s": [r["train_time_s"] for r in records],
        "trainable_parameters": _same(records, "trainable_parameters", paths),
        "sizes": _same(records, "sizes", paths), "word_counts": _same(records, "word_counts", paths),
        "sparsity": [r["sparsity"] for r in records],
        "artefacts": artefacts or None,
        "setting_hash": setting, "config_hashes": [r["config_hash"] for r in records],
        "config": {k: v for k, v in first["config"].items() if k not in (*NON_RESULT_KEYS, "seed")},
        "versions": first["versions"], "devices": sorted({r["device"] for r in records}), "runs": paths,
    }


def write_aggregate(metrics_paths: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Workflow step: :func:`aggregate_runs` of the given ``metrics.json`` files to ``out`` (JSON)."""
    result = aggregate_runs(load_runs(metrics_paths), metrics_paths)
    write_json(out, result)
    return result
