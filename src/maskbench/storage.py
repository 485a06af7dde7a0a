"""On-disk formats of binary masks."""

from __future__ import annotations

import numpy as np
import torch

PACKED_BITS = "packed-bits-v1"


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """Bit-pack a bool tensor (row-major, 8 mask bits per uint8, little bit order)."""
    bits = mask.detach().to("cpu", torch.bool).contiguous().numpy().reshape(-1)
    return torch.from_numpy(np.packbits(bits, bitorder="little"))


def unpack_mask(packed: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """Inverse of :func:`pack_mask`; raises ValueError when the byte count does not fit ``shape``."""
    count = int(np.prod(shape))
    expected_bytes = (count + 7) // 8
    if packed.dtype != torch.uint8 or packed.numel() != expected_bytes:
        raise ValueError(f"packed mask has {packed.numel()} {packed.dtype} values; expected {expected_bytes} uint8 "
                         f"for shape {tuple(shape)}")
    bits = np.unpackbits(packed.numpy(), count=count, bitorder="little")
    return torch.from_numpy(bits.astype(bool)).reshape(shape)
