"""Property-based tests (hypothesis, bounded): the mask codec and the readers, on random valid and corrupted input.

Never a traceback (only the documented ValueError / DataError), never a wrong round trip.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from maskbench.data.tasks.readers import (
    CONLL_NER_LABELS,
    RTE_TSV,
    iob1_to_iob2,
    read_conll_file,
    read_trec_file,
    read_tsv,
)
from maskbench.io.errors import DataError, MaskFileError
from maskbench.training.masking.coding import (
    COMPRESSED,
    MASK_FORMATS,
    decode_mask,
    encode_mask,
    from_stored,
    pack_mask,
    to_stored,
    unpack_mask,
    zero_positions,
)

BOUNDED = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple)


@st.composite
def masks(draw) -> torch.Tensor:
    """Bool tensors of every density: all ones, all zeros, sparse, dense, random."""
    shape = draw(shapes)
    count = int(np.prod(shape))
    p_zero = draw(st.sampled_from([0.0, 0.01, 0.05, 0.3, 0.5, 0.9, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    bits = np.random.default_rng(seed).random(count) >= p_zero
    return torch.from_numpy(bits).reshape(shape)


@BOUNDED
@given(masks())
def test_codec_round_trip(mask):
    encoded = encode_mask(mask)
    assert torch.equal(decode_mask(encoded, mask.shape), mask)
    assert np.array_equal(zero_positions(encoded, mask.shape), np.flatnonzero(~mask.numpy().reshape(-1)))
    assert torch.equal(unpack_mask(pack_mask(mask), mask.shape), mask)
    for mask_format in MASK_FORMATS:
        assert torch.equal(from_stored(to_stored(mask, mask_format), mask.shape, mask_format), mask)


@BOUNDED
@given(masks(), st.data())
def test_codec_refuses_corrupted_payload(mask, data):
    """Any change to the coded bits, or a truncation, is a ValueError (CRC-32, sizes), never a wrong mask."""
    encoded = bytearray(encode_mask(mask))
    header = 36
    if data.draw(st.booleans(), label="truncate") or len(encoded) == header:
        cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
        corrupted = bytes(encoded[:cut])
    else:
        at = data.draw(st.integers(header, len(encoded) - 1), label="at")
        encoded[at] ^= data.draw(st.integers(1, 255), label="xor")
        corrupted = bytes(encoded)
    with pytest.raises(ValueError):
        decode_mask(corrupted, mask.shape)


@BOUNDED
@given(masks(), st.data())
def test_codec_header_damage_is_refused_or_decodes_to_the_shape(mask, data):
    """Header bytes are outside the CRC: damage there is a ValueError or a mask of the right shape (the mask file's
    SHA-256 in mask_config.json catches it; see test_damaged_mask_file_is_always_refused), never another error."""
    encoded = bytearray(encode_mask(mask))
    at = data.draw(st.integers(0, 35), label="at")
    encoded[at] ^= data.draw(st.integers(1, 255), label="xor")
    try:
        decoded = decode_mask(bytes(encoded), mask.shape)
    except ValueError:
        return
    assert decoded.shape == mask.shape and decoded.dtype == torch.bool


@BOUNDED
@given(st.binary(max_size=200), shapes)
def test_codec_random_bytes_never_crash(data, shape):
    try:
        decoded = decode_mask(data, shape)
    except ValueError:
        return
    assert decoded.shape == shape


@pytest.fixture(scope="module")
def saved_mask_dir(tmp_path_factory):
    from transformers import BertForSequenceClassification

    from conftest import tiny_bert_config
    from maskbench import MaskConfig, mask_model, save_masks

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(num_hidden_layers=1, vocab_size=100))
    mask_model(model, MaskConfig(blocks="all"))
    return save_masks(model, tmp_path_factory.mktemp("props") / "masks", base="unused", mask_format=COMPRESSED)


@BOUNDED
@given(st.data())
def test_damaged_mask_file_is_always_refused(saved_mask_dir, data):
    from maskbench.training.masking.serialization import MASKS_FILE, read_mask_description

    original = (saved_mask_dir / MASKS_FILE).read_bytes()
    at = data.draw(st.integers(0, len(original) - 1), label="at")
    damaged = bytearray(original)
    damaged[at] ^= data.draw(st.integers(1, 255), label="xor")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "masks"
        copy.mkdir()
        for path in saved_mask_dir.iterdir():
            (copy / path.name).write_bytes(path.read_bytes())
        (copy / MASKS_FILE).write_bytes(bytes(damaged))
        with pytest.raises(MaskFileError, match="checksum mismatch"):
            read_mask_description(copy)


# --- readers ----------------------------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\t\n\r\x85"),
                min_size=1, max_size=30).filter(lambda t: t.strip() == t and t)


def _write(text: str | bytes, name: str = "file") -> tuple[tempfile.TemporaryDirectory, Path]:
    holder = tempfile.TemporaryDirectory()
    path = Path(holder.name) / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return holder, path


@BOUNDED
@given(st.lists(st.tuples(texts, texts, st.sampled_from(RTE_TSV.raw_labels)), min_size=1, max_size=8))
def test_tsv_round_trip(rows):
    lines = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\t{a}\t{b}\t{label}" for i, (a, b, label) in enumerate(rows)]
    holder, path = _write("\n".join(lines) + "\n", "train.tsv")
    with holder:
        ds = read_tsv(path, RTE_TSV)
        assert ds["text"] == [a for a, _, _ in rows] and ds["text_pair"] == [b for _, b, _ in rows]
        assert [RTE_TSV.raw_labels[i] for i in ds["label"]] == [label for _, _, label in rows]


@BOUNDED
@given(st.binary(max_size=300))
def test_tsv_garbage_is_a_data_error_or_data(data):
    holder, path = _write(b"index\tsentence1\tsentence2\tlabel\n" + data, "train.tsv")
    with holder:
        try:
            ds = read_tsv(path, RTE_TSV)
        except DataError as error:
            assert "\n" not in str(error) and str(path) in str(error)
        else:
            assert len(ds) >= 1


@st.composite
def iob2_sentences(draw) -> list[list[str]]:
    """Valid IOB2 tag sequences (every entity starts with B-)."""
    sentences = []
    for _ in range(draw(st.integers(1, 5))):
        tags: list[str] = []
        for _ in range(draw(st.integers(1, 12))):
            choice = draw(st.sampled_from(CONLL_NER_LABELS))
            if choice.startswith("I-") and (not tags or tags[-1][2:] != choice[2:]):
                choice = "B-" + choice[2:]
            tags.append(choice)
        sentences.append(tags)
    return sentences


def _to_iob1(tags: list[str]) -> list[str]:
    return ["I-" + t[2:] if t.startswith("B-") and (i == 0 or tags[i - 1][2:] != t[2:]) else t
            for i, t in enumerate(tags)]


def _conll(sentences: list[list[str]]) -> str:
    blocks = ["\n".join(f"w{i} NN I-NP {tag}" for i, tag in enumerate(tags)) for tags in sentences]
    return "-DOCSTART- -X- -X- O\n\n" + "\n\n".join(blocks) + "\n"


@BOUNDED
@given(iob2_sentences())
def test_conll_iob2_and_its_iob1_rendering_read_alike(sentences):
    names = list(CONLL_NER_LABELS)
    for rendering in (sentences, [_to_iob1(tags) for tags in sentences]):
        holder, path = _write(_conll(rendering), "train.txt")
        with holder:
            ds = read_conll_file(path)
            assert [[names[t] for t in tags] for tags in ds["tags"]] == sentences
    assert [iob1_to_iob2(_to_iob1(tags)) for tags in sentences] == sentences


@BOUNDED
@given(iob2_sentences(), st.data())
def test_conll_stray_i_tag_in_an_iob2_file_is_refused_with_its_line(sentences, data):
    starts = [(s, i) for s, tags in enumerate(sentences) for i, tag in enumerate(tags) if tag.startswith("B-")
              and (i == 0 or tags[i - 1][2:] != tag[2:])]
    assume(len(starts) >= 2)
    s, i = data.draw(st.sampled_from(starts[1:]), label="stray")  # one entity keeps its B-: the file is IOB2
    sentences[s][i] = "I-" + sentences[s][i][2:]
    text = _conll(sentences)
    line = 3 + sum(len(tags) + 1 for tags in sentences[:s]) + i
    holder, path = _write(text, "train.txt")
    with holder:
        with pytest.raises(DataError, match=rf"train\.txt:{line}: tag I-\w+ starts an entity"):
            read_conll_file(path)


@BOUNDED
@given(st.binary(max_size=300))
def test_conll_and_trec_garbage_is_a_data_error_or_data(data):
    for reader in (read_conll_file, read_trec_file):
        holder, path = _write(data, "test.txt")
        with holder:
            try:
                ds = reader(path)
            except DataError as error:
                assert "\n" not in str(error)
            else:
                assert len(ds) >= 1


@BOUNDED
@given(st.lists(st.one_of(st.binary(max_size=40), st.builds(lambda t: json.dumps({"task": t, "text": t}).encode(),
                                                              texts)), min_size=1, max_size=6))
def test_request_file_garbage_is_a_data_error_or_requests(lines):
    from maskbench.serving.multitask import read_requests

    holder, path = _write(b"\n".join(lines), "in.jsonl")
    with holder:
        try:
            requests = read_requests(path)
        except DataError as error:
            assert "\n" not in str(error) and str(path) in str(error)
        else:
            assert all(isinstance(r.task, str) for r in requests)
