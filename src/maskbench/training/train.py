"""One training run (any method of :mod:`maskbench.training.methods`) of one model on one task with one seed and lr."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import DatasetDict
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from maskbench.data import tasks
from maskbench.data.fingerprint import DATA_KEY, loaded_fingerprint, local_task_dir, transfer_targets
from maskbench.data.metrics import score_logits
from maskbench.data.models import load_model, load_tokenizer
from maskbench.data.prepare import WORD_COUNTS, load_prepared, word_counts
from maskbench.data.tokenising import IGNORE_INDEX, Collator, tokenize_dataset
from maskbench.io.errors import ConfigError, DataError
from maskbench.io.fileio import atomic_directory, atomic_path, write_json
from maskbench.io.locks import holds_output
from maskbench.io.output_dirs import MODEL_FILES, check_free_space
from maskbench.io.provenance import device_name, versions
from maskbench.records import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    check_run_data,
    check_run_directory,
    prediction_tensors,
)
from maskbench.training.batching import LengthGroupedBatchSampler, example_lengths, sorted_batches
from maskbench.training.checkpoint import TrainingState, load_checkpoint, remove_checkpoint, save_checkpoint
from maskbench.training.methods import get_method, run_artefact_sizes
from maskbench.training.settings import TrainConfig, config_hash
from maskbench.training.tracking import Trackers, cpu_clocks, load_average, peak_memory, usable_cpus


def fixed_subset(dataset, limit: int | None):
    """A fixed subset (independent of the run's seed, so every seed and lr sees the same examples)."""
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.shuffle(seed=0).select(range(limit))


def check_several_labels(task: str, kind: str, label_names: Sequence[str], dataset, split: str = "train") -> None:
    """Refuse a training split in which every example has the same label (every scored word the same tag, for
    tagging): a classifier trained on it learns nothing, and a run would report a score as if it had. Multiple
    choice is not checked (its label is the position of the right answer, not a class)."""
    if kind not in ("single", "pair", "tagging") or "labels" not in dataset.column_names:
        return
    labels = dataset["labels"]
    if kind == "tagging":
        found = {tag for row in labels for tag in row if tag != IGNORE_INDEX}
    else:
        found = set(labels)
    if len(found) == 1:
        label = next(iter(found))
        name = label_names[label] if 0 <= label < len(label_names) else label
        what = "scored word has the tag" if kind == "tagging" else f"one of the {len(dataset)} examples has the label"
        raise DataError(f"task {task!r}, split {split}: every {what} {name!r}; a classifier cannot learn from one "
                        f"label — use more examples (--max-train-examples) or check the data")


def checkpoint_bytes(trainable: Sequence[torch.nn.Parameter]) -> int:
    """About how many bytes one checkpoint (:mod:`maskbench.training.checkpoint`) takes: four values per trainable
    parameter — its current and its best epoch's value, and Adam's two moments — plus headers and RNG states.

    Its size depends on the trainable parameters, not on the number of examples: a MiniLM masking run (blocks 2-5:
    7.2M mask scores) needs about 115 MB even for 16 examples. For an exact resume the current scores and Adam's
    moments are needed (3/4 of it); the best epoch's scores could be kept as 1-bit masks instead (a quarter less)."""
    return sum(4 * p.numel() * p.element_size() + 512 for p in trainable) + (1 << 16)


def check_checkpoint_space(out: Path, config: TrainConfig, state: TrainingState, model: torch.nn.Module,
                           trainable: Sequence[torch.nn.Parameter]) -> None:
    """Refuse a run (before its first epoch) whose checkpoints and artefacts its file system cannot hold: a new
    checkpoint is written next to the previous one before that one is removed (two copies at a time), and a
    finetuning run saved with ``--save-weights`` writes the whole model."""
    remaining = 0 if state.stopped else config.epochs - state.epoch
    copies = 0 if remaining <= 0 else 1 if state.epoch or remaining == 1 else 2
    size = checkpoint_bytes(trainable)
    needed = copies * size + (1 << 20)
    what = f"training ({copies} checkpoint(s) of {size / 1e6:.1f} MB for {sum(p.numel() for p in trainable):,} " \
           f"trainable parameters)"
    if config.save_weights:
        needed += sum(p.numel() * p.element_size() for p in model.parameters())
        what += " and the saved model"
    check_free_space(out, needed, what)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and every CUDA device) exactly as ``transformers.set_seed``
    does, without its import of ``transformers.trainer_utils``, which imports peft and transformers' generation code
    (5-10 s of every training process here)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def raw_splits(task: str, data_dir: str | None, allow_partial: bool, tokenizer: Any, max_length: int,
               limits: Mapping[str, int | None], only: Sequence[str] | None = None,
               loaded: DatasetDict | None = None) -> dict[str, Any]:
    """A task's splits (or those named in ``only``) from its raw data (``loaded``: as loaded already), each cut to
    its fixed subset (``limits``, none where a split is not named) and then tokenised: a small run does not
    tokenise a whole corpus."""
    data = loaded if loaded is not None else tasks.load(task, data_dir, allow_partial=allow_partial)
    missing = sorted(set(only or ()) - set(data))
    if missing:
        raise ConfigError(f"task {task!r} has no {', '.join(map(repr, missing))} split (it has {sorted(data)})")
    kind = tasks.get_task(task).kind
    return {name: tokenize_dataset(fixed_subset(data[name], limits.get(name)), kind, tokenizer, max_length)
            for name in (only or data)}


def sorted_eval_loader(dataset, pad_token_id: int, batch_size: int, pin_memory: bool = False) -> DataLoader:
    """An evaluation loader over a tokenised split: the model's columns, batches of examples of similar length
    (:func:`predict` returns rows in the dataset's order)."""
    dataset = dataset.select_columns([c for c in dataset.column_names if c not in WORD_COUNTS])
    return DataLoader(dataset, batch_sampler=sorted_batches(example_lengths(dataset), batch_size),
                      collate_fn=Collator(pad_token_id), pin_memory=pin_memory)


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: DataLoader, kind: str, device: torch.device,
            precision: str = "fp32") -> dict[str, np.ndarray]:
    """Logits and gold labels of a split; for tagging one row per scored word plus per-sentence ``lengths``.

    Rows come back in the dataset's order, also when ``loader`` batches examples sorted by length.
    """
    model.eval()
    order = [i for batch in loader.batch_sampler for i in batch] if loader.batch_sampler is not None else None
    rows_logits, rows_labels = [], []  # one entry per example, in loader order
    for batch in loader:
        batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
        labels = batch.pop("labels")
        with autocast(device, precision):
            logits = model(**batch).logits
        logits, labels = logits.float().cpu(), labels.cpu()
        if kind == "tagging":
            keep = labels != IGNORE_INDEX
            rows_logits += [row[k] for row, k in zip(logits, keep)]
            rows_labels += [row[k] for row, k in zip(labels, keep)]
        else:
            rows_logits += list(logits)
            rows_labels += list(labels)
    if order is not None and sorted(order) == list(range(len(order))):
        position = {index: n for n, index in enumerate(order)}
        rows_logits = [rows_logits[position[i]] for i in range(len(order))]
        rows_labels = [rows_labels[position[i]] for i in range(len(order))]
    if kind == "tagging":
        result = {"logits": torch.cat(rows_logits).numpy(), "labels": torch.cat(rows_labels).numpy(),
                  "lengths": np.array([len(row) for row in rows_labels], dtype=np.int64)}
    else:
        result = {"logits": torch.stack(rows_logits).numpy(), "labels": torch.stack(rows_labels).numpy()}
    return result


def adam(parameters: list[torch.nn.Parameter], lr: float) -> tuple[torch.optim.Adam, str]:
    """Adam with its fused kernel (one pass over all parameters: ~14× faster steps than the per-parameter loop
    on CPU for MiniLM), or the multi-tensor one where this torch has no fused kernel for the device."""
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True), "Adam (fused)"
    except RuntimeError:
        return torch.optim.Adam(parameters, lr=lr, foreach=True), "Adam (foreach)"


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``precision == "bf16"``, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@contextmanager
def frozen_weights_in(model: torch.nn.Module, precision: str) -> Iterator[int]:
    """Within the block, the frozen weight matrices of ``model``'s linear layers are kept in the training precision's
    dtype (bf16), cast once instead of by autocast at every forward (autocast caches no cast of a tensor that needs
    no gradient): a masked layer keeps a bf16 copy of its weight beside the fp32 one (its scores' gradient uses the
    fp32 weight), any other linear layer whose weight is frozen (LoRA's, BitFit's and IA3's base layers, the blocks
    masking leaves alone) holds its weight in bf16 and gets its fp32 values back on exit. The numbers are the same
    as autocast's: it casts the same weights to the same dtype. Yields how many weights it holds in the low dtype;
    fp32 changes nothing."""
    from maskbench.training.masking.layer import MaskedLinear

    if precision != "bf16":
        yield 0
        return
    dtype = torch.bfloat16
    kept: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    masked = [module for module in model.modules() if isinstance(module, MaskedLinear)]
    try:
        for module in masked:
            module.set_compute_dtype(dtype)
        for module in model.modules():
            if (isinstance(module, torch.nn.Linear) and not isinstance(module, MaskedLinear)
                    and not module.weight.requires_grad and module.weight.dtype == torch.float32):
                kept.append((module.weight, module.weight.data))
                module.weight.data = module.weight.data.to(dtype)
        yield len(masked) + len(kept)
    finally:
        for parameter, data in kept:
            parameter.data = data
        for module in masked:
            module.set_compute_dtype(None)


def resolve_device(name: str | None, precision: str = "fp32") -> torch.device:
    """The run's device (default: CUDA when available), checked before any data is read."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as error:
        raise ConfigError(f"device: cannot use {name!r} ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested, but no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device: expected 'cpu' or 'cuda[:N]', got {name!r}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r} requested, but only {torch.cuda.device_count()} CUDA device(s) exist")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision: bf16 is not supported by {torch.cuda.get_device_name(device)}; use fp32")
    return device


def _score(spec: tasks.TaskSpec, output: dict[str, np.ndarray]) -> float:
    return score_logits(spec.metric, output["logits"], output["labels"], spec.label_names, output.get("lengths"))


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _add_cpu_time(state: TrainingState, own_start: float,
                  machine_start: float | None) -> tuple[float | None, float | None]:
    """The state's CPU times plus this training phase's (None stays None: an epoch that did not record them)."""
    own_end, machine_end = cpu_clocks()
    own = None if state.train_cpu_time is None else state.train_cpu_time + own_end - own_start
    machine = (None if state.machine_cpu_time is None or machine_start is None or machine_end is None
               else state.machine_cpu_time + machine_end - machine_start)
    return own, machine


def run_costs(state: TrainingState) -> dict[str, Any]:
    """The record's cost keys beside ``train_time_s``, so that runs timed on a shared machine compare like with
    like: ``train_cpu_time_s`` (this process's user + system CPU seconds in the training phases), ``threads``
    (torch's intra-op threads) and ``cpus`` (the cores it may use), ``machine_busy_cores`` (the mean number of
    busy cores of the whole machine while it trained, this run included) and ``other_busy_cores`` (those of other
    processes), and ``load_average`` (1, 5, 15 minutes, when training ended). None: unknown (an epoch resumed from
    a checkpoint that did not record it, or an OS that does not say). Not part of a run's identity."""
    wall = state.train_time

    def per_second(value: float | None) -> float | None:
        return round(value / wall, 3) if value is not None and wall > 0 else None

    other = (None if state.machine_cpu_time is None or state.train_cpu_time is None
             else max(state.machine_cpu_time - state.train_cpu_time, 0.0))
    return {"train_cpu_time_s": state.train_cpu_time, "threads": torch.get_num_threads(), "cpus": usable_cpus(),
            "machine_busy_cores": per_second(state.machine_cpu_time), "other_busy_cores": per_second(other),
            "load_average": load_average()}


def configure_cuda_backends() -> None:
    """CUDA settings of every training run: TF32 matmuls, and no cuDNN attention.

    cuDNN's fused attention (which torch picks for bf16 on Hopper GPUs) plans a graph for each new sequence length,
    and with length-grouped dynamic padding almost every batch has a new length: on an H200, a MiniLM masking run
    in bf16 (SST-2, 4,000 examples, 2 epochs) took 18.6 s with it and 5.8 s without (fp32 with TF32: 5.3 s).
    Flash and memory-efficient attention have no such cost.
    """
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):  # an older torch has no cuDNN attention
        torch.backends.cuda.enable_cudnn_sdp(False)


def transfer_fingerprint(config: TrainConfig) -> dict[str, str]:
    """The fingerprint of the ``transfer_split`` of each transfer target the run scores itself on: from the
    target's prepared data (``transfer_prepared``), else from its files, else from its rows as loaded."""
    from maskbench.data.fingerprint import dataset_fingerprint, local_fingerprint, prepared_fingerprint

    found: dict[str, str] = {}
    for target in transfer_targets(config.to_dict()):
        if config.transfer_prepared:  # a problem is reported by the transfer scoring's load_prepared
            found.update(prepared_fingerprint(Path(config.transfer_prepared) / target, target, config.transfer_split))
        elif (task_dir := local_task_dir(target, config.data_dir)) is not None:
            found.update(local_fingerprint(target, task_dir, config.allow_partial, [config.transfer_split]))
        else:
            loaded = tasks.load(target, config.data_dir, allow_partial=config.allow_partial)
            found.update(dataset_fingerprint(target, {config.transfer_split: loaded[config.transfer_split]}))
    return found


@holds_output("config", lambda config: config.out)  # one writer per run folder (maskbench.io.locks)
def train(config: TrainConfig, stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Run one training job and write ``metrics.json``, predictions and the method's artefact to ``config.out``.

    Dev is evaluated after every epoch; training stops after ``patience`` epochs without improvement and the
    best epoch's parameters are restored for the dev/test predictions and the saved artefacts. With ``report_to``
    the run is also logged to those trackers (:mod:`maskbench.training.tracking`); a run that fails ends theirs as
    failed. ``stop_after_epoch`` (outside the run's identity) ends training after that epoch: a rebuild
    (:mod:`maskbench.training.rebuild`) needs the run only up to its recorded best epoch — the learning rate is
    constant, so the epochs before it are the same whatever ``epochs`` says.
    """
    if stop_after_epoch is not None and (isinstance(stop_after_epoch, bool) or not isinstance(stop_after_epoch, int)
                                         or stop_after_epoch < 1):
        raise ValueError(f"stop_after_epoch: expected a positive integer or None, got {stop_after_epoch!r}")
    trackers = Trackers([])
    try:
        return _train(config, trackers, stop_after_epoch)
    except BaseException as error:
        trackers.close(status="killed" if isinstance(error, KeyboardInterrupt) else "failed")
        raise


def _train(config: TrainConfig, trackers: Trackers, stop_after_epoch: int | None) -> dict[str, Any]:
    out = Path(config.out)
    spec = tasks.get_task(config.task)
    method = get_method(config.method)
    method.check(config)  # fail before any data is read, e.g. when the blocks do not exist in this model
    if config.transfer_tasks():  # Table 3's targets: known tasks with this task's labels
        check_targets(config.task, config.transfer_tasks(), config.transfer_split)
    device = resolve_device(config.device, config.precision)
    check_run_directory(out, config_hash(config.result_key()))  # before any work: the results can be saved
    if device.type == "cuda":
        configure_cuda_backends()
        torch.cuda.reset_peak_memory_stats(device)
    trackers.start(config.trackers(), out, config.to_dict(), config_hash(config.result_key()))
    seed_everything(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    tokenizer = load_tokenizer(config.model)
    limits = {"train": config.max_train_examples, "dev": config.max_eval_examples, "test": config.max_eval_examples}
    if config.prepared:
        encoded, prepared_meta = load_prepared(config.prepared, config.task, config.model, config.max_length)
        data = dict(prepared_meta[DATA_KEY])  # the data the cache was made from
        splits = {name: fixed_subset(split, limits[name]) for name, split in encoded.items()}
    else:
        loaded = tasks.load(config.task, config.data_dir, allow_partial=config.allow_partial)
        data = loaded_fingerprint(config.task, config.data_dir, config.allow_partial, loaded)
        splits = raw_splits(config.task, config.data_dir, config.allow_partial, tokenizer, config.max_length, limits,
                            loaded=loaded)
    data.update(transfer_fingerprint(config))
    check_run_data(out, data)  # a finished run in --out made from other data is never replaced
    check_several_labels(config.task, spec.kind, spec.label_names, splits["train"])
    model = load_model(config.model, spec.kind, spec.label_names)
    model = method.prepare(model, config)
    model.to(device)

    excluded = word_counts(DatasetDict(splits)) if spec.kind == "tagging" else None
    model_columns = [c for c in splits["train"].column_names if c not in WORD_COUNTS]
    collate = Collator(tokenizer.pad_token_id)
    train_generator = torch.Generator().manual_seed(config.seed)
    pin = device.type == "cuda"
    loaders = {}
    for name, ds in splits.items():
        ds = ds.select_columns(model_columns)
        if name == "train" and config.group_by_length:
            sampler = LengthGroupedBatchSampler(example_lengths(ds), config.batch_size, train_generator)
            loaders[name] = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, pin_memory=pin)
        elif name == "train":
            loaders[name] = DataLoader(ds, batch_size=config.batch_size, shuffle=True, collate_fn=collate,
                                       generator=train_generator, pin_memory=pin)
        else:
            loaders[name] = sorted_eval_loader(ds, tokenizer.pad_token_id, config.eval_batch_size, pin)

    trainable = method.trainable_parameters(model)
    optimizer, optimizer_name = adam(trainable, config.lr)
    run_hash = config_hash(config.result_key())
    state = load_checkpoint(out, run_hash, model, optimizer, train_generator, data) or TrainingState()
    check_checkpoint_space(out, config, state, model, trainable)  # before the first epoch: its outputs fit
    if state.epoch:
        tqdm.write(f"resuming {out} after epoch {state.epoch}")
    with frozen_weights_in(model, config.precision):  # bf16: frozen weights cast once, not at every step
        last_epoch = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
        while not state.stopped and state.epoch < last_epoch:
            epoch = state.epoch + 1
            model.train()
            started = time.perf_counter()
            own_cpu, machine_cpu = cpu_clocks()
            loss_sum, steps = torch.zeros((), device=device), 0  # summed on the device: no host sync per step
            logged = loss_sum.clone()  # the sum at the last logged step (report_to)
            for batch in tqdm(loaders["train"], desc=f"epoch {epoch}/{config.epochs}", leave=False,
                              disable=None):
                batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
                with autocast(device, config.precision):
                    loss = model(**batch).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().float()
                steps += 1
                state.examples_seen += batch["labels"].shape[0]
                if trackers and steps % config.logging_steps == 0:  # the only host syncs of the loop
                    window, logged = (loss_sum - logged).item() / config.logging_steps, loss_sum.clone()
                    trackers.log_metrics({"train/loss": window, "train/lr": optimizer.param_groups[0]["lr"]},
                                         (epoch - 1) * len(loaders["train"]) + steps)
            mean_loss = loss_sum.item() / max(steps, 1)
            state.train_time += time.perf_counter() - started
            state.train_cpu_time, state.machine_cpu_time = _add_cpu_time(state, own_cpu, machine_cpu)
            score = _score(spec, predict(model, loaders["dev"], spec.kind, device, config.precision))
            epoch_time = time.perf_counter() - started  # training and dev evaluation
            state.history.append({"epoch": epoch, "train_loss": mean_loss, "dev_score": score, "time_s": epoch_time})
            trackers.log_metrics({"epoch/train_loss": mean_loss, "epoch/dev_score": score, "epoch/time_s": epoch_time},
                                 epoch, "epoch")
            tqdm.write(f"[{config.task} {config.method} seed={config.seed} lr={config.lr:g}] epoch {epoch}: "
                       f"loss {mean_loss:.4f}, dev {spec.metric} {score:.4f}")
            state.epoch = epoch
            if score > state.best_score:
                state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
                state.best_state = _trainable_state(model)
            else:
                state.bad_epochs += 1
                state.stopped = state.bad_epochs >= config.patience
            save_checkpoint(out, run_hash, state, model, optimizer, train_generator, data)

        with torch.no_grad():
            parameters = dict(model.named_parameters())
            for name, value in state.best_state.items():
                parameters[name].copy_(value)
        outputs = {name: predict(model, loaders[name], spec.kind, device, config.precision)
                   for name in loaders if name != "train"}
    out.mkdir(parents=True, exist_ok=True)
    tensors = {key: torch.from_numpy(value) for key, value in prediction_tensors(outputs, spec.kind).items()}
    with atomic_path(out / PREDICTIONS_FILE, "predictions") as tmp:
        save_file(tensors, tmp)
    extra = {"task": config.task, "label_names": list(spec.label_names), "kind": spec.kind, "seed": config.seed}
    if method.artefact is not None:
        method.save(model, out / method.artefact, base=config.model, extra=extra, config=config)
    if config.save_weights:
        with atomic_directory(out / "model", "model", MODEL_FILES) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

    transfer = None
    if config.transfer_tasks():  # scored before metrics.json is written: a finished run has its scores
        transfer = run_transfer(model, config, device)

    # each epoch's time rides in the history through checkpoints; the record lists them apart (its history stays
    # the same as before, also for a resumed run); None: an epoch of a checkpoint that did not record it
    epoch_times = [entry.pop("time_s", None) for entry in state.history]
    metrics: dict[str, Any] = {
        "task": config.task, "method": config.method, "model": config.model, "seed": config.seed, "lr": config.lr,
        "metric": spec.metric, "kind": spec.kind,
        "dev_score": state.best_score, "best_epoch": state.best_epoch, "epochs_run": state.epoch,
        "history": state.history, "dev_scores": [h["dev_score"] for h in state.history],
        "test_score": _score(spec, outputs["test"]) if "test" in outputs else None,
        "transfer": transfer,
        "sizes": {name: len(ds) for name, ds in splits.items()},
        "word_counts": excluded,
        "train_time_s": state.train_time,
        "train_examples_per_s": state.examples_seen / state.train_time if state.train_time else None,
        **run_costs(state),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "sparsity": method.sparsity(model),
        "artefact_bytes": method.artefact_bytes(out / method.artefact) if method.artefact is not None else None,
        "artefact_sizes": run_artefact_sizes(out, config.method),
        "config": config.to_dict(), "config_hash": run_hash, DATA_KEY: data,
        "versions": versions(), "device": device_name(device),
        "precision": config.precision, "optimizer": optimizer_name,
        "tf32": device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32,
        "epoch_times_s": epoch_times,
        **peak_memory(device),
    }
    write_json(out / METRICS_FILE, metrics, "metrics")
    remove_checkpoint(out)
    trackers.close(final={f"final/{key}": metrics[key] for key in ("dev_score", "test_score", "peak_rss_bytes",
                                                                   "cuda_max_allocated_bytes")
                          if metrics[key] is not None})
    return metrics


# --- transfer: a trained model scored on other tasks with the same labels (Table 3) ----------------------------------


def eval_loader(prepared: str | Path, task: str, model: str, max_length: int, split: str = "dev",
                limit: int | None = None, batch_size: int = 128) -> DataLoader:
    """A loader over a prepared split, capped to the same fixed subset a training run scores (``limit``)."""
    encoded, _ = load_prepared(prepared, task, model, max_length)
    if split not in encoded:
        raise DataError(f"{prepared}: task {task!r} has no {split!r} split (it has {sorted(encoded)})")
    dataset = fixed_subset(encoded[split], limit)
    columns = [c for c in dataset.column_names if c not in WORD_COUNTS]
    return DataLoader(dataset.select_columns(columns), batch_size=batch_size, shuffle=False,
                      collate_fn=Collator(load_tokenizer(model).pad_token_id))


def label_map(source: str, target: str) -> list[int]:
    """Output i of a model trained on ``source`` means label ``label_map[i]`` of ``target`` (matched by name)."""
    source_labels = tasks.get_task(source).label_names
    target_labels = tasks.get_task(target).label_names
    if sorted(source_labels) != sorted(target_labels):
        raise ConfigError(f"a {source} model cannot be scored on {target}: labels {list(source_labels)} vs "
                          f"{list(target_labels)}")
    return [target_labels.index(name) for name in source_labels]


def majority_baseline(labels: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent gold label."""
    return float(np.bincount(np.asarray(labels)).max() / len(labels)) if len(labels) else float("nan")


def check_targets(source: str, targets: Sequence[str], split: str = "dev") -> list[list[int]]:
    """The label maps of ``targets`` for a ``source`` model; refuses targets that a Table 3 cannot compare and a
    ``split`` that a target does not have (a labelled test set)."""
    if tasks.get_task(source).kind != "single":
        raise ConfigError(f"generalization source {source!r}: a {tasks.get_task(source).kind} task; Table 3 "
                          f"scores single-sentence classifiers")
    for target in targets:
        spec = tasks.get_task(target)
        if spec.metric != "accuracy" or spec.kind != "single":
            raise ConfigError(f"generalization target {target!r}: a {spec.kind} task scored by {spec.metric}; the "
                              f"table compares accuracies of single-sentence classifiers")
        if split == "test" and not spec.has_test:
            raise ConfigError(f"generalization target {target!r} has no labelled test split; score it on 'dev'")
    return [label_map(source, target) for target in targets]


def score_target(model: nn.Module, loader: DataLoader, mapping: Sequence[int],
                 device: str | torch.device = "cpu") -> tuple[float, float]:
    """Accuracy of a source-task model on a target's ``loader`` (outputs mapped by label name), and the target's
    majority-class baseline."""
    output = predict(model, loader, "single", torch.device(device))
    logits = np.empty_like(output["logits"])
    logits[:, list(mapping)] = output["logits"]
    return score_logits("accuracy", logits, output["labels"]), majority_baseline(output["labels"])


def run_transfer(model: nn.Module, config: TrainConfig, device: str | torch.device = "cpu") -> dict[str, Any]:
    """A just-trained model scored on ``config.transfer``'s tasks, for its ``metrics.json`` ("transfer").

    Each target's ``transfer_split`` is read from ``transfer_prepared/TASK`` when given (else loaded and tokenised
    now), cut to the run's ``max_eval_examples`` and ``max_length``: what :func:`transfer_scores` asks of a record.
    """
    targets = config.transfer_tasks()
    mappings = check_targets(config.task, targets, config.transfer_split)
    tokenizer = load_tokenizer(config.model)
    result = {}
    for target, mapping in zip(targets, mappings):
        if config.transfer_prepared:
            loader = eval_loader(Path(config.transfer_prepared) / target, target, config.model, config.max_length,
                                 config.transfer_split, config.max_eval_examples, config.eval_batch_size)
        else:
            split = raw_splits(target, config.data_dir, config.allow_partial, tokenizer, config.max_length,
                               {config.transfer_split: config.max_eval_examples}, only=[config.transfer_split])
            loader = sorted_eval_loader(split[config.transfer_split], tokenizer.pad_token_id,
                                        config.eval_batch_size)
        accuracy, baseline = score_target(model, loader, mapping, device)
        result[target] = {"split": config.transfer_split, "max_length": config.max_length,
                          "limit": config.max_eval_examples, "accuracy": accuracy, "majority_baseline": baseline,
                          "examples": len(loader.dataset)}
    return result
