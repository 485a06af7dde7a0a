"""The command line explains itself: every option of every user command has help text and shows its default, the
internal ``step`` command is not listed but works, ``--version``, and the documented exit statuses.

Checked to fail on the code before (``PYTHONPATH=/work/main/src``): no help for --task/--lr/--seed or prepare's
options, no defaults shown, ``step`` listed, no --version, every failure exit 2."""

from __future__ import annotations

import argparse
import errno
import importlib.metadata

import pytest

from maskbench import cli
from maskbench.io.errors import ConfigError, DataError, MaskFileError, OutputError, RecordError
from maskbench.io.locks import OutputInUse

USER_COMMANDS = ("train", "prepare", "predict", "download")


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


@pytest.mark.parametrize("command", USER_COMMANDS)
def test_every_option_has_help_and_shows_its_default(command):
    sub = _subparsers(cli.build_parser()).choices[command]
    text = " ".join(sub.format_help().split())
    checked = 0
    for action in sub._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"{command} {action.option_strings[0]}: no help"
        helped = cli.HelpFormatter("maskbench")._get_help_string(action)
        switch = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
        if not (action.required or switch):
            assert "default" in helped, f"{command} {action.option_strings[0]}: default not shown: {helped!r}"
            if "default" not in action.help:  # shown by the formatter: its value
                value = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
                assert f"(default: {value})" in text, (command, action.option_strings[0])
        checked += 1
    assert checked >= {"train": 35, "prepare": 6, "predict": 7, "download": 5}[command]
    assert "exit status:" in text and "130" in text


def test_the_top_level_help_is_for_users():
    text = cli.build_parser().format_help()
    assert "Train and compare masking" in text and "Command line: parse" not in text
    assert "{train,prepare,predict,download,estimate}" in text and "step" not in text
    for command in USER_COMMANDS:
        assert f"    {command}" in text


def test_step_is_hidden_but_callable(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["step", "--help"])
    assert exit_info.value.code == 0 and "arguments" in capsys.readouterr().out
    args = cli.build_parser().parse_args(["step", "run-log", "{}"])
    assert args.command == "step" and args.name == "run-log"
    assert cli.main(["step", "run-log", "not json"]) == 2
    assert "step run-log: arguments are not JSON" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"maskbench {importlib.metadata.version('maskbench')}"


@pytest.mark.parametrize("error, status", [
    (ConfigError("lr: invalid"), 2), (DataError("train.tsv: empty"), 2), (MaskFileError("masks: corrupt"), 2),
    (RecordError("metrics.json: bad"), 2), (OutputError("out: not maskbench's"), 2),
    (OutputInUse("out: in use by another maskbench process"), 1),
    (OSError(errno.ENOSPC, "No space left on device", "out/x"), 2),
    (PermissionError(errno.EACCES, "Permission denied", "out/x"), 2),
    (KeyboardInterrupt(), 130)])
def test_exit_status_per_kind_of_failure(monkeypatch, capsys, error, status):
    def fail(args):
        raise error

    monkeypatch.setattr(cli, "_run_download", fail)
    assert cli.main(["download", "--out", "manifest.json"]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("maskbench: ")


def test_a_bug_is_not_hidden(monkeypatch):
    def fail(args):
        raise ZeroDivisionError

    monkeypatch.setattr(cli, "_run_download", fail)
    with pytest.raises(ZeroDivisionError):
        cli.main(["download", "--out", "manifest.json"])
