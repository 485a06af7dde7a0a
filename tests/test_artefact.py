"""One artefact format for every method: masks are saved with the ``maskbench.json`` and base-model check of the other
methods, a folder's method is told by that file, and mask directories of the old format (``mask_config.json``) still
load, serve and predict exactly as before.

These tests fail on the code before the common format (checked with ``PYTHONPATH=/work/main/src`` at the commit the
branch started from): ``save_masks`` wrote ``mask_config.json`` and no ``maskbench.json``, and a folder whose
``maskbench.json`` names a method was not told apart from one that names another when it lacked that method's files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from maskbench import MaskConfig, MultiTaskModel, load_masked_model, mask_model, save_masks
from maskbench.cli import main
from maskbench.data.models import load_model, load_tokenizer
from maskbench.io.errors import MaskFileError
from maskbench.training.artefact import DESCRIPTION_FILE, LEGACY_MASK_DESCRIPTION
from maskbench.training.masking.coding import COMPRESSED, PACKED_BITS
from maskbench.training.masking.serialization import read_mask_description
from maskbench.training.method_registry import registered
from maskbench.training.methods import get_method, method_of_artefact

TEXTS = ["a fine film", "dull and far too long", "x"]


def write_old_format(directory: Path, old: Path) -> Path:
    """A copy of the mask directory ``directory`` as the writer before the common format left it: the same tensor
    files and the same description, but without ``method`` and named ``mask_config.json`` (the old ``save_masks``
    wrote every other key of today's description, in the same ``json.dumps(..., indent=2, sort_keys=True)``)."""
    shutil.copytree(directory, old)
    description = json.loads((old / DESCRIPTION_FILE).read_text())
    del description["method"]
    (old / DESCRIPTION_FILE).unlink()
    (old / LEGACY_MASK_DESCRIPTION).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
    return old


def _masks(base_dir: Path, out: Path, mask_format: str, name: str = "sent", seed: int = 1) -> Path:
    torch.manual_seed(seed)
    model = load_model(str(base_dir), "single", ("neg", "pos"))
    mask_model(model, MaskConfig(blocks="1-3", initial_sparsity=0.2), generator=torch.Generator().manual_seed(seed))
    extra = {"task": name, "kind": "single", "label_names": ["neg", "pos"]}
    return save_masks(model, out, base=str(base_dir), extra=extra, mask_format=mask_format)


def _logits(model: torch.nn.Module, base_dir: Path) -> torch.Tensor:
    inputs = load_tokenizer(str(base_dir))(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("mask_format", [PACKED_BITS, COMPRESSED])
def test_masks_are_saved_in_the_common_format(tiny_bert_dir, tmp_path, mask_format):
    directory = _masks(tiny_bert_dir, tmp_path / "masks", mask_format)
    assert not (directory / LEGACY_MASK_DESCRIPTION).exists()
    description = json.loads((directory / DESCRIPTION_FILE).read_text())
    assert description["method"] == "masking" and description["mask_format"] == mask_format
    assert {"base_model", "model_class", "base_fingerprint", "fingerprint_layers", "files"} <= set(description)
    assert method_of_artefact(directory) is get_method("masking")
    model = load_masked_model(directory)
    assert model.maskbench_description["method"] == "masking"


@pytest.mark.parametrize("mask_format", [PACKED_BITS, COMPRESSED])
def test_an_old_mask_directory_still_loads_and_predicts_the_same(tiny_bert_dir, tmp_path, mask_format, capsys):
    new = _masks(tiny_bert_dir, tmp_path / "masks", mask_format)
    old = write_old_format(new, tmp_path / "old")
    assert method_of_artefact(old) is get_method("masking")
    assert read_mask_description(old) == {k: v for k, v in read_mask_description(new).items() if k != "method"}
    for merge in (True, False):
        assert torch.equal(_logits(load_masked_model(old, merge=merge), tiny_bert_dir),
                           _logits(load_masked_model(new, merge=merge), tiny_bert_dir))
    # served on one backbone, next to a mask directory of the new format
    other = _masks(tiny_bert_dir, tmp_path / "other", mask_format, name="other", seed=2)
    served = MultiTaskModel.from_masks(str(tiny_bert_dir), [old, other])
    reference = MultiTaskModel.from_masks(str(tiny_bert_dir), [new])
    assert [p.probabilities for p in served.predict("sent", TEXTS)] == \
        [p.probabilities for p in reference.predict("sent", TEXTS)]
    # and by the command line
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"task": "sent", "text": text}) + "\n" for text in TEXTS))
    outputs = []
    for directory in (old, new):
        out = tmp_path / f"{directory.name}.jsonl"
        argv = ["predict", "--base", str(tiny_bert_dir), "--masks", str(directory), "--input", str(source)]
        assert main([*argv, "--output", str(out)]) == 0, capsys.readouterr().err
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == len(TEXTS)


def test_an_old_mask_directory_of_another_base_model_is_refused(tiny_bert_dir, tmp_path):
    old = write_old_format(_masks(tiny_bert_dir, tmp_path / "masks", PACKED_BITS), tmp_path / "old")
    description = json.loads((old / LEGACY_MASK_DESCRIPTION).read_text())
    description["base_fingerprint"] = "0" * 64
    (old / LEGACY_MASK_DESCRIPTION).write_text(json.dumps(description))
    with pytest.raises(MaskFileError, match="not the model these masks were trained on"):
        load_masked_model(old)
    with pytest.raises(MaskFileError, match="not the model these masks were trained on"):
        MultiTaskModel.from_masks(str(tiny_bert_dir), [old])


@pytest.mark.parametrize("method", [name for name, info in registered().items() if info.load().artefact])
def test_the_description_tells_the_methods_apart(tmp_path, method):
    """A folder's method is the one its ``maskbench.json`` names, whatever tensor files lie beside it."""
    directory = tmp_path / "artefact"
    directory.mkdir()
    for other in registered().values():  # every method's tensor files, so that only the description decides
        for name in other.load().tensor_files:
            (directory / name).write_bytes(b"")
    (directory / DESCRIPTION_FILE).write_text(json.dumps({"method": method}))
    assert method_of_artefact(directory) is get_method(method)
    assert [m for m in registered() if get_method(m).recognises(directory)] == [method]


def test_a_mask_directory_naming_another_method_is_refused(tiny_bert_dir, tmp_path):
    directory = _masks(tiny_bert_dir, tmp_path / "masks", PACKED_BITS)
    description = json.loads((directory / DESCRIPTION_FILE).read_text())
    (directory / DESCRIPTION_FILE).write_text(json.dumps({**description, "method": "lora"}))
    with pytest.raises(MaskFileError, match=f"^{directory / DESCRIPTION_FILE}: a lora artefact, not masking$"):
        load_masked_model(directory)
