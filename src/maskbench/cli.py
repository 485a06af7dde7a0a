"""Command line: parse, call the library, exit with a one-line message on bad input."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from maskbench.io.errors import MaskbenchError
from maskbench.io.locks import holds_output

PREDICT_OUTPUT = "predict-output"  # fileio.FILE_KINDS: JSONL of {task, label, probabilities}

DESCRIPTION = ("Train and compare masking (Zhao et al. 2020, 'Masking as an Efficient Alternative to Finetuning'), "
               "finetuning, LoRA, BitFit and IA3 on a task, and serve many tasks' masks from one model. The full "
               "benchmark grid runs through the Snakemake workflow (see README.md).")
#: exit statuses, documented in --help and README.md
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EPILOG = """exit status:
  0    done
  1    the work failed for a reason outside the command: an output held by another maskbench process (run the
       same command again when it is done; a train run resumes from its last finished epoch), or a bug (a
       traceback)
  2    the command cannot be carried out as given: a bad argument, configuration value, data file, mask or
       record, or an output location that cannot take the output (not maskbench's to replace, unwritable,
       read-only, a link loop, a full disk); the one-line message names it; change it and run again
  130  interrupted (Ctrl-C); nothing half-written is left"""
#: commands the workflow calls, hidden from the user listing (still callable)
HIDDEN_COMMANDS = ("step",)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default ("(default: X)") where it has one and its help does not already say
    it; required options and switches have none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (action.required or default is None or default is False or default == argparse.SUPPRESS
                or "default" in text
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                       argparse._VersionAction, argparse._HelpAction))
                or not action.option_strings):
            return action.help
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})" if text else f"(default: {shown})"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("maskbench")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
        from maskbench import __version__

        return __version__


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    from maskbench.training.settings import METHODS, add_arguments

    parser = subparsers.add_parser("train", help=f"one training run ({', '.join(METHODS)})",
                                   description="One training run: train on the task's train split, choose the "
                                               "epoch on dev, score test; writes OUT/metrics.json and the "
                                               "method's artefact.", formatter_class=HelpFormatter, epilog=EPILOG)
    add_arguments(parser)  # one option per field of TrainConfig and MaskConfig (maskbench.training.settings)


def _add_prepare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prepare", help="tokenise a task's splits for a model and cache them on disk",
                                   description="Tokenise a task's splits for a model and save them, for "
                                               "'maskbench train --prepared'.", formatter_class=HelpFormatter,
                                   epilog=EPILOG)
    parser.add_argument("--task", required=True, help="the task, e.g. sst2, mrpc, conll2003 (README: Tasks)")
    parser.add_argument("--model", default="minilm",
                        help="tokenizer of this model: hub id, local path, or 'minilm' (the offline model)")
    parser.add_argument("--max-length", type=int, default=128, help="wordpieces per example")
    parser.add_argument("--data-dir", default=None,
                        help="original task files (default: $MASKBENCH_DATA_DIR, else the hub)")
    parser.add_argument("--allow-partial-data", action="store_true",
                        help="offline stand-ins for hub-only splits (QNLI train), for smoke tests only")
    parser.add_argument("--out", required=True, help="folder for the prepared data")


def _run_prepare(args: argparse.Namespace) -> None:
    from maskbench.data.prepare import prepare

    meta = prepare(args.task, args.model, args.out, args.data_dir, args.max_length, args.allow_partial_data)
    print(json.dumps({"task": meta["task"], "sizes": meta["sizes"], "word_counts": meta["word_counts"]}))


def _run_train(args: argparse.Namespace) -> None:
    from maskbench.training.settings import from_arguments
    from maskbench.training.train import train

    metrics = train(from_arguments(args))
    summary = {k: metrics[k] for k in ("task", "method", "metric", "dev_score", "test_score", "best_epoch",
                                       "train_time_s")}
    print(json.dumps(summary))


def _add_predict(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="predict with many task masks on one base model (JSONL in and out)",
                                   formatter_class=HelpFormatter, epilog=EPILOG)
    parser.add_argument("--base", required=True, help="base model: hub id, local path, or 'minilm' (the offline model)")
    parser.add_argument("--masks", nargs="+", required=True,
                        help="mask directories or LoRA/IA3 artefacts (lora/, ia3/ of a run), one per task")
    parser.add_argument("--input", required=True,
                        help='JSONL with one {"task": ..., "text": ...} per line ("text_pair" for pair tasks, '
                             '"id" passed through to the output line); "-" reads standard input')
    parser.add_argument("--output", default=None, help="JSONL predictions, one line per input (default: stdout)")
    parser.add_argument("--batch-size", type=int, default=32, help="requests per forward pass")
    parser.add_argument("--max-length", type=int, default=128, help="wordpieces per request (longer are cut)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available, else cpu)")


@holds_output("args", lambda args: args.output)  # one writer per --output file (maskbench.io.locks)
def _run_predict(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from maskbench.data.tokenising import check_max_length
    from maskbench.io.errors import ConfigError
    from maskbench.io.fileio import atomic_path, check_output_file
    from maskbench.serving.multitask import MultiTaskModel, check_requests, read_requests
    from maskbench.training.train import resolve_device

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected a positive whole number, got {args.batch_size}")
    check_max_length(args.max_length)
    device = resolve_device(args.device)
    if args.output is not None:  # before any work; never replace a file that is not an earlier prediction output
        check_output_file(args.output, PREDICT_OUTPUT)
    requests = read_requests(args.input)  # every line checked before the model is loaded
    model = MultiTaskModel.from_masks(args.base, args.masks, device=device, max_length=args.max_length)
    check_requests(model, requests)
    source = "<stdin>" if args.input == "-" else args.input
    # streamed: each chunk's lines are written as they come (to stdout, or to --output's temporary file, renamed
    # onto it at the end); the progress bar goes to stderr and is quiet when stderr is not a terminal
    with tqdm(total=len(requests), desc="predict", unit="request", disable=None, file=sys.stderr) as progress:
        if args.output is None:
            _write_predictions(model, requests, args.batch_size, source, sys.stdout, progress)
            return
        with atomic_path(args.output, PREDICT_OUTPUT) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            _write_predictions(model, requests, args.batch_size, source, handle, progress)


def _write_predictions(model, requests, batch_size: int, source: str, handle, progress) -> None:
    """Write one JSON line per request (in input order) to ``handle`` as the predictions come, flushing after each
    chunk. Strict JSON: a non-finite probability (a corrupt model) is an error naming the input line, not a bare
    NaN in the output."""
    from maskbench.io.errors import OutputError
    from maskbench.serving.multitask import iter_predictions, output_record

    for chunk in iter_predictions(model, requests, batch_size):
        lines = []
        for request, prediction in chunk:
            try:
                lines.append(json.dumps(output_record(request, prediction), allow_nan=False) + "\n")
            except ValueError:
                raise OutputError(f"{source}:{request.line}: the model's probabilities are not finite (NaN or "
                                  f"infinite); check the mask directories and the base model") from None
        handle.write("".join(lines))
        handle.flush()
        progress.update(len(chunk))

def _add_download(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", help="fetch models and task data into the caches (then jobs can run with HF_HUB_OFFLINE=1)",
        formatter_class=HelpFormatter, epilog=EPILOG)
    parser.add_argument("--models", nargs="*", default=[], metavar="MODEL",
                        help="hub ids (fetched), local paths or 'minilm' (checked) (default: none)")
    parser.add_argument("--tasks", nargs="*", default=[], metavar="TASK",
                        help="tasks: local files checked, else the hub data set fetched (default: none)")
    parser.add_argument("--data-dir", default=None,
                        help="original task files (default: $MASKBENCH_DATA_DIR, else the hub)")
    parser.add_argument("--cache-dir", default=None,
                        help="fetch into CACHE_DIR/hub and CACHE_DIR/datasets (default: the Hugging Face caches of "
                             "the environment, HF_HOME etc.)")
    parser.add_argument("--out", required=True, help="the manifest (JSON) of what was resolved to where")


def _run_download(args: argparse.Namespace) -> None:
    from maskbench.data.download import download

    manifest = download(args.models, args.tasks, args.out, args.data_dir, args.cache_dir)
    print(json.dumps({kind: {name: record["source"] for name, record in manifest[kind].items()}
                      for kind in ("models", "tasks")}))


def _add_estimate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "estimate", help="jobs, training examples and CPU/GPU hours of a workflow configuration, before submitting it",
        description="Count the training jobs a workflow configuration plans (and its worst case with every lr grid "
                    "extended to the cap) and estimate CPU core-hours and GPU-hours per model and task from measured "
                    "throughput (maskbench.results.estimate).")
    parser.add_argument("--configfile", nargs="+", default=["config.yaml"], metavar="FILE",
                        help="the workflow configuration(s), merged as snakemake merges them (default: config.yaml)")
    parser.add_argument("--records", default=None, metavar="DIR",
                        help="run records whose train_examples_per_s give the CPU throughput "
                             "(default: the committed results/reference/runs)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON instead of a table")


def _run_estimate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from maskbench.results.estimate import REFERENCE_RUNS, estimate, load_config, render

    result = estimate(load_config(args.configfile), Path(args.records) if args.records else REFERENCE_RUNS)
    print(json.dumps(result.to_dict(), indent=1) if args.json else render(result))


#: the workflow's heavy steps besides training (they load a model): step name -> the library function
#: ("module:function") that ``maskbench step NAME ARGUMENTS`` calls with the JSON object ARGUMENTS as keywords
STEPS = {
    "reference-sizes": "maskbench.training.sizes:write_reference_sizes",
    "serving-memory": "maskbench.serving.memory:write_serving",
    "generalization": "maskbench.analysis.generalization:write_transfer",
    "tsne": "maskbench.analysis.tsne:write_tsne",
    "mask-similarity": "maskbench.analysis.mask_similarity:write_mask_similarity",
    "mode-connectivity": "maskbench.analysis.connectivity:write_line_scores",
    "bezier": "maskbench.analysis.connectivity:write_bezier",
    "run-log": "maskbench.results.runlog:write_run_log",
    "rebuild": "maskbench.training.rebuild:rebuild_artefact",  # a committed run's artefact, retrained and checked
    "data-fingerprints": "maskbench.records:add_data_fingerprints",  # migration of records made before them
    "front-page": "maskbench.results.frontpage:write_front_page",  # the READMEs' generated blocks, from the records
}


def _add_step(subparsers: argparse._SubParsersAction) -> None:
    # the workflow's internal command: callable, not listed for users (help=SUPPRESS; left out of the metavar)
    parser = subparsers.add_parser("step", help=argparse.SUPPRESS,
                                   description="One of the workflow's analysis/serving steps (used by its rules).")
    parser.add_argument("name", choices=sorted(STEPS))
    parser.add_argument("arguments", help="the step's keyword arguments, a JSON object")


def _run_step(args: argparse.Namespace) -> None:
    import importlib
    import inspect

    from maskbench.io.errors import ConfigError

    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as error:
        raise ConfigError(f"step {args.name}: arguments are not JSON ({error})") from None
    if not isinstance(arguments, dict):
        raise ConfigError(f"step {args.name}: expected a JSON object of keyword arguments, got {args.arguments!r}")
    module, name = STEPS[args.name].split(":")
    function = getattr(importlib.import_module(module), name)
    try:
        inspect.signature(function).bind(**arguments)
    except TypeError as error:
        raise ConfigError(f"step {args.name}: {error} (arguments: {sorted(arguments)})") from None
    function(**arguments)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskbench", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, title="commands")
    _add_train(subparsers)
    _add_prepare(subparsers)
    _add_predict(subparsers)
    _add_download(subparsers)
    _add_estimate(subparsers)
    _add_step(subparsers)
    _hide_commands(subparsers)
    return parser


def _hide_commands(subparsers: argparse._SubParsersAction) -> None:
    """List only the user commands (every command but :data:`HIDDEN_COMMANDS`) in usage and help."""
    shown = [name for name in subparsers.choices if name not in HIDDEN_COMMANDS]
    subparsers.metavar = "{" + ",".join(shown) + "}"
    subparsers._choices_actions = [action for action in subparsers._choices_actions
                                   if action.dest not in HIDDEN_COMMANDS]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status is :data:`EPILOG`'s. Bad input and environment faults (disk full, read-only
    or looping paths, no permission: the output location given cannot take the output) end in one line
    ``maskbench: error: ...`` and exit 2; an output held by another process in such a line and exit 1; Ctrl-C in
    ``maskbench: interrupted`` and exit 130 (outputs are written atomically, so nothing half-written is left). Other
    exceptions are bugs: tracebacks."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": _run_train, "prepare": _run_prepare, "predict": _run_predict, "download": _run_download,
                "estimate": _run_estimate, "step": _run_step}
    try:
        from maskbench.training.tracking import progress_bars_on_terminal_only

        progress_bars_on_terminal_only()  # a job log written to a file: no \r bar updates (before the imports)
        if args.command not in ("download", "estimate"):  # which load no model (quick without transformers)
            import transformers

            transformers.logging.set_verbosity_error()  # the expected "newly initialised head" report is noise here
        commands[args.command](args)
    except MaskbenchError as error:
        print(f"maskbench: error: {error}", file=sys.stderr)
        return exit_status(error)
    except KeyboardInterrupt:
        print("maskbench: interrupted (no partial output was left; a train run resumes from its last finished "
              "epoch when started again)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed by its reader (| head): stop quietly, as a shell tool does
        _silence_stdout()
        return 141
    except Exception as error:
        message = environment_fault(error, args)
        if message is None:
            raise  # a bug: the traceback says where
        print(f"maskbench: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def exit_status(error: MaskbenchError) -> int:
    """2 for bad input; 1 for an output that another maskbench process holds (the input is fine: run it again
    when that one is done)."""
    from maskbench.io.locks import OutputInUse

    return EXIT_FAILED if isinstance(error, OutputInUse) else EXIT_BAD_INPUT


def environment_fault(error: BaseException, args: argparse.Namespace | None = None) -> str | None:
    """The one-line message for an error the environment caused (an OSError, or a library's error naming an OS
    error code, e.g. safetensors' ``(os error 28)``): the path it names (else the command's output) and what
    happened; None for anything else."""
    from maskbench.io.fileio import describe_fault, fault_errno

    number = fault_errno(error)
    if not isinstance(error, OSError) and number is None:
        return None
    filename = getattr(error, "filename", None)
    where = filename if filename is not None else (getattr(args, "out", None) or getattr(args, "output", None))
    if number is not None:
        what = describe_fault(number)
    else:  # an OSError with a message of its own
        what = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"{where}: {what}" if where is not None else what


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass

if __name__ == "__main__":
    sys.exit(main())
