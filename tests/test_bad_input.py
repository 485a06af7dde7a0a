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
from maskbench.errors import ConfigError, MaskFileError
from maskbench.models import load_model


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
    "sparsity above range": (["--initial-sparsity", "1.0"], "initial_sparsity: expected a number in [0, 1)"),
    "sparsity below range": (["--initial-sparsity", "-0.2"], "initial_sparsity"),
    "block range outside model": (["--blocks", "2-11"], "blocks: range '2-11' is outside the model's blocks 0-3"),
    "unparsable blocks": (["--blocks", "two"], "blocks: cannot parse 'two'"),
    "negative lr": (["--lr", "-1"], "lr: invalid value -1.0"),
    "zero batch size": (["--batch-size", "0"], "batch_size: invalid value 0"),
    "zero patience": (["--patience", "0"], "patience: invalid value 0"),
    "zero train examples": (["--max-train-examples", "0"], "max_train_examples: expected a positive number"),
    "too long max length": (["--max-length", "100000"], "max_length: invalid value 100000"),
    "save weights with masking": (["--save-weights"], "save_weights: only for finetuning"),
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
    target = saved_masks / ("mask_config.json" if damage == "json" else "masks.safetensors")
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
