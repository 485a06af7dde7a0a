"""Batches of similar length: a seeded length-grouped sampler for training, length-sorted batches for evaluation.

Dynamic padding pads a batch to its longest member, so a batch that mixes a 5-token and a 60-token sentence
spends most of its compute on padding. Grouping by length inside large random pools keeps the training order
random at the pool level (every pool is a random draw of the data) while the batches inside a pool are
homogeneous; the batches are then shuffled, so that long and short batches alternate at random.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

#: batches per pool: 50 as in the Hugging Face ``LengthGroupedSampler``'s mega-batches
POOL_BATCHES = 50


def example_lengths(dataset) -> list[int]:
    """Wordpieces per example (multiple choice: of its longest choice), read from the ``input_ids`` column."""
    lengths = []
    for ids in dataset["input_ids"]:
        if ids and isinstance(ids[0], list):
            lengths.append(max(len(choice) for choice in ids))
        else:
            lengths.append(len(ids))
    return lengths


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Random pools of ``pool_batches * batch_size`` examples, each sorted by length and cut into batches.

    All randomness comes from ``generator`` and is drawn at the start of each epoch (one permutation of the
    examples, one of the batches), so the same seed gives the same batches, and restoring the generator's state
    (as a checkpoint does) reproduces the next epoch exactly.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                 pool_batches: int = POOL_BATCHES) -> None:
        if batch_size < 1 or pool_batches < 1:
            raise ValueError("batch_size and pool_batches must be positive")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.batch_size = batch_size
        self.pool_size = batch_size * pool_batches
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def batches(self) -> list[list[int]]:
        """The next epoch's batches (draws from the generator)."""
        order = torch.randperm(len(self.lengths), generator=self.generator)
        batches: list[list[int]] = []
        for start in range(0, len(order), self.pool_size):
            pool = order[start:start + self.pool_size]
            # stable sort, longest first: ties keep the pool's random order
            pool = pool[torch.sort(self.lengths[pool], descending=True, stable=True).indices]
            batches += [pool[i:i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in shuffled]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches of indices sorted by length (longest first); no randomness."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
