"""Plain-data configuration of masking (serialised to JSON as-is)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from maskbench.io.errors import ConfigError

#: how a run stores its masks (:mod:`maskbench.training.masking.coding`): 1 bit per weight, or the lossless
#: sub-bit coding of the zeros' positions
PACKED_BITS = "packed-bits-v1"
COMPRESSED = "rice-gaps-v1"
MASK_FORMATS = (PACKED_BITS, COMPRESSED)


@dataclass
class MaskConfig:
    """Which layers are masked and how their scores start.

    Scores are drawn as in the authors' code (``MaskedLinear1``): U(-init_scale, (init_scale + threshold) /
    initial_sparsity - init_scale), so that the requested fraction starts below the threshold (masked out).
    """

    initial_sparsity: float = field(default=0.05, metadata={"help": "fraction of zeros in the initial mask"})
    threshold: float = field(default=0.01, metadata={"help": "score threshold of the binariser"})
    init_scale: float = field(default=0.02, metadata={
        "help": "scores start in U(-c, (c + threshold) / s - c), the authors' initialisation"})
    #: transformer blocks to mask, e.g. "2-11", "0-3,8-11" or "all"; None = the paper's default (block 2 to the last)
    blocks: str | None = field(default=None, metadata={
        "help": "blocks that masking, LoRA and IA3 adapt, e.g. '2-11' or 'all' (default: 2 to last)"})
    mask_pooler: bool = field(default=True, metadata={"help": "leave the pooler W_P unmasked"})
    mask_classifier: bool = field(default=True, metadata={"help": "leave the classifier W_T unmasked"})
    #: the authors keep the random classifier frozen and only mask it; True trains its weights as well
    train_classifier: bool = field(default=False, metadata={"help": "also train the classifier's weights"})

    def __post_init__(self) -> None:
        for key in ("initial_sparsity", "init_scale", "threshold"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        if not 0.0 < self.initial_sparsity < 1.0:
            raise ConfigError(f"initial_sparsity: expected a number in (0, 1), got {self.initial_sparsity!r}")
        if self.init_scale <= 0:
            raise ConfigError(f"init_scale: expected a positive number, got {self.init_scale!r}")
        if self.threshold <= -self.init_scale:
            raise ConfigError(f"threshold: expected a number above -init_scale ({-self.init_scale!r}), "
                              f"got {self.threshold!r}")
        for key in ("mask_pooler", "mask_classifier", "train_classifier"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}: expected true/false, got {getattr(self, key)!r}")
        if self.blocks is not None and not isinstance(self.blocks, str):
            raise ConfigError(f"blocks: expected a string like '2-11', got {self.blocks!r}")

    def resolve_blocks(self, num_blocks: int) -> list[int]:
        """Return the sorted block indices for a model with ``num_blocks`` transformer blocks."""
        spec = self.blocks
        if spec is None:
            return list(range(min(2, num_blocks - 1), num_blocks))
        if spec.strip().lower() == "all":
            return list(range(num_blocks))
        if spec.strip().lower() == "none":
            return []
        chosen: set[int] = set()
        for part in spec.split(","):
            part = part.strip()
            try:
                if "-" in part:
                    start, end = (int(x) for x in part.split("-"))
                else:
                    start = end = int(part)
            except ValueError:
                raise ConfigError(f"blocks: cannot parse {spec!r}; expected e.g. '2-11', '0,3,5-7', 'all' or "
                                  f"'none'") from None
            if start > end or start < 0 or end >= num_blocks:
                raise ConfigError(
                    f"blocks: range {part!r} is outside the model's blocks 0-{num_blocks - 1}"
                )
            chosen.update(range(start, end + 1))
        return sorted(chosen)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MaskConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        if "init_width" in data:
            raise ConfigError("mask config: 'init_width' (the old near-threshold initialisation) was replaced by "
                              "'init_scale', the authors' initialisation U(-c, (c + threshold) / s - c)")
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"mask config: unknown key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
