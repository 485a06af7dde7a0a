"""The compressed mask coding: exact round trips, sub-bit sizes, refusal of bad data, use in mask directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from maskbench import MaskConfig, load_masked_model, mask_model, save_masks
from maskbench.data.models import load_model
from maskbench.io.errors import ConfigError, MaskFileError
from maskbench.io.fileio import sha256_file
from maskbench.training.artefact import DESCRIPTION_FILE
from maskbench.training.masking.coding import (
    COMPRESSED,
    PACKED_BITS,
    decode_mask,
    encode_mask,
    pack_mask,
    unpack_mask,
    zero_positions,
)
from maskbench.training.masking.serialization import MASKS_FILE


def _random_mask(shape: tuple[int, ...], sparsity: float, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) >= sparsity


@pytest.mark.parametrize("shape", [(1,), (7, 13), (33, 65), (0, 5), (3, 5, 11)])
@pytest.mark.parametrize("sparsity", [0.0, 0.001, 0.05, 0.1, 0.5, 0.93, 1.0])
def test_round_trip_is_exact(shape, sparsity):
    mask = _random_mask(shape, sparsity, seed=len(shape))
    decoded = decode_mask(encode_mask(mask), shape)
    assert decoded.dtype == torch.bool and decoded.shape == mask.shape
    assert torch.equal(decoded, mask)
    assert torch.equal(unpack_mask(pack_mask(mask), shape), mask)
    assert np.array_equal(zero_positions(encode_mask(mask), shape), np.flatnonzero(~mask.numpy().reshape(-1)))


def test_constant_masks_take_only_the_header():
    for value in (True, False):
        mask = torch.full((3072, 768), value)
        data = encode_mask(mask)
        assert len(data) <= 64
        assert torch.equal(decode_mask(data, mask.shape), mask)


@pytest.mark.parametrize("sparsity, limit", [(0.05, 0.35), (0.10, 0.55)])
def test_bert_base_sized_random_masks_are_below_the_bit_budget(sparsity, limit):
    shapes = [(768, 768), (3072, 768), (768, 3072)]
    masks = [_random_mask(shape, sparsity, seed=i) for i, shape in enumerate(shapes)]
    bits = sum(8 * len(encode_mask(mask)) for mask in masks)
    assert bits / sum(mask.numel() for mask in masks) <= limit


def test_dense_random_mask_falls_back_to_one_bit_per_weight():
    mask = _random_mask((300, 301), 0.5)
    assert len(encode_mask(mask)) <= len(pack_mask(mask)) + 64


def test_corrupt_or_mismatched_data_is_refused():
    mask = _random_mask((64, 96), 0.05)
    data = encode_mask(mask)
    with pytest.raises(ValueError, match="truncated"):
        decode_mask(data[:-3], mask.shape)
    with pytest.raises(ValueError, match="shorter than its"):
        decode_mask(data[:10], mask.shape)
    with pytest.raises(ValueError, match="CRC-32 mismatch"):
        decode_mask(data[:-1] + bytes([data[-1] ^ 0x10]), mask.shape)
    with pytest.raises(ValueError, match="bad magic"):
        decode_mask(b"XXXX" + data[4:], mask.shape)
    with pytest.raises(ValueError, match="version"):
        decode_mask(data[:4] + bytes([9]) + data[5:], mask.shape)
    with pytest.raises(ValueError, match="holds 6144 bits but shape"):
        decode_mask(data, (65, 96))


def _masked_tiny_model(base_dir: Path) -> torch.nn.Module:
    model = load_model(str(base_dir), "single", ("neg", "pos"))
    mask_model(model, MaskConfig(blocks="1-3", initial_sparsity=0.1), generator=torch.Generator().manual_seed(3))
    return model.eval()


def test_compressed_mask_directory_loads_to_identical_logits(tiny_bert_dir, tmp_path):
    model = _masked_tiny_model(tiny_bert_dir)
    save_masks(model, tmp_path / "packed", base=str(tiny_bert_dir))
    save_masks(model, tmp_path / "compressed", base=str(tiny_bert_dir), mask_format=COMPRESSED)
    description = json.loads((tmp_path / "compressed" / DESCRIPTION_FILE).read_text())
    assert description["mask_format"] == COMPRESSED
    assert json.loads((tmp_path / "packed" / DESCRIPTION_FILE).read_text())["mask_format"] == PACKED_BITS
    inputs = torch.randint(0, 1000, (3, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = load_masked_model(tmp_path / "packed")(input_ids=inputs).logits
        actual = load_masked_model(tmp_path / "compressed")(input_ids=inputs).logits
        direct = model(input_ids=inputs).logits
    assert torch.equal(actual, expected) and torch.equal(actual, direct)


def test_compressed_mask_that_does_not_decode_is_refused_naming_the_file(tiny_bert_dir, tmp_path):
    directory = save_masks(_masked_tiny_model(tiny_bert_dir), tmp_path / "masks", mask_format=COMPRESSED)
    stored = load_file(directory / MASKS_FILE)
    name = next(iter(stored))
    stored[name] = stored[name][:-2].clone()  # truncated, with a checksum that matches the damage
    save_file(stored, directory / MASKS_FILE, metadata={"format": COMPRESSED})
    description = json.loads((directory / DESCRIPTION_FILE).read_text())
    description["files"][MASKS_FILE] = sha256_file(directory / MASKS_FILE)
    (directory / DESCRIPTION_FILE).write_text(json.dumps(description))
    with pytest.raises(MaskFileError, match=rf"masks.safetensors: layer {name}: .*truncated"):
        load_masked_model(directory)


def test_unknown_mask_format_is_refused(tiny_bert_dir, tmp_path):
    with pytest.raises(ConfigError, match="mask_format"):
        save_masks(_masked_tiny_model(tiny_bert_dir), tmp_path / "masks", mask_format="gzip")
