"""Configuration values the workflow used to take silently or answer with a traceback (issue 31, findings 5, 6).

Path settings (``results_dir``, ``data_dir``, ``cache_dir``, model names) are checked when the configuration is
read (maskbench.io.locations.check_path_settings): no control characters, a leading ``~`` expanded for Snakemake's
paths and the jobs alike, ``results_dir`` never the filesystem root, the home directory or the checkout. Values
that name run folders read back exactly (maskbench.results.selection.format_lr), and one folder never stands for two
configured values. Seeds lie in [0, 2**32). The library functions are tested directly; the workflow cases are
dry runs of config/ci.yaml (seconds each).

On the code before this change: the refusals below were accepted (``results_dir: /``, control characters,
``seeds: [8589934592]``), ``~/x`` was planned as a literal ``~`` folder, ``1.2345678e-3`` was planned as
``lr0.00123457`` and ``1.0000001e-3`` merged with ``1.0e-3``, and ``epochs: "3"`` got the hint about ``1e-5``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, snakemake
from maskbench.io.errors import ConfigError, SettingError
from maskbench.io.locations import check_model_name, check_path_setting, check_path_settings, check_results_dir
from maskbench.results.selection import folder_labels, format_lr

# --- the library: path settings ---------------------------------------------------------------------------------


def _config(**paths) -> dict:
    return {"results_dir": "results", "data_dir": None, "cache_dir": None, "models": {"m": {"name": "minilm"}},
            **paths}


@given(before=st.text(max_size=8), control=st.characters(categories=["Cc"]), after=st.text(max_size=8),
       key=st.sampled_from(["results_dir", "data_dir", "cache_dir", "models.m.name"]))
def test_a_control_character_in_a_path_setting_is_refused_naming_the_key(before, control, after, key):
    value = f"res{before}{control}{after}"
    config = _config(models={"m": {"name": value}}) if key == "models.m.name" else _config(**{key: value})
    with pytest.raises(SettingError, match="control character") as error:
        check_path_settings(config, Path("/nonexistent/work"), Path("/nonexistent/checkout"))
    assert error.value.key == key
    assert isinstance(error.value, ConfigError)


def test_a_leading_tilde_is_expanded_or_refused(monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    checked = check_path_settings(_config(results_dir="~/res", data_dir="~/data", cache_dir="~"), tmp_path,
                                  REPO)
    assert checked == {"results_dir": f"{home}/res", "data_dir": f"{home}/data", "cache_dir": str(home)}
    assert check_path_setting("data_dir", "data/~x") == "data/~x"  # only a leading ~ is the shell's
    with pytest.raises(SettingError, match=r"'~no_such_user_31' is not the home directory") as error:
        check_path_setting("cache_dir", "~no_such_user_31/cache")
    assert error.value.key == "cache_dir"
    # a model name keeps its text (it is part of the run's settings); maskbench.io.locations.resolve_model expands it
    assert check_model_name("models.m.name", "~/models/bert") == "~/models/bert"
    with pytest.raises(SettingError, match="models.m.name"):
        check_model_name("models.m.name", "~no_such_user_31/bert")


@pytest.mark.parametrize("value, what", [
    ("/", "the filesystem root"),
    ("//", "the filesystem root"),
    ("/..", "the filesystem root"),
    ("~", "your home directory"),
    ("HOME", "your home directory"),
    ("home-link", "your home directory"),  # a symbolic link to it
    ("CHECKOUT", "the workflow's checkout"),
    (".", "the workflow's checkout"),  # relative to the working directory: the checkout itself here
    ("results/..", "the workflow's checkout"),
])
def test_results_dir_is_never_the_root_the_home_or_the_checkout(monkeypatch, tmp_path, value, what):
    home, checkout = tmp_path / "home", tmp_path / "checkout"
    home.mkdir()
    checkout.mkdir()
    (checkout / "home-link").symlink_to(home)
    monkeypatch.setenv("HOME", str(home))
    value = value.replace("HOME", str(home)).replace("CHECKOUT", str(checkout))
    with pytest.raises(SettingError, match=re.escape(what)) as error:
        check_results_dir(value, cwd=checkout, checkout=checkout)
    assert error.value.key == "results_dir"


@pytest.mark.parametrize("value", ["results", "results/reference", "~/results", "../elsewhere", "/tmp/results"])
def test_an_ordinary_results_dir_is_accepted(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    checked = check_results_dir(value, cwd=tmp_path / "checkout", checkout=tmp_path / "checkout")
    assert checked == value.replace("~", str(tmp_path / "home"))


# --- the library: folder labels ---------------------------------------------------------------------------------

positive_floats = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False)


@given(positive_floats)
def test_a_folder_label_reads_back_exactly_and_keeps_todays_text(lr):
    text = format_lr(lr)
    assert float(text) == lr
    assert re.fullmatch(r"[0-9][0-9.e+-]*", text)  # the workflow's wildcard constraint of {lr}
    if float(f"{lr:.6g}") == lr:
        assert text == f"{lr:.6g}"


@pytest.mark.parametrize("lr, text", [(1.2345678e-3, "0.0012345678"), (1.0000001e-3, "0.0010000001"),
                                      (1e-3, "0.001"), (3e-5, "3e-05"), (0.1 + 0.2, "0.30000000000000004")])
def test_lrs_with_more_than_six_digits_get_their_own_folder(lr, text):
    assert format_lr(lr) == text


def test_every_committed_reference_folder_keeps_its_name():
    """The committed runs' folders (lr<lr>, masking_s<sparsity>_b<blocks>) are the labels of their recorded
    values: renaming would orphan them."""
    runs = sorted((REPO / "results" / "reference" / "runs").glob("*/*/*/lr*/seed*/metrics.json"))
    assert len(runs) >= 160
    for path in runs:
        record = json.loads(path.read_text())
        method_dir, lr_dir = path.parts[-4], path.parts[-3]
        assert lr_dir == f"lr{format_lr(record['config']['lr'])}", path
        if method_dir.startswith("masking_s"):
            sparsity = record["config"]["mask"]["initial_sparsity"]
            assert method_dir.startswith(f"masking_s{format_lr(sparsity)}_b"), path


def test_one_folder_for_two_configured_values_is_refused_naming_the_key():
    assert folder_labels("lr_grid.masking", [1.0e-3, 1.0000001e-3, 3e-5]) == ["0.001", "0.0010000001", "3e-05"]
    with pytest.raises(SettingError, match=r"lr_grid.masking: 0.001 and '1.0e-3' are the same value") as error:
        folder_labels("lr_grid.masking", [0.001, "1.0e-3"])
    assert error.value.key == "lr_grid.masking"


# --- the workflow: dry runs of config/ci.yaml --------------------------------------------------------------------


def _dry_run(tmp_path: Path, change: dict, *args: str):
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config.update(change)
    path = tmp_path / "config under test.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--configfile", str(path), *args, timeout=120)
    return result, result.stdout + result.stderr


@pytest.mark.parametrize("change, expected", [
    ({"seeds": [1, 8589934592]}, r"'seeds.1' .*: 8589934592 is greater than the maximum of 4294967295"),
    ({"selection_seeds": [2**32]}, r"'selection_seeds.0' .*: 4294967296 is greater than the maximum"),
    ({"lr_grid": {"finetuning": [3.0e-4], "masking": [1.0e-3, 0.001]}},
     r"'lr_grid.masking' .*: \[0.001, 0.001\] has non-unique elements"),
    ({"training": {"epochs": "3"}}, r"'training.epochs' .*: '3' is not of type 'integer' \(the value is text: "
                                    r"write the number without quotes\)$"),
    ({"training": {"initial_sparsity": "5e-2"}}, r"'training.initial_sparsity' .*: '5e-2' is not of type "
                                                 r"'number' \(YAML reads 1e-5 as text: write 1.0e-5\)$"),
    ({"results_dir": "/"}, r"'results_dir' .*: '/' is the filesystem root \(/\)"),
    ({"results_dir": str(REPO)}, r"'results_dir' .*: '.*' is the workflow's checkout"),
    ({"results_dir": "res\nults"}, r"'results_dir' .*: 'res\\nults' contains the control character '\\n'"),
    ({"data_dir": "da\tta"}, r"'data_dir' .*: 'da\\tta' contains the control character '\\t'"),
    ({"models": {"minilm": {"name": "minilm\r"}}}, r"'models.minilm.name' .*control character '\\r'"),
    ({"cache_dir": "~no_such_user_31/cache"}, r"'cache_dir' .*'~no_such_user_31' is not the home directory"),
])
def test_a_wrong_setting_stops_the_plan_in_one_line_naming_it(tmp_path, change, expected):
    result, output = _dry_run(tmp_path, change)
    assert result.returncode != 0
    lines = [line for line in output.splitlines() if "invalid configuration at" in line]
    assert len(lines) == 1 and re.search(expected, lines[0]), output[-2000:]
    assert "Traceback" not in output
    assert not (tmp_path / "results").exists()


def test_lrs_plan_the_folders_of_their_exact_values(tmp_path):
    """1.0e-3 and 1.0000001e-3 are two runs (before: merged into lr0.001); 1.2345678e-3 trains exactly that
    (before: lr0.00123457, i.e. 1.23457e-3); the largest seed is planned."""
    change = {"lr_grid": {"finetuning": [3.0e-4], "masking": [1.0e-3, 1.0000001e-3, 1.2345678e-3]},
              "seeds": [1, 2**32 - 1]}
    result, output = _dry_run(tmp_path, change)
    assert result.returncode == 0, output[-3000:]
    planned = set(re.findall(r"runs/minilm/trec/masking/(lr[^/\s]+)/seed(\d+)/metrics.json", output))
    assert planned == {(lr, seed) for lr in ("lr0.001", "lr0.0010000001", "lr0.0012345678")
                       for seed in ("1", str(2**32 - 1))}
    commands = re.findall(r"--method masking .*--lr (\S+)", output)
    assert sorted(set(commands)) == ["0.001", "0.0010000001", "0.0012345678"]
    assert all(float(lr) in (1.0e-3, 1.0000001e-3, 1.2345678e-3) for lr in commands)


def test_initial_sparsities_of_the_analyses_get_a_folder_each(tmp_path):
    config = yaml.safe_load((REPO / "config" / "ci_analyses.yaml").read_text())
    config["analyses"] = {"sparsity": {**config["analyses"]["sparsity"],
                                       "initial_sparsities": [0.05, 0.5, 0.5000001]}}
    path = tmp_path / "analyses.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--configfile", str(path), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    variants = set(re.findall(r"runs/minilm/sst2/(masking_s[^/\s]+)/", output))
    assert variants == {"masking_s0.5_b2-5", "masking_s0.5000001_b2-5"}


def test_a_results_dir_under_the_home_directory_is_planned_there(tmp_path, monkeypatch):
    """``results_dir: ~/x`` is the home's ``x`` for Snakemake's paths and the jobs' shell commands alike (before:
    Snakemake made a literal ``./~`` folder while the unquoted shell wrote under the home)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    result, output = _dry_run(work, {"results_dir": "~/x"})
    assert result.returncode == 0, output[-3000:]
    assert f"{home}/x/runs/minilm/trec/masking/lr0.001/seed1/metrics.json" in output
    assert f"--out {home}/x/download/manifest.json" in output
    assert "~/x" not in output and not (work / "~").exists()


def test_a_missing_configfile_is_snakemakes_own_error_naming_it(tmp_path):
    """Snakemake reads --configfile before the Snakefile, so the workflow cannot word this error (documented in
    the Snakefile): its last line names the file, nothing is written."""
    result = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "missing.yaml"), timeout=120)
    assert result.returncode != 0
    last = [line for line in result.stdout.splitlines() if line.strip()][-1]  # Snakemake prints it on stdout
    assert "No such file or directory" in last and "missing.yaml" in last
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], [".snakemake"])
