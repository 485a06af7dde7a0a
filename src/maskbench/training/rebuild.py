"""The artefact of a finished run whose record was kept without it, rebuilt by training the run again.

The committed reference results keep each run's record (``metrics.json``, predictions), not its masks, adapter or
weights. The analyses that load a trained model (Figs. 4-7) need the artefact; a run is deterministic on one
machine (same seed, same settings, same data: same numbers), so the artefact is rebuilt by training the run again
with the recorded settings — into a scratch folder beside the run (``.<seed folder>.rebuild``), up to its recorded
best epoch (the artefact is that epoch's state; the learning rate is constant, so the epochs after it change
nothing before it) — and is moved into the run only if the new training *is* the recorded run: the same identity,
the same data, the same dev score at every epoch up to the best one and the same test score. Otherwise nothing is
moved and the error names what differs (e.g. another torch version), so an analysis never silently studies another
model than the one its table reports.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from maskbench.data.fingerprint import DATA_KEY
from maskbench.io.errors import OutputError, RecordError
from maskbench.records import METRICS_FILE, read_run_record, run_directory
from maskbench.training.methods import get_method
from maskbench.training.settings import TrainConfig, config_hash

#: the settings that say where and how a rebuild writes, not what it trains (all outside a run's identity)
_WHERE = ("out", "prepared", "save_weights", "transfer", "transfer_prepared", "report_to")


def artefact_folder(method: str) -> str:
    """The folder of a run of ``method`` that :func:`maskbench.analysis.runs.load_run_model` loads: the method's
    artefact, or finetuning's saved weights."""
    folder = get_method(method).run_folder
    if folder is None:
        raise RecordError(f"a {method} run keeps no artefact that could be rebuilt")
    return folder


def scratch_folder(run_dir: str | Path) -> Path:
    """Where a rebuild trains: beside the run, hidden from the run-folder globs (``seed*``) and never committed."""
    run_dir = run_directory(run_dir)
    return run_dir.parent / f".{run_dir.name}.rebuild"


def rebuild_config(record: dict[str, Any], scratch: Path, prepared: str | None) -> TrainConfig:
    """The recorded run's settings, writing to ``scratch`` and keeping its weights; its identity is checked."""
    method = get_method(record["method"])
    data = dict(record["config"])
    data.update(out=str(scratch), prepared=prepared if prepared is not None else data.get("prepared"),
                save_weights=method.artefact is None, transfer=None, transfer_prepared=None)
    config = TrainConfig.from_dict(data)
    rebuilt = config_hash(config.result_key())
    if rebuilt != record["config_hash"]:
        raise RecordError(f"{record['config']['out']}: its recorded settings give config_hash {rebuilt}, not the "
                          f"recorded {record['config_hash']}; it cannot be retrained as the same run")
    return config


def _differences(record: dict[str, Any], retrained: dict[str, Any]) -> list[str]:
    """What differs between the record and the retrained run (the data: the task's own files; a Table 3 source's
    record also fingerprints its transfer targets, which a rebuild does not score). The retrained run stops at the
    recorded best epoch: its dev scores are compared with the record's up to there."""
    found = []
    recorded, scores, best = record.get("dev_scores") or [], retrained.get("dev_scores") or [], record.get("best_epoch")
    if not isinstance(best, int) or len(scores) < best or scores != recorded[:len(scores)]:  # best >= 1 (a record)
        found.append(f"dev_scores: recorded {recorded!r}, retrained {scores!r}")
    for key in ("best_epoch", "test_score", "config_hash"):
        if record.get(key) != retrained.get(key):
            found.append(f"{key}: recorded {record.get(key)!r}, retrained {retrained.get(key)!r}")
    recorded_data, data = record.get(DATA_KEY) or {}, retrained.get(DATA_KEY) or {}
    changed = sorted(name for name in data if recorded_data.get(name) != data[name])
    if changed or not data:
        found.append(f"{DATA_KEY}: files not as recorded: {changed or 'none recorded'}")
    return found


def rebuild_artefact(run: str, prepared: str | None = None) -> dict[str, Any]:
    """Train the finished run ``run`` (its folder or ``metrics.json``) again with its recorded settings and, when
    the retrained run matches the record epoch by epoch, move its artefact (masks, adapter or ``model/`` weights)
    into the run folder. Returns what was compared. Raises :class:`RecordError` when they differ (the retrained
    run stays in the scratch folder for inspection) and :class:`OutputError` when the artefact is already there."""
    from maskbench.training.train import train  # torch: imported only when a run is retrained

    run_dir = run_directory(run)
    record = read_run_record(run_dir / METRICS_FILE)
    folder = artefact_folder(record["method"])
    target = run_dir / folder
    if target.exists():
        raise OutputError(f"{target}: already there; nothing to rebuild (remove it to rebuild it)")
    scratch = scratch_folder(run_dir)
    config = rebuild_config(record, scratch, prepared)
    finished = scratch / METRICS_FILE
    # the artefact is the best epoch's state: the epochs after it (up to ``patience`` of them) are not retrained
    retrained = (read_run_record(finished) if finished.is_file()
                 else train(config, stop_after_epoch=record["best_epoch"]))
    differences = _differences(record, retrained)
    if differences:
        raise RecordError(f"{run_dir}: retrained with its recorded settings, it is not the recorded run — "
                          + "; ".join(differences)
                          + f" (versions recorded {record.get('versions')}, now {retrained.get('versions')}); "
                          f"its artefact was not moved in; the retrained run is in {scratch}")
    os.replace(scratch / folder, target)  # same file system: the run gets the whole folder or none of it
    shutil.rmtree(scratch)
    summary = {"run": str(run_dir), "artefact": str(target), "dev_scores": record["dev_scores"],
               "best_epoch": record["best_epoch"], "versions_recorded": record.get("versions"),
               "versions_now": retrained.get("versions")}
    print(json.dumps(summary))
    return summary
