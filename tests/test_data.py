"""Preprocessing: last-wordpiece alignment, excluded-word counting, padding for every task kind."""

from __future__ import annotations

import torch
from datasets import Dataset

from maskbench.data.models import load_tokenizer
from maskbench.data.tokenising import IGNORE_INDEX, Collator, tokenize_dataset


def _aligned(tokens, tags, max_length=128):
    tokenizer = load_tokenizer("minilm")
    row = tokenize_dataset(Dataset.from_dict({"tokens": [tokens], "tags": [tags]}), "tagging", tokenizer, max_length)[0]
    pieces = tokenizer.convert_ids_to_tokens(row["input_ids"])
    return [(piece, label) for piece, label in zip(pieces, row["labels"])], row


def test_word_is_labelled_at_its_last_wordpiece():
    # hand-checked: "Vinken" -> vin ##ken, "unaffable" -> una ##ffa ##ble (uncased wordpiece vocabulary)
    pairs, row = _aligned(["Pierre", "Vinken", "is", "unaffable", "."], [1, 2, 3, 4, 5])
    assert pairs == [("[CLS]", IGNORE_INDEX), ("pierre", 1), ("vin", IGNORE_INDEX), ("##ken", 2), ("is", 3),
                     ("una", IGNORE_INDEX), ("##ffa", IGNORE_INDEX), ("##ble", 4), (".", 5), ("[SEP]", IGNORE_INDEX)]
    assert (row["num_words"], row["excluded_words"], row["empty_words"]) == (5, 0, 0)


def test_words_cut_off_by_the_length_limit_are_excluded_and_counted():
    # 8 wordpieces fit between [CLS] and [SEP]; "unaffable" (pieces 7-9) is cut inside, "end" is cut entirely
    tokens = ["a", "b", "c", "d", "e", "f", "unaffable", "end"]
    pairs, row = _aligned(tokens, list(range(8)), max_length=10)
    assert [label for _, label in pairs if label != IGNORE_INDEX] == [0, 1, 2, 3, 4, 5]
    assert [piece for piece, _ in pairs][-3:] == ["una", "##ffa", "[SEP]"]
    assert (row["num_words"], row["excluded_words"]) == (6, 2)


def test_multiple_choice_rows_are_padded_across_choices():
    tokenizer = load_tokenizer("minilm")
    data = Dataset.from_dict({"context": ["He sat down.", "She ran."],
                              "endings": [["He smiled.", "It rained a lot today outside.", "No.", "Yes."]] * 2,
                              "label": [1, 3]})
    encoded = tokenize_dataset(data, "multiple_choice", tokenizer)
    batch = Collator(tokenizer.pad_token_id)([dict(row) for row in encoded])
    assert batch["input_ids"].shape[:2] == (2, 4) and batch["labels"].tolist() == [1, 3]
    longest = max(len(ids) for row in encoded for ids in row["input_ids"])
    assert batch["input_ids"].shape[2] == longest
    assert int(batch["attention_mask"][0, 2].sum()) == len(encoded[0]["input_ids"][2])


def test_pair_inputs_have_two_segments():
    tokenizer = load_tokenizer("minilm")
    data = Dataset.from_dict({"text": ["a b"], "text_pair": ["c d e"], "label": [0]})
    row = tokenize_dataset(data, "pair", tokenizer)[0]
    assert row["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1, 1] and row["labels"] == 0
    batch = Collator(tokenizer.pad_token_id)([dict(row)])
    assert torch.equal(batch["labels"], torch.tensor([0]))
