"""Command line: parse, call the library, exit with a one-line message on bad input."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

from maskbench.errors import MaskbenchError

PREDICT_OUTPUT = "predict-output"  # fileio.FILE_KINDS: JSONL of {task, label, probabilities}


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    from maskbench.settings import METHODS

    parser = subparsers.add_parser("train", help="one training run (masking, finetuning, lora, bitfit or ia3)")
    parser.add_argument("--method", required=True, choices=list(METHODS))
    parser.add_argument("--model", default="minilm", help="hub id, local path, or 'minilm' (the offline model)")
    parser.add_argument("--task", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-eval-examples", type=int, default=None, help="cap dev/test size (demos only)")
    parser.add_argument("--data-dir", default=None, help="original task files (default: $MASKBENCH_DATA_DIR, else the hub)")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--initial-sparsity", type=float, default=0.05)
    parser.add_argument("--threshold", type=float, default=0.01)
    parser.add_argument("--init-scale", type=float, default=0.02,
                        help="scores start in U(-c, (c + threshold) / s - c), the authors' initialisation")
    parser.add_argument("--blocks", default=None,
                        help="blocks that masking, LoRA and IA3 adapt, e.g. '2-11' or 'all' (default: 2 to last)")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA's rank (method lora)")
    parser.add_argument("--lora-alpha", type=float, default=8.0, help="LoRA's scaling alpha: updates are alpha/r * BA")
    parser.add_argument("--no-mask-pooler", action="store_true")
    parser.add_argument("--no-mask-classifier", action="store_true")
    parser.add_argument("--train-classifier", action="store_true", help="also train the classifier's weights")
    parser.add_argument("--save-weights", action="store_true", help="also save the full weights (finetuning)")
    parser.add_argument("--mask-format", default="packed-bits-v1", choices=["packed-bits-v1", "rice-gaps-v1"],
                        help="how masks are stored: 1 bit per weight, or lossless Rice-coded gaps (~0.3 bit)")
    parser.add_argument("--prepared", default=None, help="data written by 'maskbench prepare' (else tokenise now)")
    parser.add_argument("--allow-partial-data", action="store_true",
                        help="offline stand-ins for hub-only splits (QNLI train), for smoke tests only")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="bf16: mixed precision (autocast), on GPUs that support it")
    parser.add_argument("--no-group-by-length", action="store_true",
                        help="draw training batches at random instead of grouping similar lengths")


def _add_prepare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prepare", help="tokenise a task's splits for a model and cache them on disk")
    parser.add_argument("--task", required=True)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--allow-partial-data", action="store_true")
    parser.add_argument("--out", required=True)


def _run_prepare(args: argparse.Namespace) -> None:
    from maskbench.prepare import prepare

    meta = prepare(args.task, args.model, args.out, args.data_dir, args.max_length, args.allow_partial_data)
    print(json.dumps({"task": meta["task"], "sizes": meta["sizes"], "word_counts": meta["word_counts"]}))


def _run_train(args: argparse.Namespace) -> None:
    from maskbench.masking import MaskConfig
    from maskbench.train import TrainConfig, train

    mask = MaskConfig(initial_sparsity=args.initial_sparsity, threshold=args.threshold, init_scale=args.init_scale,
                      blocks=args.blocks,
                      mask_pooler=not args.no_mask_pooler, mask_classifier=not args.no_mask_classifier,
                      train_classifier=args.train_classifier)
    config = TrainConfig(method=args.method, model=args.model, task=args.task, seed=args.seed, lr=args.lr,
                         batch_size=args.batch_size, epochs=args.epochs, patience=args.patience,
                         max_length=args.max_length, max_train_examples=args.max_train_examples,
                         max_eval_examples=args.max_eval_examples, mask=mask, save_weights=args.save_weights,
                         lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                         mask_format=args.mask_format, precision=args.precision,
                         group_by_length=not args.no_group_by_length,
                         out=args.out, data_dir=args.data_dir, device=args.device,
                         prepared=args.prepared, allow_partial=args.allow_partial_data)
    metrics = train(config)
    summary = {k: metrics[k] for k in ("task", "method", "metric", "dev_score", "test_score", "best_epoch",
                                       "train_time_s")}
    print(json.dumps(summary))


def _add_predict(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="predict with many task masks on one base model (JSONL in and out)")
    parser.add_argument("--base", required=True, help="base model: hub id, local path, or 'minilm' (the offline model)")
    parser.add_argument("--masks", nargs="+", required=True,
                        help="mask directories or LoRA/IA3 artefacts (lora/, ia3/ of a run), one per task")
    parser.add_argument("--input", required=True,
                        help='JSONL with one {"task": ..., "text": ...} per line ("text_pair" for pair tasks)')
    parser.add_argument("--output", default=None, help="JSONL predictions, one line per input (default: stdout)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--device", default=None)


def _run_predict(args: argparse.Namespace) -> None:
    import dataclasses

    from maskbench.fileio import atomic_path, check_output_file
    from maskbench.multitask import MultiTaskModel, predict_requests, read_requests

    from maskbench.errors import ConfigError, OutputError
    from maskbench.settings import check_max_length
    from maskbench.train import resolve_device

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected a positive whole number, got {args.batch_size}")
    check_max_length(args.max_length)
    device = resolve_device(args.device)
    if args.output is not None:  # before any work; never replace a file that is not an earlier prediction output
        check_output_file(args.output, PREDICT_OUTPUT)
    requests = read_requests(args.input)
    model = MultiTaskModel.from_masks(args.base, args.masks, device=device, max_length=args.max_length)
    predictions = predict_requests(model, requests, args.batch_size)
    try:  # strict JSON: a non-finite probability (a corrupt model) is an error, not a bare NaN in the output
        lines = "".join(json.dumps(dataclasses.asdict(prediction), allow_nan=False) + "\n"
                        for prediction in predictions)
    except ValueError:
        bad = next(r.line for r, p in zip(requests, predictions)
                   if not all(math.isfinite(v) for v in p.probabilities.values()))
        raise OutputError(f"{args.input}:{bad}: the model's probabilities are not finite (NaN or infinite); "
                          f"check the mask directories and the base model") from None
    if args.output is None:
        sys.stdout.write(lines)
        return
    with atomic_path(args.output, PREDICT_OUTPUT) as tmp:
        tmp.write_text(lines)


def _add_download(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", help="fetch models and task data into the caches (then jobs can run with HF_HUB_OFFLINE=1)")
    parser.add_argument("--models", nargs="*", default=[], metavar="MODEL",
                        help="hub ids (fetched), local paths or 'minilm' (checked)")
    parser.add_argument("--tasks", nargs="*", default=[], metavar="TASK",
                        help="tasks: local files checked, else the hub data set fetched")
    parser.add_argument("--data-dir", default=None,
                        help="original task files (default: $MASKBENCH_DATA_DIR, else the hub)")
    parser.add_argument("--cache-dir", default=None,
                        help="fetch into CACHE_DIR/hub and CACHE_DIR/datasets (default: the Hugging Face caches of "
                             "the environment, HF_HOME etc.)")
    parser.add_argument("--out", required=True, help="the manifest (JSON) of what was resolved to where")


def _run_download(args: argparse.Namespace) -> None:
    from maskbench.download import download

    manifest = download(args.models, args.tasks, args.out, args.data_dir, args.cache_dir)
    print(json.dumps({kind: {name: record["source"] for name, record in manifest[kind].items()}
                      for kind in ("models", "tasks")}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskbench", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train(subparsers)
    _add_prepare(subparsers)
    _add_predict(subparsers)
    _add_download(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "download":  # which loads no model (and stays quick without transformers)
        import transformers

        transformers.logging.set_verbosity_error()  # the expected "newly initialised head" report is noise here
    commands = {"train": _run_train, "prepare": _run_prepare, "predict": _run_predict, "download": _run_download}
    try:
        commands[args.command](args)
    except MaskbenchError as error:
        print(f"maskbench: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
