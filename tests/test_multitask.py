"""Many tasks on one backbone: same predictions as one rebuilt model per task, refusal of foreign masks, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertModel

from conftest import tiny_bert_config
from maskbench import MaskConfig, MultiTaskModel, load_masked_model, mask_model, save_masks
from maskbench.cli import main
from maskbench.data.models import load_model, load_tokenizer
from maskbench.io.errors import ConfigError, DataError, MaskFileError
from maskbench.training.masking.coding import COMPRESSED, PACKED_BITS

# name, kind, labels, masking config, stored format
TASKS = [
    ("sent", "single", ("neg", "pos"), MaskConfig(blocks="1-3", initial_sparsity=0.1), COMPRESSED),
    ("nli", "pair", ("entailment", "neutral", "contradiction"), MaskConfig(blocks="all", initial_sparsity=0.2),
     PACKED_BITS),
    ("topic", "single", ("a", "b", "c", "d"), MaskConfig(blocks="2-3", mask_classifier=False), COMPRESSED),
]
TEXTS = ["a fine film", "dull and far too long", "x", "the plot makes no sense at all"]
PAIRS = [(text, "it is about a film") for text in TEXTS]


def _save_task(base_dir: Path, out: Path, seed: int, name: str, kind: str, labels: tuple[str, ...],
               config: MaskConfig, mask_format: str) -> Path:
    torch.manual_seed(seed)
    model = load_model(str(base_dir), kind, labels)
    mask_model(model, config, generator=torch.Generator().manual_seed(seed))
    extra = {"task": name, "kind": kind, "label_names": list(labels), "seed": seed}
    return save_masks(model, out / name, base=str(base_dir), extra=extra, mask_format=mask_format)


@pytest.fixture
def task_dirs(tiny_bert_dir, tmp_path) -> list[Path]:
    return [_save_task(tiny_bert_dir, tmp_path / "masks", seed, *task) for seed, task in enumerate(TASKS, start=1)]


def _expected_logits(directory: Path, base_dir: Path, texts) -> torch.Tensor:
    tokenizer = load_tokenizer(str(base_dir))
    if isinstance(texts[0], tuple):
        inputs = tokenizer([a for a, _ in texts], [b for _, b in texts], padding=True, truncation=True,
                           max_length=128, return_tensors="pt")
    else:
        inputs = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        return load_masked_model(directory)(**inputs).logits


def test_every_task_predicts_like_its_own_rebuilt_model(tiny_bert_dir, task_dirs):
    model = MultiTaskModel.from_masks(str(tiny_bert_dir), task_dirs)
    assert sorted(model.tasks) == ["nli", "sent", "topic"]
    expected = {name: _expected_logits(directory, tiny_bert_dir, PAIRS if kind == "pair" else TEXTS)
                for (name, kind, *_), directory in zip(TASKS, task_dirs)}
    # switching back and forth must restore the backbone exactly each time
    for name in ("sent", "nli", "sent", "topic", "nli", "topic", "sent"):
        texts = PAIRS if name == "nli" else TEXTS
        assert torch.allclose(model.logits(name, texts), expected[name], atol=1e-6, rtol=0)
        assert model.active_task == name
    predictions = model.predict("nli", PAIRS, batch_size=3)
    labels = TASKS[1][2]
    assert [p.label for p in predictions] == [labels[i] for i in expected["nli"].argmax(dim=1)]
    for prediction in predictions:
        assert list(prediction.probabilities) == list(labels)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0)


def test_wrong_inputs_and_unknown_tasks_are_refused(tiny_bert_dir, task_dirs):
    model = MultiTaskModel.from_masks(str(tiny_bert_dir), task_dirs[:2])
    with pytest.raises(ConfigError, match="unknown task 'topic'"):
        model.predict("topic", TEXTS)
    with pytest.raises(DataError, match="sentence pairs"):
        model.predict("nli", TEXTS)
    with pytest.raises(DataError, match="single texts"):
        model.predict("sent", PAIRS)
    with pytest.raises(ConfigError, match="already loaded"):
        model.add_task(task_dirs[0])


def test_masks_of_another_base_model_are_refused(tiny_bert_dir, task_dirs, tmp_path):
    torch.manual_seed(99)  # same architecture and shapes, other weights
    other = tmp_path / "other-bert"
    BertModel(tiny_bert_config()).save_pretrained(other)
    load_tokenizer(str(tiny_bert_dir)).save_pretrained(other)
    foreign = _save_task(other, tmp_path / "foreign", 7, "sent-other", *TASKS[0][1:])
    with pytest.raises(MaskFileError, match="not the model these masks were trained on"):
        MultiTaskModel.from_masks(str(tiny_bert_dir), [task_dirs[0], foreign])


def test_cli_predict_writes_one_line_per_input(tiny_bert_dir, task_dirs, tmp_path, capsys):
    requests = [{"task": "nli", "text": a, "text_pair": b} for a, b in PAIRS[:2]]
    requests += [{"task": "sent", "text": text} for text in TEXTS]
    requests.insert(1, {"task": "topic", "text": "interleaved"})
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in requests))
    out = tmp_path / "out.jsonl"
    argv = ["predict", "--base", str(tiny_bert_dir), "--masks", *map(str, task_dirs), "--input", str(source)]
    assert main([*argv, "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["task"] for line in lines] == [r["task"] for r in requests]
    reference = MultiTaskModel.from_masks(str(tiny_bert_dir), task_dirs).predict("sent", TEXTS)
    assert [line["label"] for line in lines[3:]] == [p.label for p in reference]
    assert all(line["label"] in line["probabilities"] for line in lines)

    source.write_text(json.dumps({"task": "sent"}) + "\n")
    assert main(argv) == 2
    assert "in.jsonl:1: key 'text' is missing" in capsys.readouterr().err
    source.write_text(json.dumps({"task": "ner", "text": "x"}) + "\n")
    assert main(argv) == 2
    assert "unknown task 'ner'" in capsys.readouterr().err
    source.write_text(json.dumps({"task": "nli", "text": "x"}) + "\n")
    assert main(argv) == 2
    assert "needs 'text_pair'" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_zeroing_and_restoring_weights_is_bit_exact(dtype):
    from maskbench.serving.multitask import _gather_and_zero, _scatter

    weight = torch.randn(6, 9).to(dtype)
    original = weight.clone()
    positions = np.array([0, 7, 53], dtype=np.int32)
    values = _gather_and_zero(weight, positions)
    assert not weight.view(-1)[torch.from_numpy(positions).long()].any()
    _scatter(weight, positions, values)
    assert torch.equal(weight.view(torch.uint8), original.view(torch.uint8))


def _save_adapter_task(base_dir: Path, out: Path, seed: int, method: str, name: str, kind: str,
                       labels: tuple[str, ...], blocks: str) -> Path:
    """A LoRA/IA3/BitFit task trained two steps (so that it changes the backbone) and saved as a run saves it."""
    from maskbench.training.methods import get_method
    from maskbench.training.settings import TrainConfig

    torch.manual_seed(seed)
    mask = MaskConfig(blocks=blocks) if method != "bitfit" else MaskConfig()
    config = TrainConfig(method=method, model=str(base_dir), task="sst2", mask=mask)
    model = get_method(method).prepare(load_model(str(base_dir), kind, labels), config)
    optimizer = torch.optim.Adam(get_method(method).trainable_parameters(model), lr=5e-2)
    for _ in range(2):
        loss = model(input_ids=torch.randint(5, 1000, (4, 8)), labels=torch.randint(0, len(labels), (4,))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    extra = {"task": name, "kind": kind, "label_names": list(labels), "seed": seed}
    return get_method(method).save(model.eval(), out / name, base=str(base_dir), extra=extra)


def _fresh_logits(method: str, directory: Path, base_dir: Path, texts) -> torch.Tensor:
    """Logits of the task's own model, loaded from its artefact alone."""
    from maskbench.training.methods import get_method

    tokenizer = load_tokenizer(str(base_dir))
    inputs = tokenizer([a for a, _ in texts], [b for _, b in texts], padding=True, return_tensors="pt") \
        if isinstance(texts[0], tuple) else tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return get_method(method).load(directory)(**inputs).logits


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_adapter_tasks_are_served_with_mask_tasks_from_one_backbone(tiny_bert_dir, task_dirs, tmp_path, method):
    adapters = [_save_adapter_task(tiny_bert_dir, tmp_path / method, 10, method, "review", "single", ("bad", "good"),
                                   "1-3"),
                _save_adapter_task(tiny_bert_dir, tmp_path / method, 11, method, "para", "pair", ("no", "yes"), "2-3")]
    # BitFit after the adapters: its biases live in layers that peft has wrapped by then
    bitfit = _save_adapter_task(tiny_bert_dir, tmp_path / "bitfit", 13, "bitfit", "bits", "single", ("x", "y"), "")
    model = MultiTaskModel.from_masks(str(tiny_bert_dir), [task_dirs[0], *adapters, task_dirs[1], bitfit])
    assert sorted(model.tasks) == ["bits", "nli", "para", "review", "sent"]
    expected = {"review": _fresh_logits(method, adapters[0], tiny_bert_dir, TEXTS),
                "para": _fresh_logits(method, adapters[1], tiny_bert_dir, PAIRS),
                "bits": _fresh_logits("bitfit", bitfit, tiny_bert_dir, TEXTS),
                "sent": _expected_logits(task_dirs[0], tiny_bert_dir, TEXTS),
                "nli": _expected_logits(task_dirs[1], tiny_bert_dir, PAIRS)}
    assert not torch.allclose(expected["review"], expected["sent"][:, :2])
    # every order of neighbours: adapter -> adapter, adapter <-> masks, masks -> masks, BitFit <-> both
    for name in ("review", "sent", "para", "nli", "review", "para", "review", "sent", "nli", "bits", "para", "bits",
                 "sent", "bits", "review"):
        texts = PAIRS if name in ("nli", "para") else TEXTS
        logits = model.logits(name, texts)
        if name in ("review", "para", "bits"):  # nothing is merged: the same operations as the task's own model
            assert torch.equal(logits, expected[name]), name
        else:
            assert torch.allclose(logits, expected[name], atol=1e-6, rtol=0), name
    other = "ia3" if method == "lora" else "lora"
    mixed = _save_adapter_task(tiny_bert_dir, tmp_path / other, 12, other, "x", "single", ("a", "b"), "1-3")
    with pytest.raises(ConfigError, match="already serves"):
        model.add_task(mixed)


def test_bitfit_task_restores_the_backbone_biases(tiny_bert_dir, task_dirs, tmp_path):
    bitfit = _save_adapter_task(tiny_bert_dir, tmp_path / "bitfit", 14, "bitfit", "bits", "single", ("x", "y"), "")
    model = MultiTaskModel.from_masks(str(tiny_bert_dir), [bitfit, task_dirs[0]])
    pristine = {name: p.detach().clone() for name, p in model.backbone.named_parameters()}
    model.logits("bits", TEXTS)
    changed = [name for name, p in model.backbone.named_parameters() if not torch.equal(p, pristine[name])]
    assert changed and all(name.endswith(".bias") for name in changed)
    assert torch.allclose(model.logits("sent", TEXTS), _expected_logits(task_dirs[0], tiny_bert_dir, TEXTS),
                          atol=1e-6, rtol=0)
    model.activate("bits")
    model._restore()
    assert all(torch.equal(p, pristine[name]) for name, p in model.backbone.named_parameters())


def test_a_half_precision_checkpoint_is_trained_and_served_in_fp32(tiny_bert_dir, tmp_path):
    """transformers >= 5 loads a checkpoint in its stored dtype; maskbench holds every weight in fp32 regardless
    (Adam's state and the scores' gradients would otherwise be bf16, silently)."""
    base = tmp_path / "tiny-bert-bf16"
    BertModel.from_pretrained(tiny_bert_dir).to(torch.bfloat16).save_pretrained(base)
    load_tokenizer(str(tiny_bert_dir)).save_pretrained(base)
    assert BertModel.from_pretrained(base).dtype == torch.bfloat16  # the library default this guards against
    model = load_model(str(base), "single", ("neg", "pos"))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    directory = _save_task(base, tmp_path / "masks", 1, *TASKS[0])
    assert {p.dtype for p in load_masked_model(directory).parameters()} == {torch.float32}
    served = MultiTaskModel(str(base))
    assert {p.dtype for p in served.backbone.parameters()} == {torch.float32}
