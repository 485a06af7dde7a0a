"""Bytes per task of every training method for a bert-base-sized model (random weights: sizes do not depend on them).

Each method prepares ``BertForSequenceClassification`` (bert-base-uncased's configuration, 2 labels, random
weights) with its defaults (LoRA r = 8 on W_Q, W_K, W_V, W_AO, W_I, W_O of blocks 2-11; IA3 on keys, values and
the feed-forward output of blocks 2-11; BitFit every bias; masking blocks 2-11, the pooler and the classifier)
and saves its per-task artefact with ``maskbench.methods`` exactly as a training run does. The bytes are those of
the saved tensor files (``Method.artefact_bytes``). Masks start with 5 % zeros (the paper's initial sparsity),
spread i.i.d., which is about what a trained mask's Rice coding sees; a trained mask's bytes are within a few
percent (see benchmarks/mask_coding.py).

Prints a Markdown table and writes JSON (default ``results/benchmarks/bytes_per_task.json``).

    python benchmarks/bytes_per_task.py [--out results/benchmarks/bytes_per_task.json]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import torch
from tabulate import tabulate
from transformers import BertConfig, BertForSequenceClassification

from maskbench.fileio import write_json
from maskbench.methods import get_method
from maskbench.settings import COMPRESSED, PACKED_BITS, TrainConfig
from maskbench.sizes import safetensors_summary

ROWS = [("finetuning", {}, "Finetuning (full model)"),
        ("masking", {"mask_format": PACKED_BITS}, "Masking, packed bits (packed-bits-v1)"),
        ("masking", {"mask_format": COMPRESSED}, "Masking, Rice-coded (rice-gaps-v1)"),
        ("lora", {"lora_r": 8}, "LoRA r = 8"),
        ("bitfit", {}, "BitFit"),
        ("ia3", {}, "IA3")]


def bert_base() -> BertForSequenceClassification:
    """bert-base-uncased's architecture with random weights; the classifier is the task's new head."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=2))
    model.maskbench_new_parameters = ["classifier.bias", "classifier.weight"]
    return model


def measure(scratch: Path) -> list[dict]:
    rows = []
    for method_name, options, label in ROWS:
        method = get_method(method_name)
        config = TrainConfig(method=method_name, model="bert-base-uncased", task="sst2", **options)
        model = method.prepare(bert_base(), config)
        trainable = sum(p.numel() for p in method.trainable_parameters(model))
        directory = scratch / label.replace(" ", "_").replace(",", "").replace("=", "")
        method.save(model, directory, base="bert-base-uncased (random)", extra={"task": "sst2"}, config=config)
        files = [directory / name for name in method.tensor_files]
        rows.append({"method": method_name, "label": label, "options": options,
                     "bytes": method.artefact_bytes(directory),
                     "stored_values": sum(safetensors_summary(path)["values"] for path in files),
                     "trainable_parameters": trainable})
        del model
        gc.collect()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmarks/bytes_per_task.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = measure(Path(scratch))
    full = rows[0]["bytes"]
    table = [[row["label"], f"{row['bytes']:,}", f"{row['bytes'] / 1e6:,.3f}", f"{full / row['bytes']:,.0f}×",
              f"{row['trainable_parameters']:,}"] for row in rows]
    print("Bytes per task, bert-base-sized BertForSequenceClassification (2 labels): saved tensor files\n")
    print(tabulate(table, ["method", "bytes per task", "MB", "smaller than finetuning", "trainable parameters"],
                   tablefmt="github", disable_numparse=True))
    write_json(args.out, {"model": "BertConfig() (bert-base-uncased sizes), random weights, 2 labels", "rows": rows})


if __name__ == "__main__":
    main()
