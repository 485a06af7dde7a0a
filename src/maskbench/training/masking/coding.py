"""On-disk formats of binary masks: plain bit-packing (1 bit per weight) and a lossless sub-bit coding.

The compressed coding (:data:`COMPRESSED`) stores the positions of the minority value (the zeros of a trained mask)
as gaps, each Golomb-Rice coded with the parameter ``k`` that minimises the layer's size. For a mask whose zeros are
spread like independent coin flips with probability p this is within a few percent of the entropy H(p)
(0.286 bit per weight at p = 0.05). Unary parts and the k bit planes of the remainders are stored as separate
bit streams so that decoding is a handful of vectorised numpy passes (no per-symbol Python loop).

Layout of :func:`encode_mask`'s bytes (little endian): a 36-byte header (magic ``MBMK``, version, coding, coded
value, k, number of mask bits, number of coded positions, unary stream length in bits, CRC-32 of the payload),
then the payload: for Rice coding the unary stream followed by k bit planes of ``ceil(runs / 8)`` bytes each; for
raw coding (used when Rice would not be smaller, e.g. near 50 % zeros) the :func:`pack_mask` bytes.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import torch

from maskbench.training.masking.config import COMPRESSED, MASK_FORMATS, PACKED_BITS  # noqa: E402,F401

_MAGIC = b"MBMK"
_VERSION = 1
_CODING_RAW = 0
_CODING_RICE = 1
_HEADER = struct.Struct("<4sBBBBQQQI")

Encoded = bytes | bytearray | memoryview | np.ndarray
Shape = tuple[int, ...] | torch.Size


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """Bit-pack a bool tensor (row-major, 8 mask bits per uint8, little bit order)."""
    bits = mask.detach().to("cpu", torch.bool).contiguous().numpy().reshape(-1)
    return torch.from_numpy(np.packbits(bits, bitorder="little"))


def unpack_mask(packed: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Inverse of :func:`pack_mask`; raises ValueError when the byte count does not fit ``shape``."""
    count = int(np.prod(shape))
    expected_bytes = (count + 7) // 8
    if packed.dtype != torch.uint8 or packed.numel() != expected_bytes:
        raise ValueError(f"packed mask has {packed.numel()} {packed.dtype} values; expected {expected_bytes} uint8 "
                         f"for shape {tuple(shape)}")
    bits = np.unpackbits(packed.numpy(), count=count, bitorder="little")
    return torch.from_numpy(bits.astype(bool)).reshape(shape)


def rice_bits(gaps: np.ndarray, k: int) -> int:
    """Size in bits of Golomb-Rice coding ``gaps`` with parameter ``k`` (unary quotient + stop bit + k bits)."""
    return int(gaps.size * (k + 1) + np.sum(gaps >> k))


def _best_rice_parameter(gaps: np.ndarray) -> int:
    # The size is convex in k, so walking downhill from log2(mean gap) (near the optimum for geometric gaps)
    # finds the exact minimum in a few passes instead of one per possible k.
    if gaps.size == 0:
        return 0
    k = min(62, max(0, int(np.log2(max(float(gaps.mean()), 1.0)))))
    best = rice_bits(gaps, k)
    for step in (-1, 1):
        while 0 <= k + step <= 62 and (size := rice_bits(gaps, k + step)) < best:
            k, best = k + step, size
    return k


def encode_mask(mask: torch.Tensor) -> bytes:
    """Losslessly encode a bool tensor (its shape is not stored; pass it to :func:`decode_mask`)."""
    bits = mask.detach().to("cpu", torch.bool).contiguous().numpy().reshape(-1)
    count = bits.size
    ones = int(np.count_nonzero(bits))
    symbol = ones < count - ones  # code the positions of the rarer value
    positions = np.flatnonzero(bits == symbol)
    gaps = np.diff(positions, prepend=-1) - 1
    k = _best_rice_parameter(gaps)
    if rice_bits(gaps, k) >= count:
        payload = np.packbits(bits, bitorder="little").tobytes()
        return _HEADER.pack(_MAGIC, _VERSION, _CODING_RAW, 0, 0, count, 0, 0, zlib.crc32(payload)) + payload
    quotients = gaps >> k
    stops = np.cumsum(quotients + 1) - 1
    unary = np.zeros(int(stops[-1]) + 1 if stops.size else 0, dtype=bool)
    unary[stops] = True
    parts = [np.packbits(unary, bitorder="little").tobytes()]
    parts += [np.packbits((gaps >> j) & 1, bitorder="little").tobytes() for j in range(k)]
    payload = b"".join(parts)
    header = _HEADER.pack(_MAGIC, _VERSION, _CODING_RICE, int(symbol), k, count, gaps.size, unary.size,
                          zlib.crc32(payload))
    return header + payload


def _parse(data: Encoded, shape: Shape) -> tuple[int, bool, int, int, int, int, np.ndarray]:
    """Check an encoded mask's header and payload; returns (coding, value, k, count, runs, unary_bits, payload)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < _HEADER.size:
        raise ValueError(f"compressed mask: {buffer.size} bytes, shorter than its {_HEADER.size}-byte header")
    magic, version, coding, symbol, k, count, runs, unary_bits, crc = _HEADER.unpack(buffer[:_HEADER.size].tobytes())
    if magic != _MAGIC:
        raise ValueError(f"compressed mask: bad magic {magic!r} (expected {_MAGIC!r}); not an encoded mask")
    if version != _VERSION:
        raise ValueError(f"compressed mask: version {version}; this maskbench reads version {_VERSION}")
    expected_count = int(np.prod(shape))
    if count != expected_count:
        raise ValueError(f"compressed mask holds {count} bits but shape {tuple(shape)} needs {expected_count}")
    payload = buffer[_HEADER.size:]
    if coding == _CODING_RAW:
        expected_bytes = (count + 7) // 8
    elif coding == _CODING_RICE:
        if symbol > 1 or k > 62 or runs > count or unary_bits < runs:
            raise ValueError(f"compressed mask: invalid header (value {symbol}, k={k}, {runs} runs, "
                             f"{unary_bits} unary bits for {count} mask bits)")
        expected_bytes = (unary_bits + 7) // 8 + k * ((runs + 7) // 8)
    else:
        raise ValueError(f"compressed mask: unknown coding {coding} (expected {_CODING_RAW} or {_CODING_RICE})")
    if payload.size != expected_bytes:
        raise ValueError(f"compressed mask: payload is {payload.size} bytes, header says {expected_bytes} "
                         f"(truncated or corrupted)")
    if zlib.crc32(payload) != crc:
        raise ValueError("compressed mask: CRC-32 mismatch (corrupted data)")
    return coding, bool(symbol), k, count, runs, unary_bits, payload


def _rice_positions(payload: np.ndarray, k: int, count: int, runs: int, unary_bits: int) -> np.ndarray:
    """Flat positions of the coded value: unary quotients from the stop bits, remainders from the bit planes."""
    unary_bytes = (unary_bits + 7) // 8
    stops = np.flatnonzero(np.unpackbits(payload[:unary_bytes], count=unary_bits, bitorder="little"))
    if stops.size != runs or (runs and stops[-1] != unary_bits - 1):
        raise ValueError(f"compressed mask: unary stream has {stops.size} stop bits, header says {runs}")
    gaps = np.diff(stops, prepend=-1) - 1
    if k:
        gaps <<= k
        plane_bytes = (runs + 7) // 8
        for j in range(k):
            start = unary_bytes + j * plane_bytes
            plane = np.unpackbits(payload[start:start + plane_bytes], count=runs, bitorder="little")
            gaps |= plane.astype(np.int64) << j
    positions = np.cumsum(gaps + 1) - 1
    if runs and positions[-1] >= count:
        raise ValueError(f"compressed mask: position {positions[-1]} is outside the mask's {count} bits")
    return positions


def decode_mask(data: Encoded, shape: Shape) -> torch.Tensor:
    """Inverse of :func:`encode_mask`; raises ValueError on corrupt, truncated or mismatched data."""
    coding, symbol, k, count, runs, unary_bits, payload = _parse(data, shape)
    if coding == _CODING_RAW:
        return unpack_mask(torch.from_numpy(payload.copy()), shape)
    bits = np.full(count, not symbol)
    bits[_rice_positions(payload, k, count, runs, unary_bits)] = symbol
    return torch.from_numpy(bits).reshape(shape)


def zero_positions(data: Encoded, shape: Shape) -> np.ndarray:
    """Flat (row-major) int64 indices of the False entries of an encoded mask, checked like :func:`decode_mask`.

    When the zeros are the coded value (a mask with fewer zeros than ones) they come straight from the gaps,
    without building the dense mask.
    """
    coding, symbol, k, count, runs, unary_bits, payload = _parse(data, shape)
    if coding == _CODING_RICE and not symbol:
        return _rice_positions(payload, k, count, runs, unary_bits)
    return np.flatnonzero(~decode_mask(data, shape).numpy().reshape(-1))


def to_stored(mask: torch.Tensor, mask_format: str) -> torch.Tensor:
    """A mask as the uint8 tensor that a mask file of ``mask_format`` stores."""
    if mask_format == PACKED_BITS:
        return pack_mask(mask)
    if mask_format == COMPRESSED:
        return torch.frombuffer(bytearray(encode_mask(mask)), dtype=torch.uint8)
    raise ValueError(f"unknown mask format {mask_format!r}; expected one of {MASK_FORMATS}")


def from_stored(stored: torch.Tensor, shape: Shape, mask_format: str) -> torch.Tensor:
    """Inverse of :func:`to_stored` (ValueError when the data does not decode to ``shape``)."""
    if mask_format == PACKED_BITS:
        return unpack_mask(stored, shape)
    if mask_format == COMPRESSED:
        if stored.dtype != torch.uint8 or stored.dim() != 1:
            raise ValueError(f"compressed mask must be a 1-d uint8 tensor, got {stored.dtype} {tuple(stored.shape)}")
        return decode_mask(stored.numpy(), shape)
    raise ValueError(f"unknown mask format {mask_format!r}; expected one of {MASK_FORMATS}")
