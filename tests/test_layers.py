"""The import layers (issue 35): packages by stage, a module imports only from its own or lower layers, no cycle.

The contract is in ``pyproject.toml`` (``[tool.importlinter]``) and ``lint-imports`` runs in the README's test
command. These tests run it on this checkout, check that every package of maskbench is in a layer (a new package
cannot escape the contract), and that the contract does catch an upward import and a cycle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter's own TOML reader
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def _lint_imports(src: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with this checkout's contract on the maskbench under ``src`` (no cache)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
               "sys.exit(lint_imports_command())", "--config", str(REPO / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def _layers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [contract["layers"] for contract in config["contracts"] if contract["type"] == "layers"]
    return [name.strip() for layer in layers for name in layer.replace("|", ":").split(":")]


def test_the_import_layers_hold_and_there_is_no_cycle(tmp_path):
    result = _lint_imports(SRC, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_every_module_of_maskbench_is_in_a_layer():
    package = SRC / "maskbench"
    children = {f"maskbench.{path.stem}" for path in package.glob("*.py") if path.name != "__init__.py"}
    children |= {f"maskbench.{path.name}" for path in package.iterdir() if (path / "__init__.py").is_file()}
    assert children == set(_layers()), "a module or package of maskbench outside the layers (pyproject.toml)"


@pytest.mark.parametrize(("module", "line", "expected"), [
    # the io layer asking the results layer
    ("io/errors.py", "from maskbench.results import tables  # noqa", "maskbench.io is not allowed to import "
                                                                      "maskbench.results"),
    # a cycle inside training: train imports batching, batching would import train (in a function: it counts)
    ("training/batching.py", "def _cycle():\n    from maskbench.training import train  # noqa\n",
     "No cycles are allowed in maskbench.training"),
])
def test_the_contract_refuses_an_upward_import_and_a_cycle(tmp_path, module, line, expected):
    src = tmp_path / "src"
    shutil.copytree(SRC / "maskbench", src / "maskbench", ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / "maskbench" / module, "a") as file:
        file.write("\n" + line + "\n")
    result = _lint_imports(src, tmp_path)
    assert result.returncode != 0 and expected in result.stdout, result.stdout + result.stderr


def test_only_the_run_records_module_spells_the_run_file_names():
    """Issue 35 item 3: the run folder's file names are defined once (:mod:`maskbench.records`), not in five places;
    every other module asks it (``METRICS_FILE``, ``PREDICTIONS_FILE``, ``run_record_paths``, ...)."""
    spelled = sorted(str(path.relative_to(SRC)) for path in (SRC / "maskbench").rglob("*.py")
                     if path.name != "records.py"
                     and any(f"{quote}{name}{quote}" in path.read_text() or f"/{name}{quote}" in path.read_text()
                             for name in ("metrics.json", "predictions.safetensors") for quote in "\"'"))
    assert spelled == [], f"run file names spelled outside maskbench.records: {spelled}"
