"""``maskbench predict`` streams (issue 31, item 6): output written chunk by chunk as predictions come (to stdout,
or to ``--output``'s temporary file renamed at the end), a progress bar on a terminal's stderr, request ids passed
through, ``--input -`` from stdin. Each case fails on the code before this change (checked with
``PYTHONPATH=/work/main/src``): ids were dropped, nothing was written before the last prediction, no bar, and
``-`` was "input file not found"."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import save_tiny_bert
from maskbench import MaskConfig, MultiTaskModel, mask_model, save_masks
from maskbench.cli import main
from maskbench.data.models import load_model
from maskbench.io.errors import DataError

TEXTS = ["a fine film", "dull and far too long", "x", "the plot makes no sense at all", "good", "bad", "fine"]


def _save(base: Path, out: Path, name: str, kind: str, labels: tuple[str, ...], seed: int) -> Path:
    torch.manual_seed(seed)
    model = load_model(str(base), kind, labels)
    mask_model(model, MaskConfig(blocks="all", initial_sparsity=0.2), generator=torch.Generator().manual_seed(seed))
    return save_masks(model, out / name, base=str(base),
                      extra={"task": name, "kind": kind, "label_names": list(labels)})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny BERT, two tasks' masks (single and pair) and the multi-task model serving them (built once)."""


    root = tmp_path_factory.mktemp("stream")
    save_tiny_bert(root / "tiny-bert")
    masks = [_save(root / "tiny-bert", root / "masks", "sent", "single", ("neg", "pos"), 1),
             _save(root / "tiny-bert", root / "masks", "nli", "pair", ("yes", "no", "maybe"), 2)]
    return root / "tiny-bert", masks, MultiTaskModel.from_masks(str(root / "tiny-bert"), masks)


def _requests(n: int) -> list[dict]:
    """``n`` requests alternating between the two tasks, each with an id."""
    return [{"id": f"r{i}", "task": "sent", "text": TEXTS[i % len(TEXTS)]} if i % 2 else
            {"id": i, "task": "nli", "text": TEXTS[i % len(TEXTS)], "text_pair": "it is about a film"}
            for i in range(n)]


def _argv(served, source: str | Path, *extra: str) -> list[str]:
    base, masks, _ = served
    return ["predict", "--base", str(base), "--masks", *map(str, masks), "--input", str(source), "--batch-size", "2",
            *extra]


def _write(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --- ids ------------------------------------------------------------------------------------------------------

scalars = st.one_of(st.text(max_size=12), st.integers(-2**70, 2**70), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ids=st.lists(st.one_of(st.just("absent"), st.tuples(scalars)), min_size=1, max_size=6))
def test_any_json_scalar_id_comes_back_with_its_prediction(served, tmp_path_factory, ids):
    from maskbench.serving.multitask import iter_predictions, output_record, read_requests

    records = []
    for i, identifier in enumerate(ids):
        record = {"task": "sent", "text": TEXTS[i % len(TEXTS)], "extra": "ignored"}
        if identifier != "absent":
            record["id"] = identifier[0]
        records.append(record)
    source = _write(tmp_path_factory.mktemp("ids") / "in.jsonl", records)
    requests = read_requests(source)
    lines = [json.loads(json.dumps(output_record(r, p), allow_nan=False))
             for chunk in iter_predictions(served[2], requests, batch_size=2, chunk_size=3) for r, p in chunk]
    assert len(lines) == len(records)
    for record, line in zip(records, lines):
        assert set(line) == {"task", "label", "probabilities"} | ({"id"} if "id" in record else set())
        if "id" in record:
            assert line["id"] == record["id"] and type(line["id"]) is type(record["id"])
        assert line["label"] in line["probabilities"] and math.isclose(sum(line["probabilities"].values()), 1.0,
                                                                       rel_tol=1e-5)


@pytest.mark.parametrize("identifier", ['{"a": 1}', "[1, 2]", "NaN", "Infinity"])
def test_an_id_that_is_not_a_scalar_is_refused_naming_the_line(tmp_path, identifier):
    from maskbench.serving.multitask import read_requests

    source = tmp_path / "in.jsonl"
    source.write_text('{"task": "sent", "text": "x"}\n{"task": "sent", "text": "y", "id": ' + identifier + "}\n")
    with pytest.raises(DataError, match=f"^{source}:2: key 'id' must be a JSON string, number, boolean or null"):
        read_requests(source)


def test_cli_passes_ids_through_in_input_order(served, tmp_path):
    requests = _requests(9)
    source = _write(tmp_path / "in.jsonl", requests)
    out = tmp_path / "out.jsonl"
    assert main(_argv(served, source, "--output", str(out))) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [r["id"] for r in requests]
    assert [line["task"] for line in lines] == [r["task"] for r in requests]
    assert all(list(line) == ["id", "task", "label", "probabilities"] for line in lines)
    assert main(_argv(served, source, "--output", str(out))) == 0  # its own earlier output (with ids) is replaced


# --- stdin -----------------------------------------------------------------------------------------------------

def test_input_dash_reads_standard_input(served, tmp_path, capsys, monkeypatch):
    requests = _requests(5)
    data = "".join(json.dumps(r) + "\n" for r in requests).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(_argv(served, "-")) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == [r["id"] for r in requests]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"task": "sent"}\n')))
    assert main(_argv(served, "-")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "maskbench: error: <stdin>:1: key 'text' is missing or not a string"


# --- streaming -------------------------------------------------------------------------------------------------

@pytest.fixture
def events(monkeypatch):
    """Records each call of the model's ``predict`` (chunks of 2 batches of 2)."""
    import maskbench.serving.multitask as multitask

    recorded: list[tuple[str, object]] = []
    real = multitask.MultiTaskModel.predict

    def predict(self, task, texts, batch_size=32):
        recorded.append(("predict", task))
        return real(self, task, texts, batch_size)

    monkeypatch.setattr(multitask.MultiTaskModel, "predict", predict)
    monkeypatch.setattr(multitask, "CHUNK_BATCHES", 2)
    return recorded


def test_stdout_gets_each_chunk_before_the_next_is_predicted(served, tmp_path, events, monkeypatch):
    class Recorder(io.StringIO):
        def write(self, text):
            events.append(("write", text.count("\n")))
            return super().write(text)

    stdout = Recorder()
    monkeypatch.setattr(sys, "stdout", stdout)
    source = _write(tmp_path / "in.jsonl", _requests(10))
    assert main(_argv(served, source)) == 0
    writes = [i for i, (kind, _) in enumerate(events) if kind == "write"]
    predicts = [i for i, (kind, _) in enumerate(events) if kind == "predict"]
    assert len(stdout.getvalue().splitlines()) == 10
    assert len(writes) == 3 and writes[0] < predicts[-1], events  # chunks of 4, 4, 2 requests
    assert [n for kind, n in events if kind == "write"] == [4, 4, 2]


def test_output_streams_into_its_temporary_file_then_is_renamed(served, tmp_path, events, monkeypatch):
    import maskbench.serving.multitask as multitask

    out = tmp_path / "out.jsonl"
    seen = []
    real = multitask.MultiTaskModel.predict  # the events fixture's recorder

    def predict(self, task, texts, batch_size=32):
        temporaries = sorted(tmp_path.glob(".out.jsonl.*.tmp"))
        seen.append((out.exists(), [len(p.read_text().splitlines()) for p in temporaries]))
        return real(self, task, texts, batch_size)

    monkeypatch.setattr(multitask.MultiTaskModel, "predict", predict)
    source = _write(tmp_path / "in.jsonl", _requests(10))
    assert main(_argv(served, source, "--output", str(out))) == 0
    assert not any(exists for exists, _ in seen), "the output appeared before the last prediction"
    assert [sizes for _, sizes in seen][-1] == [8], seen  # the last chunk's prediction: two chunks already written
    assert len(out.read_text().splitlines()) == 10 and list(tmp_path.glob(".out.jsonl.*")) == []


def test_streamed_predictions_equal_one_pass_over_all_requests(served, tmp_path):
    from maskbench.serving.multitask import iter_predictions, predict_requests, read_requests

    requests = read_requests(_write(tmp_path / "in.jsonl", _requests(11)))
    whole = predict_requests(served[2], requests, batch_size=2)
    streamed = [p for chunk in iter_predictions(served[2], requests, batch_size=2, chunk_size=3) for _, p in chunk]
    assert [(p.task, p.label) for p in streamed] == [(p.task, p.label) for p in whole]
    for a, b in zip(streamed, whole):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


# --- progress bar ----------------------------------------------------------------------------------------------

def test_a_progress_bar_on_a_terminal_and_none_otherwise(served, tmp_path, capsys, monkeypatch):
    source = _write(tmp_path / "in.jsonl", _requests(6))
    out = tmp_path / "out.jsonl"
    assert main(_argv(served, source, "--output", str(out))) == 0
    assert "predict:" not in capsys.readouterr().err  # stderr is not a terminal: no bar of ours

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(_argv(served, source, "--output", str(out))) == 0
    assert "predict: 100%" in terminal.getvalue() and "6/6" in terminal.getvalue()


# --- the NaN check is kept --------------------------------------------------------------------------------------

def test_non_finite_probabilities_are_refused_and_leave_no_output(served, tmp_path, capsys, monkeypatch):
    import maskbench.serving.multitask as multitask

    monkeypatch.setattr(multitask.MultiTaskModel, "logits",
                        lambda self, task, texts: torch.full((len(texts), 2 if task == "sent" else 3), math.nan))
    source = _write(tmp_path / "in.jsonl", _requests(4))
    out = tmp_path / "out.jsonl"
    assert main(_argv(served, source, "--output", str(out))) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"maskbench: error: {source}:1: the model's probabilities are not finite"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
