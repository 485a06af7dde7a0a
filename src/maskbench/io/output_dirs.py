"""What maskbench writes where: the kinds of output directories and their known contents, and the free-space check
that runs before any work so that a run never starts (let alone replaces anything) when its outputs cannot be written.
A run folder's own layout and checks are :mod:`maskbench.records`'.

A directory written by :func:`maskbench.io.fileio.atomic_directory` carries a marker of its kind; the ``*_FILES`` sets
below recognise such directories written before the marker existed (they hold nothing else).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from maskbench.io.errors import OutputError

#: (Snakemake marks a directory() output with .snakemake_timestamp)
PREPARED_FILES = frozenset({"data", "prepared.json", ".snakemake_timestamp"})
#: (``mask_config.json``: the description of a mask directory written before masks had the common artefact format)
MASK_FILES = frozenset({"maskbench.json", "mask_config.json", "masks.safetensors", "head.safetensors"})
CHECKPOINT_FILES = frozenset({"tensors.safetensors", "state.json"})
#: what ``save_pretrained`` of a model and its tokenizer writes (the finetuned weights of a run)
MODEL_FILES = frozenset({"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                         "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                         "merges.txt", "added_tokens.json", "chat_template.jinja", "spiece.model"})

def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10**10 else f"{size / 1e9:.1f} GB"


def check_free_space(out: str | Path, needed: int, what: str) -> None:
    """Raise :class:`OutputError` unless the file system that will hold ``out`` (a path that may not exist yet)
    has ``needed`` bytes free; ``what`` says what needs them."""
    out = Path(out).absolute()
    target = next((folder for folder in (out, *out.parents) if folder.is_dir()), None)
    if target is None:
        return
    try:
        free = shutil.disk_usage(target).free
    except OSError:
        return  # no statistics (a pseudo file system): the writes themselves report a full disk
    if free < needed:
        raise OutputError(f"{out}: not enough free space: {what} needs about {_megabytes(needed)}, but its file "
                          f"system ({target}) has {_megabytes(free)} free; free space (df -h {target}) or choose "
                          f"another --out")
