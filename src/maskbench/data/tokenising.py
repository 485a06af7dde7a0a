"""Turning a task's DatasetDict into model inputs: tokenisation per task kind, label alignment, padding."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from datasets import Dataset

from maskbench.io.errors import ConfigError

IGNORE_INDEX = -100


def check_max_length(value: Any) -> int:
    """A tokenisation length limit: a whole number in [8, 512] (the position embeddings of the paper's models)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 512:
        raise ConfigError(f"max_length: expected a whole number in [8, 512], got {value!r}")
    return value


def tokenize_dataset(dataset: Dataset, kind: str, tokenizer: Any, max_length: int = 128) -> Dataset:
    """Tokenise one split for ``kind``; tagging splits also get ``num_words``, ``excluded_words`` and ``empty_words``.

    Tagging: a word is represented by its **last** wordpiece; all other wordpieces get label -100 and are ignored
    by the loss and the metric. Words whose last wordpiece is cut off by ``max_length`` are excluded and counted.
    """
    if kind == "single":
        function = lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length)  # noqa: E731
    elif kind == "pair":
        function = lambda batch: tokenizer(batch["text"], batch["text_pair"], truncation=True,  # noqa: E731
                                           max_length=max_length)
    elif kind == "multiple_choice":
        function = lambda batch: _tokenize_choices(batch, tokenizer, max_length)  # noqa: E731
    elif kind == "tagging":
        function = lambda batch: _tokenize_words(batch, tokenizer, max_length)  # noqa: E731
    else:
        raise ValueError(f"unknown task kind {kind!r}")
    remove = [c for c in dataset.column_names if c not in ("label",)]
    tokenized = dataset.map(function, batched=True, remove_columns=remove, desc=f"tokenising ({kind})")
    if "label" in tokenized.column_names:
        tokenized = tokenized.rename_column("label", "labels")
    return tokenized


def _tokenize_choices(batch: dict, tokenizer: Any, max_length: int) -> dict:
    firsts = [context for context in batch["context"] for _ in range(4)]
    seconds = [ending for endings in batch["endings"] for ending in endings]
    encoded = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    return {key: [values[i:i + 4] for i in range(0, len(values), 4)] for key, values in encoded.items()}


def _tokenize_words(batch: dict, tokenizer: Any, max_length: int) -> dict:
    encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
    # The untruncated encoding tells how many wordpieces each word really has: a word is kept only if all of
    # them survived truncation, so that its last wordpiece is really its last.
    full = tokenizer(batch["tokens"], is_split_into_words=True, truncation=False, verbose=False)
    labels, num_words, excluded, empty = [], [], [], []
    for index, tags in enumerate(batch["tags"]):
        full_counts = Counter(word for word in full.word_ids(index) if word is not None)
        word_ids = encoded.word_ids(index)
        counts = Counter(word for word in word_ids if word is not None)
        last_piece = {word: position for position, word in enumerate(word_ids) if word is not None}
        row = [IGNORE_INDEX] * len(word_ids)
        for word, position in last_piece.items():
            if counts[word] == full_counts[word]:
                row[position] = tags[word]
        kept = sum(1 for label in row if label != IGNORE_INDEX)
        labels.append(row)
        num_words.append(kept)
        empty.append(len(tags) - len(full_counts))  # words the tokenizer turns into no wordpiece at all
        excluded.append(len(full_counts) - kept)
    return {**encoded, "labels": labels, "num_words": num_words, "excluded_words": excluded, "empty_words": empty}


class Collator:
    """Dynamic padding to the longest sequence in the batch (also across the 4 choices of multiple choice)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0, "labels": IGNORE_INDEX}

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key, pad_value in self.pad.items():
            if key not in features[0]:
                continue
            values = [f[key] for f in features]
            if key == "labels" and not isinstance(values[0], list):
                batch[key] = torch.tensor(values)
                continue
            multiple_choice = isinstance(values[0][0], list)
            rows = [row for value in values for row in value] if multiple_choice else values
            width = max(len(row) for row in rows)
            padded = torch.tensor([row + [pad_value] * (width - len(row)) for row in rows])
            batch[key] = padded.view(len(values), -1, width) if multiple_choice else padded
        return batch
