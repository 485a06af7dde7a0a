"""Bits per weight of candidate lossless mask codings, and decoding time of the chosen one.

Mask sets: bert-base-sized random masks (blocks 2-11 and the pooler: 61 layers, 71,368,704 weights) with 5 % and
10 % i.i.d. zeros, and the trained masks of any mask directories given with ``--real``. Candidates: plain bit
packing, zlib / bz2 / lzma over the packed bits, gap coding of the zero positions with Elias-gamma, Golomb (best m
per layer) and Golomb-Rice (best k per layer; ``maskbench.training.masking.coding.encode_mask``, measured with its
header), Rice coding of the XOR with the initial mask (real masks, rebuilt from the run's seed), and two lower bounds:
the order-0 entropy per layer (what an adaptive arithmetic coder of i.i.d. bits approaches) and per row.

Prints tables and writes JSON (default ``results/benchmarks/mask_coding.json``).

    python benchmarks/mask_coding.py [--real RUN/masks ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import bz2
import lzma
import math
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from maskbench import MaskConfig, mask_model, masked_layers
from maskbench.data.models import load_model
from maskbench.io.fileio import write_json
from maskbench.io.provenance import versions
from maskbench.training.masking.coding import decode_mask, encode_mask
from maskbench.training.masking.serialization import read_mask_description, read_masks

BERT_BASE_SHAPES = [(768, 768)] * 4 + [(3072, 768), (768, 3072)]
BERT_BASE_LAYERS = BERT_BASE_SHAPES * 10 + [(768, 768)]  # blocks 2-11 and the pooler


def random_masks(sparsity: float, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=generator) >= sparsity for shape in BERT_BASE_LAYERS]


def initial_masks(directory: Path, description: dict) -> dict[str, torch.Tensor] | None:
    """The masks a training run started from, rebuilt from its seed (None when the directory does not record it)."""
    if "seed" not in description or "kind" not in description:
        return None
    model = load_model(description["base_model"], description["kind"], description["label_names"])
    mask_model(model, MaskConfig.from_dict(description["mask_config"]),
               generator=torch.Generator().manual_seed(description["seed"]))
    return {name: layer.binary_mask() for name, layer in masked_layers(model).items()}


def _gaps(mask: torch.Tensor) -> np.ndarray:
    bits = mask.numpy().reshape(-1)
    minority = np.count_nonzero(bits) < bits.size / 2
    return np.diff(np.flatnonzero(bits == minority), prepend=-1) - 1


def _packed(mask: torch.Tensor) -> bytes:
    return np.packbits(mask.numpy().reshape(-1), bitorder="little").tobytes()


def _entropy_bits(ones: np.ndarray, counts: np.ndarray | int) -> float:
    p = np.clip(ones / counts, 1e-300, 1.0)
    q = np.clip(1.0 - ones / counts, 1e-300, 1.0)
    return float(np.sum(counts * -(p * np.log2(p) + q * np.log2(q))))


def _golomb_bits(gaps: np.ndarray, count: int) -> int:
    """Golomb coding with the best m near the geometric optimum (truncated binary remainders)."""
    if gaps.size == 0:
        return 0
    p = gaps.size / count
    guess = max(1, math.ceil(-math.log2(2 - p) / math.log2(1 - p))) if p < 1 else 1

    def size(m: int) -> int:
        if m == 1:
            return int(np.sum(gaps) + gaps.size)
        b = math.ceil(math.log2(m))
        cutoff = (1 << b) - m  # remainders below it take b - 1 bits
        remainders = gaps % m
        return int(np.sum(gaps // m) + gaps.size + np.sum(np.where(remainders < cutoff, b - 1, b)))

    return min(size(m) for m in range(max(1, guess - 2), guess + 3))


CODINGS: dict[str, Callable[[torch.Tensor], float]] = {
    "packed bits (1 bit)": lambda m: 8 * len(_packed(m)),
    "zlib-9 over packed": lambda m: 8 * len(zlib.compress(_packed(m), 9)),
    "bz2-9 over packed": lambda m: 8 * len(bz2.compress(_packed(m), 9)),
    "lzma-9e over packed": lambda m: 8 * len(lzma.compress(_packed(m), preset=9 | lzma.PRESET_EXTREME)),
    "gaps, Elias-gamma": lambda m: float(np.sum(2 * np.floor(np.log2(_gaps(m) + 1)) + 1)),
    "gaps, Golomb (best m)": lambda m: _golomb_bits(_gaps(m), m.numel()),
    "gaps, Rice (best k) = rice-gaps-v1": lambda m: 8 * len(encode_mask(m)),
    "bound: entropy per layer": lambda m: _entropy_bits(np.array(m.sum().item()), m.numel()),
    "bound: entropy per row": lambda m: _entropy_bits(m.sum(dim=1).numpy(), m.shape[1]),
}


def round_trip_exact(masks: list[torch.Tensor]) -> bool:
    """Every mask decodes to itself, bit for bit (the coding is lossless)."""
    return all(torch.equal(decode_mask(encode_mask(m), m.shape), m) for m in masks)


def measure(masks: list[torch.Tensor], initial: list[torch.Tensor] | None) -> dict[str, float]:
    weights = sum(m.numel() for m in masks)
    result = {name: sum(code(m) for m in masks) / weights for name, code in CODINGS.items()}
    if initial is not None:
        xor_bits = sum(8 * len(encode_mask(m ^ i)) for m, i in zip(masks, initial))
        result["XOR with initial mask, Rice"] = xor_bits / weights
    return result


def timings(masks: list[torch.Tensor], repeats: int) -> dict[str, float]:
    """Best wall-clock and CPU seconds to encode and decode a mask set with the chosen coding and, for reference,
    to decompress zlib (CPU time is not inflated by other processes on a shared machine)."""
    encoded = [encode_mask(m) for m in masks]
    zipped = [zlib.compress(_packed(m), 9) for m in masks]
    functions = {
        "rice_encode": lambda: [encode_mask(m) for m in masks],
        "rice_decode": lambda: [decode_mask(e, m.shape) for e, m in zip(encoded, masks)],
        "zlib_decode": lambda: [np.unpackbits(np.frombuffer(zlib.decompress(z), np.uint8), bitorder="little")
                                for z in zipped],
    }
    result = {}
    for name, function in functions.items():
        wall, cpu = [], []
        for _ in range(repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            function()
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        result[f"{name}_s"], result[f"{name}_cpu_s"] = min(wall), min(cpu)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", nargs="*", default=[], help="mask directories of trained runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results/benchmarks/mask_coding.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    sets: dict[str, dict] = {}
    for sparsity in (0.05, 0.10):
        masks = random_masks(sparsity)
        sets[f"random {sparsity:.0%}"] = {"masks": masks, "initial": None, "timings": timings(masks, args.repeats)}
    for directory in map(Path, args.real):
        description = read_mask_description(directory)
        masks, _ = read_masks(directory, description)
        initial = initial_masks(directory, description)
        sets[f"real {description.get('task', directory.parent.name)}"] = {
            "masks": list(masks.values()), "initial": [initial[n] for n in masks] if initial else None,
            "directory": str(directory)}

    records = {}
    for name, entry in sets.items():
        masks = entry["masks"]
        weights = sum(m.numel() for m in masks)
        sparsity = 1 - sum(m.sum().item() for m in masks) / weights
        records[name] = {"weights": weights, "sparsity": sparsity, "bits_per_weight": measure(masks, entry["initial"]),
                         "round_trip_exact": round_trip_exact(masks),
                         **({"timings": entry["timings"]} if "timings" in entry else {}),
                         **({"directory": entry["directory"]} if "directory" in entry else {})}
    candidates = list(dict.fromkeys(k for r in records.values() for k in r["bits_per_weight"]))
    rows = [["zeros", *(f"{r['sparsity']:.2%}" for r in records.values())],
            ["weights", *(f"{r['weights']:,}" for r in records.values())],
            ["round trip exact (rice-gaps-v1)", *(str(r["round_trip_exact"]) for r in records.values())]]
    rows += [[c, *(f"{r['bits_per_weight'][c]:.4f}" if c in r["bits_per_weight"] else "-" for r in records.values())]
             for c in candidates]
    print("bits per weight")
    print(tabulate(rows, headers=["coding", *records]))
    keys = ("rice_encode", "rice_decode", "zlib_decode")
    time_rows = [[name, f"{r['weights'] / 1e6:.1f} M",
                  *(f"{r['timings'][f'{k}_s']:.3f} ({r['timings'][f'{k}_cpu_s']:.3f})" for k in keys)]
                 for name, r in records.items() if "timings" in r]
    print(f"\nseconds, wall-clock (CPU), best of {args.repeats}")
    print(tabulate(time_rows, headers=["mask set", "bits", "rice encode", "rice decode", "zlib decode + unpack"]))
    write_json(args.out, {"mask_sets": records, "chosen": "rice-gaps-v1", "versions": versions()})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
