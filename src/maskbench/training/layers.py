"""The six linear layers of a transformer block that the methods address, and how settings name them
(no torch import: the run settings use it)."""

from __future__ import annotations

from typing import Any, Sequence

from maskbench.io.errors import ConfigError

#: the six linear layers of a transformer block that masking, LoRA, IA3 and BitFit address, in
#: ``Architecture.block_linears`` order: W_Q, W_K, W_V, W_AO, W_I, W_O
BLOCK_LINEARS = ("query", "key", "value", "attention_output", "intermediate", "output")
#: shorthands of :func:`parse_layers`
LAYER_GROUPS = {"all": BLOCK_LINEARS, "attention": BLOCK_LINEARS[:4], "feedforward": BLOCK_LINEARS[4:]}


def parse_layers(key: str, value: Any, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The block layers a comma-separated ``value`` names (:data:`BLOCK_LINEARS`, or a shorthand of
    :data:`LAYER_GROUPS`), in block order; a ConfigError naming ``key`` otherwise. ``extra`` names more
    accepted words (returned as given)."""
    words = [word.strip() for word in value.split(",")] if isinstance(value, str) else None
    known = (*BLOCK_LINEARS, *LAYER_GROUPS, *extra)
    if not words or not all(words) or any(word not in known for word in words):
        raise ConfigError(f"{key}: expected comma-separated names from {', '.join(known)}, got {value!r}")
    chosen = {layer for word in words for layer in LAYER_GROUPS.get(word, (word,))}
    return tuple(name for name in (*BLOCK_LINEARS, *extra) if name in chosen)


def layers_text(layers: Sequence[str]) -> str:
    """The canonical spelling of a set of block layers ("all" for the six)."""
    return "all" if tuple(layers) == BLOCK_LINEARS else ",".join(layers)
