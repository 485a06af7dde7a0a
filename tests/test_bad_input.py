"""Bad input is refused with a one-line message naming the file or key, a non-zero exit, and no partial output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertModel

from conftest import tiny_bert_config
from maskbench import MaskConfig, load_masked_model, mask_model, save_masks
from maskbench.cli import main
from maskbench.data.models import load_model
from maskbench.io.errors import ConfigError, MaskbenchError, MaskFileError, OutputError


@pytest.fixture
def rte_dir(data_dir, tmp_path) -> Path:
    """A private copy of the RTE files that a case may break."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "rte", root / "rte")
    return root


def _train(tmp_path, *extra: str, task: str = "rte", model: str | None = None) -> tuple[int, str, Path]:
    out = tmp_path / "run"
    argv = ["train", "--method", "masking", "--task", task, "--lr", "1e-3", "--epochs", "1",
            "--max-train-examples", "8", "--max-eval-examples", "8", "--out", str(out), *extra]
    if model is not None:
        argv += ["--model", model]
    code = main(argv)
    return code, out


def _assert_refused(code: int, out: Path, capsys, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code != 0
    # progress bars may precede it; the error itself is the last line, alone, and no traceback is shown
    err_line = err.splitlines()[-1]
    assert err_line.startswith("maskbench: error:") and "Traceback" not in err, err
    err = err_line
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not out.exists(), f"partial output left in {out}"


CLI_CASES = {
    "unknown task": (["--task", "sst3"], "unknown task 'sst3'"),
    "sparsity above range": (["--initial-sparsity", "1.0"], "initial_sparsity: expected a number in (0, 1)"),
    "sparsity below range": (["--initial-sparsity", "-0.2"], "initial_sparsity"),
    "block range outside model": (["--blocks", "2-11"], "blocks: range '2-11' is outside the model's blocks 0-3"),
    "unparsable blocks": (["--blocks", "two"], "blocks: cannot parse 'two'"),
    "negative lr": (["--lr", "-1"], "lr: invalid value -1.0"),
    "zero batch size": (["--batch-size", "0"], "batch_size: invalid value 0"),
    "zero patience": (["--patience", "0"], "patience: invalid value 0"),
    "zero train examples": (["--max-train-examples", "0"], "max_train_examples: expected a positive number"),
    "too long max length": (["--max-length", "100000"], "max_length: invalid value 100000"),
    "save weights with masking": (["--save-weights"], "save_weights: only for finetuning"),
    # issue 13: every setting checked for type, finiteness and range before any data is read
    "infinite lr": (["--lr", "inf"], "lr: expected a finite number, got inf"),
    "nan lr": (["--lr", "nan"], "lr: expected a finite number, got nan"),
    "lr that underflows to zero": (["--lr", "1e-400"], "lr: invalid value 0.0"),
    "negative seed": (["--seed", "-1"], "seed: expected a whole number in [0, 2**32), got -1"),
    "seed beyond 32 bits": (["--seed", str(2**32)], "seed: expected a whole number in [0, 2**32)"),
    "zero epochs": (["--epochs", "0"], "epochs: invalid value 0"),
    "negative batch size": (["--batch-size", "-4"], "batch_size: invalid value -4"),
    "zero eval examples": (["--max-eval-examples", "0"], "max_eval_examples: expected a positive number"),
    "too short max length": (["--max-length", "4"], "max_length: invalid value 4"),
    "nan threshold": (["--threshold", "nan"], "threshold: expected a finite number, got nan"),
    "threshold below -init_scale": (["--threshold", "-1"], "threshold: expected a number above -init_scale"),
    "infinite init scale": (["--init-scale", "inf"], "init_scale: expected a finite number, got inf"),
    "zero init scale": (["--init-scale", "0"], "init_scale: expected a positive number, got 0.0"),
    "nan sparsity": (["--initial-sparsity", "nan"], "initial_sparsity: expected a finite number, got nan"),
    "zero sparsity": (["--initial-sparsity", "0"], "initial_sparsity: expected a number in (0, 1), got 0.0"),
    "empty blocks": (["--blocks", ""], "blocks: cannot parse ''"),
    "reversed block range": (["--blocks", "3-1"], "blocks: range '3-1' is outside"),
    "block beyond the model": (["--blocks", "7"], "blocks: range '7' is outside the model's blocks 0-3"),
    "unknown device": (["--device", "tpu"], "device: cannot use 'tpu'"),
    "malformed device": (["--device", "cuda:x"], "device: cannot use 'cuda:x'"),
    "unsupported device type": (["--device", "meta"], "device: expected 'cpu' or 'cuda[:N]', got 'meta'"),
    "cuda device beyond those present": (["--device", "cuda:64"], "device: 'cuda:64' requested"),
    "prepared data that does not exist": (["--prepared", "/nonexistent/prepared"],
                                          "/nonexistent/prepared/prepared.json: missing"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_bad_training_arguments(case, tiny_bert_dir, rte_dir, tmp_path, capsys):
    extra, fragment = CLI_CASES[case]
    args = ["--data-dir", str(rte_dir)]
    # later options win in argparse: the case's own values override the defaults above
    task = extra[extra.index("--task") + 1] if "--task" in extra else "rte"
    extra = [e for i, e in enumerate(extra) if e != "--task" and (i == 0 or extra[i - 1] != "--task")]
    code, out = _train(tmp_path, *args, *extra, task=task, model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, fragment)


def test_unknown_model_path(rte_dir, tmp_path, capsys):
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tmp_path / "no-such-model"))
    _assert_refused(code, out, capsys, "no-such-model", "does not exist")


def test_data_dir_without_the_task(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out = _train(tmp_path, "--data-dir", str(tmp_path / "empty"))
    _assert_refused(code, out, capsys, str(tmp_path / "empty" / "rte"), "does not exist")


def test_missing_split_file(tiny_bert_dir, rte_dir, tmp_path, capsys):
    (rte_dir / "rte" / "dev.tsv").unlink()
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, str(rte_dir / "rte" / "dev.tsv"))


def test_empty_data_file(tiny_bert_dir, rte_dir, tmp_path, capsys):
    (rte_dir / "rte" / "dev.tsv").write_text("")
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, str(rte_dir / "rte" / "dev.tsv"), "empty")


def test_row_with_wrong_column_count(tiny_bert_dir, rte_dir, tmp_path, capsys):
    path = rte_dir / "rte" / "train.tsv"
    lines = path.read_text().splitlines()
    lines[5] = "4\tonly two fields"
    path.write_text("\n".join(lines) + "\n")
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, f"{path}:6", "expected 4 tab-separated fields, found 2")


def test_unknown_label(tiny_bert_dir, rte_dir, tmp_path, capsys):
    path = rte_dir / "rte" / "train.tsv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\tcontradiction"
    path.write_text("\n".join(lines) + "\n")
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, str(path), "contradiction")


def test_prepared_data_of_another_model(tiny_bert_dir, rte_dir, tmp_path, capsys):
    prepared = tmp_path / "prepared"
    assert main(["prepare", "--task", "rte", "--model", "minilm", "--data-dir", str(rte_dir),
                 "--out", str(prepared)]) == 0
    code, out = _train(tmp_path, "--prepared", str(prepared), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, str(prepared / "prepared.json"), "prepared for model='minilm'")


def test_unknown_method_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--method", "pruning", "--task", "rte", "--lr", "1e-3", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and "invalid choice: 'pruning'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unknown_mask_config_key():
    with pytest.raises(ConfigError, match=r"mask config: unknown key\(s\) \['sparsity'\]"):
        MaskConfig.from_dict({"sparsity": 0.05})


@pytest.fixture
def saved_masks(tiny_bert_dir, tmp_path) -> Path:
    torch.manual_seed(0)
    model = load_model(str(tiny_bert_dir), "single", ("a", "b"))
    mask_model(model, MaskConfig(blocks="all"))
    return save_masks(model, tmp_path / "masks")


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "json"])
def test_damaged_mask_directory(saved_masks, damage):
    target = saved_masks / ("maskbench.json" if damage == "json" else "masks.safetensors")
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[:100])
    elif damage == "flip":
        target.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    elif damage == "delete":
        target.unlink()
    else:
        description = json.loads(data)
        del description["base_fingerprint"]
        target.write_text(json.dumps(description))
    with pytest.raises(MaskFileError) as error:
        load_masked_model(saved_masks)
    message = str(error.value)
    assert "\n" not in message and (str(target) in message or str(saved_masks) in message)


def test_mask_directory_of_another_base_model(saved_masks, tmp_path):
    torch.manual_seed(5)
    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "other-base")
    with pytest.raises(MaskFileError, match="is not the model these masks were trained on"):
        load_masked_model(saved_masks, base=str(tmp_path / "other-base"))


# --- never replace what the user owns (issue 13, item 2) --------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_kept(code: int, capsys, root: Path, before: dict[str, bytes], *fragments: str) -> None:
    """Refused with exit 2 and one line, and every file under ``root`` is exactly as it was (none added)."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    line = err.splitlines()[-1]
    assert line.startswith("maskbench: error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert _snapshot(root) == before
    assert [p.name for p in root.parent.iterdir() if p.name.startswith(f".{root.name}.")] == []


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("my thesis notes\n")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2\n")
    return path


def _prepare(rte_dir: Path, out: Path, model: str = "minilm") -> int:
    return main(["prepare", "--task", "rte", "--model", model, "--data-dir", str(rte_dir), "--out", str(out)])


def test_prepare_refuses_a_user_folder(rte_dir, tmp_path, capsys):
    out = _user_folder(tmp_path / "mine")
    before = _snapshot(out)
    _assert_kept(_prepare(rte_dir, out), capsys, out, before, str(out), "refusing to replace it")


def test_prepare_refuses_an_existing_file(rte_dir, tmp_path, capsys):
    (tmp_path / "holder").mkdir()
    out = tmp_path / "holder" / "prepared"
    out.write_text("not a directory\n")
    before = _snapshot(tmp_path / "holder")
    _assert_kept(_prepare(rte_dir, out), capsys, tmp_path / "holder", before, str(out), "not a directory")


def test_prepare_refuses_maskbench_output_of_another_kind(saved_masks, rte_dir, capsys):
    before = _snapshot(saved_masks)
    _assert_kept(_prepare(rte_dir, saved_masks), capsys, saved_masks, before, "maskbench masks output")


def test_prepare_replaces_its_own_output_and_fills_an_empty_folder(tiny_bert_dir, rte_dir, tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()  # empty (e.g. made by a workflow engine): nothing to lose
    assert _prepare(rte_dir, out, str(tiny_bert_dir)) == 0
    first = json.loads((out / "prepared.json").read_text())
    (out / ".maskbench-output.json").unlink()  # as written before the marker existed: recognised by its contents
    assert _prepare(rte_dir, out, str(tiny_bert_dir)) == 0
    assert json.loads((out / "prepared.json").read_text())["sizes"] == first["sizes"]
    assert sorted(p.name for p in out.iterdir()) == [".maskbench-output.json", "data", "prepared.json"]


def test_train_refuses_a_user_folder_before_training(tiny_bert_dir, rte_dir, tmp_path, capsys):
    out = _user_folder(tmp_path / "run")
    before = _snapshot(out)
    code, _ = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_kept(code, capsys, out, before, str(out), "notes.txt", "not a maskbench run")


def test_train_refuses_a_user_folder_in_place_of_its_masks(tiny_bert_dir, rte_dir, tmp_path, capsys):
    out = tmp_path / "run"
    _user_folder(out / "masks")
    before = _snapshot(out)
    code, _ = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_kept(code, capsys, out, before, str(out / "masks"), "refusing to replace it")


def test_train_refuses_a_finished_run_of_another_configuration(tiny_bert_dir, rte_dir, tmp_path, capsys):
    args = ["--data-dir", str(rte_dir), "--max-length", "32"]
    code, out = _train(tmp_path, *args, model=str(tiny_bert_dir))
    assert code == 0
    capsys.readouterr()
    before = _snapshot(out)
    code, _ = _train(tmp_path, *args, "--seed", "7", model=str(tiny_bert_dir))
    _assert_kept(code, capsys, out, before, str(out / "metrics.json"), "another configuration")
    code, _ = _train(tmp_path, *args, model=str(tiny_bert_dir))  # the same configuration again: replaced alike
    assert code == 0 and json.loads((out / "metrics.json").read_text())["config_hash"] == \
        json.loads(before["metrics.json"])["config_hash"]


def test_train_refuses_an_out_path_below_a_file(tiny_bert_dir, rte_dir, tmp_path, capsys):
    (tmp_path / "afile").write_text("x\n")
    out = tmp_path / "afile" / "run"
    code = main(["train", "--method", "masking", "--task", "rte", "--lr", "1e-3", "--model", str(tiny_bert_dir),
                 "--data-dir", str(rte_dir), "--out", str(out)])
    _assert_kept(code, capsys, tmp_path / "afile", {}, str(tmp_path / "afile"), "is not a directory")


def test_train_refuses_an_existing_file_as_run_directory(tiny_bert_dir, rte_dir, tmp_path, capsys):
    (tmp_path / "run").write_text("my file\n")
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "not a directory" in err and out.read_text() == "my file\n"


def _predict(tiny_bert_dir: Path, masks: Path, source: Path, output: Path) -> int:
    return main(["predict", "--base", str(tiny_bert_dir), "--masks", str(masks), "--input", str(source),
                 "--output", str(output)])


@pytest.fixture
def request_file(tmp_path) -> Path:
    source = tmp_path / "requests" / "in.jsonl"
    source.parent.mkdir()
    source.write_text(json.dumps({"task": "sent", "text": "a fine film"}) + "\n")
    return source


def test_predict_refuses_to_overwrite_its_own_input(tiny_bert_dir, saved_task_masks, request_file, capsys):
    before = _snapshot(request_file.parent)
    code = _predict(tiny_bert_dir, saved_task_masks, request_file, request_file)
    _assert_kept(code, capsys, request_file.parent, before, str(request_file), "refusing to replace it")


def test_predict_refuses_a_directory_as_output(tiny_bert_dir, saved_task_masks, request_file, capsys):
    target = _user_folder(request_file.parent / "results")
    before = _snapshot(request_file.parent)
    code = _predict(tiny_bert_dir, saved_task_masks, request_file, target)
    _assert_kept(code, capsys, request_file.parent, before, str(target), "is a directory")


def test_predict_replaces_its_own_earlier_output(tiny_bert_dir, saved_task_masks, request_file):
    output = request_file.parent / "out.jsonl"
    assert _predict(tiny_bert_dir, saved_task_masks, request_file, output) == 0
    first = output.read_text()
    assert _predict(tiny_bert_dir, saved_task_masks, request_file, output) == 0
    assert output.read_text() == first and json.loads(first)["task"] == "sent"


@pytest.fixture
def saved_task_masks(tiny_bert_dir, tmp_path) -> Path:
    torch.manual_seed(0)
    model = load_model(str(tiny_bert_dir), "single", ("neg", "pos"))
    mask_model(model, MaskConfig(blocks="all"))
    return save_masks(model, tmp_path / "task-masks", base=str(tiny_bert_dir),
                      extra={"task": "sent", "kind": "single", "label_names": ["neg", "pos"]})


def test_save_masks_refuses_a_user_folder(tiny_bert_dir, tmp_path):
    target = _user_folder(tmp_path / "mine")
    before = _snapshot(target)
    model = load_model(str(tiny_bert_dir), "single", ("a", "b"))
    mask_model(model, MaskConfig(blocks="all"))
    with pytest.raises(OutputError, match="refusing to replace it") as error:
        save_masks(model, target)
    assert "\n" not in str(error.value) and str(target) in str(error.value)
    assert _snapshot(target) == before and not list(tmp_path.glob(".mine.*"))


# --- the Python API (and the workflow's config) get the same checks as the command line --------------------

API_CASES = {
    "batch size as a string": ({"batch_size": "32"}, "batch_size: expected a whole number, got '32'"),
    "epochs as a bool": ({"epochs": True}, "epochs: expected a whole number, got True"),
    "fractional seed": ({"seed": 1.5}, "seed: expected a whole number, got 1.5"),
    "lr as a string": ({"lr": "1e-3"}, "lr: expected a finite number, got '1e-3'"),
    "lr as a bool": ({"lr": True}, "lr: expected a finite number, got True"),
    "fractional example limit": ({"max_train_examples": 2.5}, "max_train_examples: expected a whole number or none"),
    "group_by_length as a string": ({"group_by_length": "yes"}, "group_by_length: expected true/false, got 'yes'"),
    "blocks as a number": ({"mask": {"blocks": 5}}, "blocks: expected a string like '2-11', got 5"),
    "mask settings as a string": ({"mask": "all"}, "mask: expected a mapping of masking settings, got 'all'"),
    "no output path": ({"out": None}, "out: expected a path string, got None"),
    "model as a number": ({"model": 7}, "model: expected a string, got 7"),
    "device as a number": ({"device": 0}, "device: expected a path string or none, got 0"),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_bad_settings_through_the_python_api(case):
    from maskbench.training.settings import TrainConfig

    overrides, fragment = API_CASES[case]
    values = {"method": "masking", "model": "minilm", "task": "rte", "out": "run", **overrides}
    with pytest.raises(ConfigError) as error:
        TrainConfig(**values)
    assert fragment in str(error.value) and "\n" not in str(error.value)


# --- prepare and predict check their settings up front ------------------------------------------------------


def test_prepare_refuses_a_too_short_max_length(rte_dir, tmp_path, capsys):
    out = tmp_path / "prepared"
    code = main(["prepare", "--task", "rte", "--data-dir", str(rte_dir), "--max-length", "4", "--out", str(out)])
    _assert_refused(code, out, capsys, "max_length: expected a whole number in [8, 512], got 4")


def test_prepare_refuses_an_unknown_task(rte_dir, tmp_path, capsys):
    out = tmp_path / "prepared"
    code = main(["prepare", "--task", "sst3", "--data-dir", str(rte_dir), "--out", str(out)])
    _assert_refused(code, out, capsys, "unknown task 'sst3'")


PREDICT_CASES = {
    "zero batch size": (["--batch-size", "0"], "--batch-size: expected a positive whole number, got 0"),
    "zero max length": (["--max-length", "0"], "max_length: expected a whole number in [8, 512], got 0"),
    "unknown device": (["--device", "tpu"], "device: cannot use 'tpu'"),
}


@pytest.mark.parametrize("case", sorted(PREDICT_CASES))
def test_bad_predict_arguments(case, tiny_bert_dir, saved_task_masks, request_file, capsys):
    extra, fragment = PREDICT_CASES[case]
    output = request_file.parent / "out.jsonl"
    code = main(["predict", "--base", str(tiny_bert_dir), "--masks", str(saved_task_masks), "--input",
                 str(request_file), "--output", str(output), *extra])
    _assert_refused(code, output, capsys, fragment)


def test_request_file_that_is_not_utf8(tiny_bert_dir, saved_task_masks, request_file, capsys):
    request_file.write_bytes(request_file.read_bytes() + b'{"task": "sent", "text": "caf\xe9"}\n')
    output = request_file.parent / "out.jsonl"
    code = _predict(tiny_bert_dir, saved_task_masks, request_file, output)
    _assert_refused(code, output, capsys, f"{request_file}:2: not UTF-8 text")


def test_missing_request_file(tiny_bert_dir, saved_task_masks, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    code = _predict(tiny_bert_dir, saved_task_masks, tmp_path / "nope.jsonl", output)
    _assert_refused(code, output, capsys, "nope.jsonl: input file not found")


# --- malformed caches, checkpoints and mask directories: a message naming the file, not a traceback ---------


@pytest.fixture
def prepared_rte(tiny_bert_dir, rte_dir, tmp_path) -> Path:
    prepared = tmp_path / "prepared"
    assert _prepare(rte_dir, prepared, str(tiny_bert_dir)) == 0
    return prepared


def test_prepared_metadata_that_is_not_json(tiny_bert_dir, prepared_rte, tmp_path, capsys):
    (prepared_rte / "prepared.json").write_text('{"task": "rte", ')
    code, out = _train(tmp_path, "--prepared", str(prepared_rte), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, str(prepared_rte / "prepared.json"), "not valid JSON")


def test_prepared_data_folder_missing(tiny_bert_dir, prepared_rte, tmp_path, capsys):
    shutil.rmtree(prepared_rte / "data")
    code, out = _train(tmp_path, "--prepared", str(prepared_rte), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, str(prepared_rte / "data"), "unreadable prepared data")


@pytest.mark.parametrize("damage", ["no epoch", "not an object", "parameter missing"])
def test_damaged_checkpoint(damage, tiny_bert_dir, rte_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    args = ["--data-dir", str(rte_dir), "--max-length", "32", "--epochs", "2", "--patience", "2"]
    code, out = _train(tmp_path, *args, model=str(tiny_bert_dir))
    assert code == 0
    # a checkpoint of this very run, as after its first epoch, then damaged
    from maskbench.training.checkpoint import CHECKPOINT_DIR
    record = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").unlink()
    checkpoint = out / CHECKPOINT_DIR
    checkpoint.mkdir()
    tensors = {"current.x": torch.zeros(1), "rng.torch": torch.get_rng_state(),
               "rng.loader": torch.Generator().get_state()}
    state = {"config_hash": record["config_hash"], "epoch": 1, "history": [], "best_score": 0.5, "best_epoch": 1,
             "bad_epochs": 0, "stopped": False, "train_time": 1.0, "examples_seen": 8, "optimizer_param_groups": []}
    if damage == "no epoch":
        del state["epoch"]
    save_file(tensors, checkpoint / "tensors.safetensors")
    (checkpoint / "state.json").write_text(json.dumps([state] if damage == "not an object" else state))
    before = _snapshot(out)
    code, _ = _train(tmp_path, *args, model=str(tiny_bert_dir))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith(f"maskbench: error: {checkpoint}") and "delete" in err, err
    assert _snapshot(out) == before and not (out / "metrics.json").exists()
    assert load_file(checkpoint / "tensors.safetensors").keys() == tensors.keys()


@pytest.mark.parametrize("damage", ["layers not an object", "unknown file", "not an object", "bad shape",
                                    "bad mask setting"])
def test_malformed_mask_description(saved_masks, damage):
    path = saved_masks / "maskbench.json"
    description = json.loads(path.read_text())
    if damage == "layers not an object":
        description["layers"] = 5
    elif damage == "unknown file":
        description["files"]["../../etc/passwd"] = "0" * 64
    elif damage == "bad mask setting":
        description["mask_config"]["initial_sparsity"] = 2
    elif damage == "bad shape":
        description["layers"][next(iter(description["layers"]))] = ["32", 4]
    else:
        description = [description]
    path.write_text(json.dumps(description))
    with pytest.raises(MaskFileError) as error:
        load_masked_model(saved_masks)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


# --- records are always valid JSON ---------------------------------------------------------------------------


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_diverging_loss_is_recorded_as_null_with_a_flag(tiny_bert_dir, rte_dir, tmp_path):
    """An lr so large that the loss becomes NaN: the run ends, and its record is valid JSON that says so."""
    code = main(["train", "--method", "finetuning", "--task", "rte", "--lr", "1e30", "--epochs", "2",
                 "--batch-size", "4", "--max-length", "32", "--max-train-examples", "16", "--max-eval-examples", "8",
                 "--model", str(tiny_bert_dir), "--data-dir", str(rte_dir), "--out", str(tmp_path / "run")])
    assert code == 0
    record = _strict_json((tmp_path / "run" / "metrics.json").read_text())
    assert [h["train_loss"] for h in record["history"]] == [None, None]
    assert record["non_finite"] == ["history[0].train_loss=nan", "history[1].train_loss=nan"]


def test_write_json_never_writes_bare_nan(tmp_path):
    from maskbench.io.errors import OutputError
    from maskbench.io.fileio import write_json

    write_json(tmp_path / "r.json", {"a": float("inf"), "b": [1.0, float("-inf")], "c": 2})
    assert _strict_json((tmp_path / "r.json").read_text()) == {"a": None, "b": [1.0, None], "c": 2,
                                                                "non_finite": ["a=inf", "b[1]=-inf"]}
    with pytest.raises(OutputError, match="non-finite"):
        write_json(tmp_path / "l.json", [float("nan")])
    assert not (tmp_path / "l.json").exists()


# --- readers detect the format they are given: tag scheme, over-long fields, encodings --------------------------


def _iob2_to_iob1(text: str) -> str:
    """The IOB1 rendering of a CoNLL file in IOB2: B-X stays only right after another X entity."""
    lines, previous = [], "O"
    for line in text.split("\n"):
        fields = line.split()
        if len(fields) == 4 and fields[0] != "-DOCSTART-":
            tag = fields[3]
            if tag.startswith("B-") and previous[2:] != tag[2:]:
                fields[3] = "I-" + tag[2:]
            previous = tag
            line = " ".join(fields)
        else:
            previous = "O"
        lines.append(line)
    return "\n".join(lines)


@pytest.fixture
def conll_dir(data_dir, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(data_dir / "conll2003", root / "conll2003")
    return root


def test_iob1_file_is_read_as_the_same_iob2_data(conll_dir, data_dir):
    from maskbench.data.tasks.readers import IOB1_CONVERTED, read_conll_file

    path = conll_dir / "conll2003" / "dev.txt"
    path.write_text(_iob2_to_iob1(path.read_text()))
    assert "I-PER" in path.read_text() and path.read_text() != (data_dir / "conll2003" / "dev.txt").read_text()
    converted, original = read_conll_file(path), read_conll_file(data_dir / "conll2003" / "dev.txt")
    assert converted["tags"] == original["tags"] and converted["tokens"] == original["tokens"]
    assert IOB1_CONVERTED in converted.info.description and not original.info.description


def test_prepare_records_the_iob1_conversion(tiny_bert_dir, conll_dir, tmp_path):
    path = conll_dir / "conll2003" / "test.txt"
    path.write_text(_iob2_to_iob1(path.read_text()))
    out = tmp_path / "prepared"
    assert main(["prepare", "--task", "conll2003", "--model", str(tiny_bert_dir), "--data-dir", str(conll_dir),
                 "--out", str(out)]) == 0
    assert json.loads((out / "prepared.json").read_text())["data_notes"] == {
        "test": "test.txt: IOB1 tags converted to IOB2"}


def test_file_mixing_iob1_and_iob2_is_refused(tiny_bert_dir, conll_dir, tmp_path, capsys):
    path = conll_dir / "conll2003" / "dev.txt"
    lines = path.read_text().split("\n")
    stray = next(i for i, line in enumerate(lines) if line.endswith(" B-PER") and lines[i + 1].endswith(" I-PER"))
    lines[stray] = lines[stray][: -len("B-PER")] + "I-PER"
    path.write_text("\n".join(lines))
    code = main(["train", "--method", "masking", "--task", "conll2003", "--lr", "1e-3", "--model",
                 str(tiny_bert_dir), "--data-dir", str(conll_dir), "--out", str(tmp_path / "run")])
    _assert_refused(code, tmp_path / "run", capsys, f"{path}:{stray + 1}: tag I-PER starts an entity",
                    "expected IOB2 tags")


def test_latin1_data_file_names_file_and_line(tiny_bert_dir, rte_dir, tmp_path, capsys):
    path = rte_dir / "rte" / "dev.tsv"
    lines = path.read_text().split("\n")
    lines[3] = lines[3].replace(" ", " caf\u00e9 ", 1)
    path.write_bytes(b"\n".join(line.encode("latin-1", "replace") if i == 3 else line.encode()
                                 for i, line in enumerate(lines)))  # one line saved in another encoding
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, f"{path}:4: not valid utf-8-sig text", "0xe9")


def test_utf16_data_file_gets_a_hint(tiny_bert_dir, rte_dir, tmp_path, capsys):
    path = rte_dir / "rte" / "train.tsv"
    path.write_bytes(path.read_text().encode("utf-16"))
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, f"{path}:1:", "looks like UTF-16")


def test_over_long_field_names_file_and_line(tiny_bert_dir, rte_dir, tmp_path, capsys):
    path = rte_dir / "rte" / "train.tsv"
    lines = path.read_text().split("\n")
    lines[2] = lines[2].replace("\t", "\t" + "x" * 200_000, 1)  # e.g. line breaks lost in a copy
    path.write_text("\n".join(lines))
    code, out = _train(tmp_path, "--data-dir", str(rte_dir), model=str(tiny_bert_dir))
    _assert_refused(code, out, capsys, f"{path}:3: unreadable record", "field larger than field limit")


def test_over_long_conll_token_is_refused(conll_dir):
    from maskbench.data.tasks.readers import read_conll_file
    from maskbench.io.errors import DataError

    path = conll_dir / "conll2003" / "dev.txt"
    path.write_text("EU NNP B-NP B-ORG\n" + "y" * 5000 + " NN I-NP O\n")
    with pytest.raises(DataError, match=r"dev\.txt:2: token of 5000 characters") as error:
        read_conll_file(path)
    assert "\n" not in str(error.value)


# --- output paths that cannot be written are refused before any work (not after an epoch of training) -----------

unwritable = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (a file system nobody can write)")


@unwritable
def test_train_refuses_an_unwritable_out_before_training(tiny_bert_dir, rte_dir, capsys, monkeypatch):
    out = Path("/proc/maskbench-test/run")
    started = []
    monkeypatch.setattr("maskbench.training.train.load_tokenizer", lambda *a, **k: started.append(1))
    code = main(["train", "--method", "masking", "--task", "rte", "--lr", "1e-3", "--model", str(tiny_bert_dir),
                 "--data-dir", str(rte_dir), "--out", str(out)])
    _assert_refused(code, out, capsys, f"{out}: cannot be created, directory /proc is not writable")
    assert not started, "work began before the output path was checked"


@unwritable
def test_prepare_refuses_an_unwritable_out(rte_dir, capsys):
    out = Path("/proc/maskbench-test/prepared")
    code = main(["prepare", "--task", "rte", "--data-dir", str(rte_dir), "--out", str(out)])
    _assert_refused(code, out, capsys, f"{out}: cannot be created")


@unwritable
def test_predict_refuses_an_unwritable_output(tiny_bert_dir, saved_task_masks, request_file, capsys):
    output = Path("/proc/maskbench-test.jsonl")
    code = _predict(tiny_bert_dir, saved_task_masks, request_file, output)
    _assert_refused(code, output, capsys, f"{output}: cannot be created, directory /proc is not writable")


@pytest.mark.parametrize("arguments, fragment", [
    ("{not json", "arguments are not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"model": "minilm", "task": "sst2"}', "missing a required argument: 'out'"),
    ('{"model": "minilm", "task": "sst2", "out": "x.json", "colour": 1}', "unexpected keyword argument 'colour'"),
])
def test_a_step_with_bad_arguments_is_refused_before_work(arguments, fragment, tmp_path, capsys):
    out = tmp_path / "x.json"
    code = main(["step", "reference-sizes", arguments.replace("x.json", str(out))])
    _assert_refused(code, out, capsys, "step reference-sizes", fragment)


def test_run_log_replaces_only_its_own_earlier_output(tmp_path):
    from maskbench.results.runlog import write_run_log

    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    user_file = tmp_path / "notes.md"
    user_file.write_text("my notes\n")
    with pytest.raises(OutputError, match="not maskbench's run-log output"):
        write_run_log(str(results), str(user_file))
    assert user_file.read_text() == "my notes\n"
    out = tmp_path / "runs.md"
    write_run_log(str(results), str(out))
    write_run_log(str(results), str(out))  # its own earlier output is replaced
    assert out.read_text().startswith("# Finished runs (minilm)")
    (results / "runs" / "minilm" / "nosuchtask").mkdir(parents=True)
    with pytest.raises(MaskbenchError, match="nosuchtask.*not tasks"):
        write_run_log(str(results), str(out))
    (results / "runs" / "minilm" / "nosuchtask").rmdir()
    (results / "runs" / "minilm" / "rte" / "masking_s0.01_b2-5").mkdir(parents=True)  # an analysis variant: fine
    write_run_log(str(results), str(out))
    (results / "runs" / "minilm" / "rte" / "backup").mkdir()
    with pytest.raises(MaskbenchError, match=r"rte: folders \['backup'\] are neither methods"):
        write_run_log(str(results), str(out))
