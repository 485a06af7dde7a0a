"""Experiment tracking of training runs through the trackers' own libraries (``report_to``).

A run started with ``report_to`` (``--report-to tensorboard,mlflow`` or ``training: {report_to: [...]}``) logs, to
each tracker named:

- its settings (``TrainConfig.to_dict()`` flattened, ``mask.threshold``; plus ``config_hash``) once at the start;
- ``train/loss`` (mean over the last ``logging_steps`` steps) and ``train/lr`` every ``logging_steps`` optimiser
  steps, at the global step (``(epoch - 1) * steps_per_epoch + step``, the same after a resume);
- ``epoch/train_loss``, ``epoch/dev_score`` (the task's metric) and ``epoch/time_s`` (training and dev evaluation)
  after every epoch, at step ``epoch``;
- at the end, the best dev score (``final/dev_score``), the test score where there is one, and peak memory.

Where it goes (everything offline by default, inside the run folder's ``tracking/`` so that the run's lock covers
it and ``tensorboard --logdir results/runs`` finds every run):

- ``tensorboard``: ``torch.utils.tensorboard.SummaryWriter`` event files in ``OUT/tracking/tensorboard``;
- ``mlflow``: ``MlflowClient`` on ``$MLFLOW_TRACKING_URI`` when set (a server, a database), else MLflow's local
  file store ``OUT/tracking/mlruns`` (``mlflow ui --backend-store-uri OUT/tracking/mlruns``); experiment
  ``$MLFLOW_EXPERIMENT_NAME`` or ``maskbench``. MLflow 3 keeps the file store only behind
  ``MLFLOW_ALLOW_FILE_STORE``, which is set for a file store unless the environment says otherwise;
- ``wandb``: ``wandb.init`` in offline mode unless ``WANDB_MODE`` is set (``wandb sync`` uploads it later), in
  ``$WANDB_DIR`` or ``OUT/tracking``; project ``$WANDB_PROJECT`` or ``maskbench``.

A tracker that cannot start stops the run before any training with one line naming it (a missing package: which to
install); one that fails later (a tracking server gone) is reported once and dropped: tracking never ends a run.
A run that fails or is interrupted ends its trackers' runs as failed or killed. A run resumed from its checkpoint
continues in the same TensorBoard folder (its steps go on from the checkpoint) but is a new MLflow / W&B run.
``mlflow ui`` needs the full ``mlflow`` package; ``mlflow-skinny`` (the ``tracking`` extra) is the client.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from maskbench.io.errors import ConfigError

#: the trackers, in the order they are opened
TRACKERS = ("tensorboard", "mlflow", "wandb")
#: the run folder's entry that holds the trackers' local files
TRACKING_DIR = "tracking"
#: the package (and pip requirement) each tracker needs
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny", "wandb": "wandb"}
DEFAULT_PROJECT = "maskbench"


def parse_report_to(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The trackers of a ``report_to`` value: a comma-separated string or a list of names from :data:`TRACKERS`,
    ``all``, or ``none``/empty/None (no tracking). Raises :class:`ConfigError` naming the key otherwise."""
    if value is None:
        return ()
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value):
        names = [name.strip() for name in value]
    else:
        raise ConfigError(f"report_to: expected a comma-separated string or a list of {list(TRACKERS)}, "
                          f"got {value!r}")
    names = [name.lower() for name in names if name]
    if names in ([], ["none"]):
        return ()
    if names == ["all"]:
        return TRACKERS
    unknown = [name for name in names if name not in TRACKERS]
    if unknown or len(set(names)) != len(names):
        raise ConfigError(f"report_to: expected distinct names of {list(TRACKERS)} (or 'all', 'none'), "
                          f"got {value!r}")
    return tuple(name for name in TRACKERS if name in names)


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested settings mapping as one level (``mask.threshold``), values as trackers take them (None as
    ``"none"``)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = "none" if value is None else value
    return flat


def _missing(name: str) -> ConfigError:
    return ConfigError(f"report_to: {name} needs the Python package {PACKAGES[name]!r}, which is not installed: "
                       f"pip install {PACKAGES[name]} (or pip install 'maskbench[tracking]')")


class Tracker:
    """One tracking library: a run with settings, metrics at steps, and an end (``status``: finished/failed)."""

    name = ""

    def log_params(self, params: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def log_metrics(self, metrics: Mapping[str, float], step: int, axis: str) -> None:
        """``axis``: what ``step`` counts, ``"step"`` (optimiser steps) or ``"epoch"``."""
        raise NotImplementedError

    def close(self, final: Mapping[str, float] | None, status: str) -> None:
        """End the run (``status``: finished, failed or killed); ``final``: the run's summary numbers (None when it
        did not finish)."""
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    """Event files through ``torch.utils.tensorboard.SummaryWriter``; the settings as text and, at the end, as
    hyper-parameters with the run's final numbers (TensorBoard's HPARAMS view)."""

    name = "tensorboard"

    def __init__(self, out: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing(self.name) from None
        self.directory = out / TRACKING_DIR / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.directory))
        self.params: dict[str, Any] = {}

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
                       for key, value in params.items()}
        table = "\n".join(f"| {key} | {value} |" for key, value in self.params.items())
        self.writer.add_text("settings", f"| setting | value |\n|---|---|\n{table}")

    def log_metrics(self, metrics: Mapping[str, float], step: int, axis: str) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self, final: Mapping[str, float] | None, status: str) -> None:
        if final:  # in the run's own folder, not a timestamped one
            self.writer.add_hparams(self.params, dict(final), run_name=".")
        self.writer.close()


def _is_file_store(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file") or (len(uri) > 1 and uri[1] == ":")  # a path, or C:\...


class MlflowTracker(Tracker):
    """A run of MLflow's tracking client (``MlflowClient``: no global active run) on ``$MLFLOW_TRACKING_URI``,
    else the local file store in the run folder."""

    name = "mlflow"

    def __init__(self, out: Path, run_name: str, tags: Mapping[str, str]) -> None:
        try:
            from mlflow.entities import RunStatus  # noqa: F401  (the client's package is there)
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing(self.name) from None
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or (out / TRACKING_DIR / "mlruns").absolute().as_uri()
        if _is_file_store(self.uri):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3: the file store is opt-in
        self.client = MlflowClient(tracking_uri=self.uri)
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(experiment_name)
            except Exception:  # another job created it meanwhile
                experiment = self.client.get_experiment_by_name(experiment_name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(key, str(value)) for key, value in params.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int, axis: str) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, float(value), now, step)
                                                    for key, value in metrics.items()])

    def close(self, final: Mapping[str, float] | None, status: str) -> None:
        if final:
            self.log_metrics(final, 0, "final")
        self.client.set_terminated(self.run_id, {"finished": "FINISHED", "killed": "KILLED"}.get(status, "FAILED"))


class WandbTracker(Tracker):
    """A W&B run, offline unless ``WANDB_MODE`` says otherwise; epoch metrics are plotted against ``epoch``, step
    metrics against ``train/global_step`` (W&B's own step only grows)."""

    name = "wandb"

    def __init__(self, out: Path, run_name: str, tags: Mapping[str, str]) -> None:
        try:
            import wandb
        except ImportError:
            raise _missing(self.name) from None
        directory = Path(os.environ.get("WANDB_DIR") or out / TRACKING_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT, name=run_name,
                              dir=str(directory), mode=None if os.environ.get("WANDB_MODE") else "offline",
                              tags=[f"{key}={value}" for key, value in tags.items()],
                              settings=wandb.Settings(console="off", silent=True))
        self.run.define_metric("train/global_step")
        self.run.define_metric("train/*", step_metric="train/global_step")
        self.run.define_metric("epoch")
        self.run.define_metric("epoch/*", step_metric="epoch")

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(dict(params), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int, axis: str) -> None:
        self.run.log({**metrics, "train/global_step" if axis == "step" else "epoch": step})

    def close(self, final: Mapping[str, float] | None, status: str) -> None:
        for key, value in (final or {}).items():
            self.run.summary[key] = value
        self.run.finish(exit_code={"finished": 0, "killed": 130}.get(status, 1))


class Trackers:
    """The trackers of one run: each call goes to every tracker; one that fails after its start is reported once
    (on stderr) and dropped, so that tracking never ends a training run."""

    def __init__(self, trackers: Iterable[Tracker]) -> None:
        self.trackers = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def _each(self, call: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, call)(*args)
            except Exception as error:  # noqa: BLE001  (a tracker's failure is not the run's)
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                print(f"maskbench: warning: report_to {tracker.name}: {call} failed ({first}); no more tracking "
                      f"to {tracker.name} in this run", file=sys.stderr)
                self.trackers.remove(tracker)

    def start(self, names: Sequence[str], out: str | Path, config: Mapping[str, Any], run_hash: str) -> None:
        """Start a run of each tracker in ``names`` for the run folder ``out`` with the settings ``config`` (a
        ``TrainConfig.to_dict()``) and its ``config_hash`` (:func:`open_trackers`)."""
        if not names:
            return
        run_name = f"{config['task']}-{config['method']}-lr{float(config['lr']):g}-seed{config['seed']}"
        tags = {"task": str(config["task"]), "method": str(config["method"]), "model": str(config["model"]),
                "config_hash": run_hash, "out": str(Path(out).absolute())}
        self.trackers += open_trackers(names, out, run_name, {**config, "config_hash": run_hash}, tags).trackers

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._each("log_params", params)

    def log_metrics(self, metrics: Mapping[str, float], step: int, axis: str = "step") -> None:
        self._each("log_metrics", metrics, step, axis)

    def close(self, final: Mapping[str, float] | None = None, status: str = "finished") -> None:
        self._each("close", final, status)
        self.trackers = []


def open_trackers(names: Sequence[str], out: str | Path, run_name: str, params: Mapping[str, Any],
                  tags: Mapping[str, str] | None = None) -> Trackers:
    """Start a run in each tracker of ``names`` (:func:`parse_report_to`) for the run folder ``out`` and log its
    settings ``params`` (flattened by :func:`flat_params`). A tracker that cannot start raises
    :class:`ConfigError` (the ones already started are closed as failed)."""
    out = Path(out)
    tags = dict(tags or {})
    started: list[Tracker] = []
    for name in names:
        try:
            if name == "tensorboard":
                started.append(TensorBoardTracker(out))
            elif name == "mlflow":
                started.append(MlflowTracker(out, run_name, tags))
            elif name == "wandb":
                started.append(WandbTracker(out, run_name, tags))
            else:
                raise ConfigError(f"report_to: unknown tracker {name!r}; expected some of {list(TRACKERS)}")
        except Exception as error:
            Trackers(started).close(status="failed")
            if isinstance(error, ConfigError):
                raise
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ConfigError(f"report_to: cannot start a {name} run for {out} ({type(error).__name__}: "
                              f"{first})") from None
    trackers = Trackers(started)
    trackers.log_params(flat_params(params))
    return trackers


def peak_memory(device: Any) -> dict[str, int | None]:
    """The peak memory of this process so far: ``peak_rss_bytes`` (resident set, from ``getrusage``; psutil's
    peak working set on Windows; None where neither says) and ``cuda_max_allocated_bytes`` (torch's peak of
    allocated CUDA memory on ``device`` since its last reset; None on CPU)."""
    peak_rss: int | None = None
    try:
        import resource

        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_rss *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        try:
            import psutil

            peak_rss = getattr(psutil.Process().memory_info(), "peak_wset", None)
        except Exception:  # noqa: BLE001  (no statistics: recorded as unknown)
            peak_rss = None
    cuda = None
    if getattr(device, "type", None) == "cuda":
        import torch

        cuda = int(torch.cuda.max_memory_allocated(device))
    return {"peak_rss_bytes": peak_rss, "cuda_max_allocated_bytes": cuda}


def cpu_clocks() -> tuple[float, float | None]:
    """(this process's CPU seconds, user + system, all its threads; the whole machine's busy CPU seconds, all
    cores, or None where psutil cannot say). Differences over an interval give a run's own CPU time and the
    machine's load while it ran (``machine_cpu - own_cpu``: the work of other processes), which wall time alone
    cannot tell apart."""
    own = time.process_time()
    try:
        import psutil

        times = psutil.cpu_times()
    except Exception:  # noqa: BLE001  (no statistics: recorded as unknown)
        return own, None
    # as psutil.cpu_percent counts busy time: guest time is already in user/nice on Linux
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return own, total - times.idle - getattr(times, "iowait", 0.0)


def load_average() -> list[float] | None:
    """The machine's 1-, 5- and 15-minute load averages (``os.getloadavg``); None where the OS has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def usable_cpus() -> int | None:
    """The CPU cores this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def progress_bars_on_terminal_only(stream: Any = None) -> None:
    """Turn off the progress bars of the libraries maskbench calls (``datasets``' tokenising, ``transformers``'
    weight loading, ``huggingface_hub``'s downloads) unless ``stream`` (default stderr) is a terminal: a job log
    written to a file gets no ``\\r`` updates. maskbench's own bars use tqdm's ``disable=None`` (the same test).

    Through the libraries' environment variables (read when they are imported; one set already is left as it is,
    and is inherited by child processes), and their switches for a library imported already."""
    stream = sys.stderr if stream is None else stream
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if terminal:
        return
    switches = {"HF_DATASETS_DISABLE_PROGRESS_BARS": ("datasets", "datasets.utils.logging", "disable_progress_bar"),
                "HF_HUB_DISABLE_PROGRESS_BARS": ("huggingface_hub", "huggingface_hub.utils", "disable_progress_bars")}
    for variable, (package, module, function) in switches.items():
        if os.environ.setdefault(variable, "1") == "1" and package in sys.modules:
            getattr(__import__(module, fromlist=[function]), function)()
    if "transformers" in sys.modules and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1":
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
