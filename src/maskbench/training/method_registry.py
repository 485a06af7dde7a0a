"""What each training method is, as plain data (no torch import): name, labels, its own settings, which of the
block settings it uses, whether a run may save full weights, its plot style, and where its implementation lives.

This is the one list of methods. :data:`maskbench.training.settings.METHODS`, the run settings' per-method fields, the
command line, the workflow's ``{method}`` wildcard and the tables' labels are all derived from it. Methods outside
this package register through the Python entry-point group ``maskbench.methods`` (:data:`ENTRY_POINT_GROUP`): an
entry point names a :class:`MethodInfo` object, e.g. in ``pyproject.toml``::

    [project.entry-points."maskbench.methods"]
    layernorm = "my_package.methods:LAYERNORM"

The module holding the info must not import :mod:`maskbench.training.settings` or torch at import time (the workflow
reads the registry while planning); the :class:`~maskbench.training.methods.base.Method` itself (``implementation``) is
imported only when a run trains, loads or measures an artefact.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Mapping

from maskbench.io.errors import ConfigError
from maskbench.training.layers import BLOCK_LINEARS, layers_text, parse_layers

if TYPE_CHECKING:
    from maskbench.training.methods.base import Method

ENTRY_POINT_GROUP = "maskbench.methods"
#: the mask settings a method uses: all of them (masking), only where (``blocks``), or none
MASK_SETTINGS = ("all", "blocks", "none")


@dataclass(frozen=True)
class MethodInfo:
    """One training method's declaration.

    ``settings`` is the dataclass of the method's own settings (a field ``<name>`` of ``TrainConfig``; its keys
    are flat on the command line, in the workflow's ``training:`` and in a run's identity); ``legacy_defaults``
    maps those of its settings added after runs were recorded to the value that reproduces the older runs
    (:data:`maskbench.training.settings.LEGACY_DEFAULTS`). ``implementation`` is ``"module:attribute"`` of the
    :class:`~maskbench.training.methods.base.Method` object. ``full_weights``: the run's model is the whole network, so
    a run may ``save_weights`` (finetuning; the workflow saves them where an analysis reads a trained model, and the
    cost estimate takes its throughput for a method without measured runs). ``learns_masks``: the run learns binary
    masks over the frozen weights (masking): the mask analyses (sparsity and layer sweeps, mask similarity) read its
    runs. ``relative_step_cost``: the method's training step time over finetuning's, as measured on a GPU (the cost
    estimate, :mod:`maskbench.results.estimate`; masking 1.03: README "Benchmarks", ``benchmarks/gpu_check.sh`` on an
    H200, bert-base, batch 32 x 128 wordpieces; the PEFT methods are not measured and costed as finetuning, 1.0).
    ``paper``: one of the paper's two methods (tables word them as the paper does).
    ``style``: matplotlib colour, marker and line style of the method's curves; ``plot_offset``: its
    shift along x (in tasks), so that coinciding curves are told apart.
    """

    name: str
    label: str
    implementation: str
    short_label: str | None = None
    settings: type | None = None
    mask_settings: str = "none"
    legacy_defaults: Mapping[str, Any] = field(default_factory=dict)
    full_weights: bool = False
    learns_masks: bool = False
    relative_step_cost: float = 1.0
    paper: bool = False
    style: Mapping[str, Any] = field(default_factory=lambda: {"marker": "x", "linestyle": "-"})
    plot_offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.islower():
            raise ConfigError(f"method {self.name!r}: expected a lowercase identifier as its name")
        if not (isinstance(self.relative_step_cost, (int, float)) and math.isfinite(self.relative_step_cost)
                and self.relative_step_cost > 0):
            raise ConfigError(f"method {self.name}: relative_step_cost expected a positive number, got "
                              f"{self.relative_step_cost!r}")
        if self.mask_settings not in MASK_SETTINGS:
            raise ConfigError(f"method {self.name}: mask_settings expected one of {MASK_SETTINGS}, "
                              f"got {self.mask_settings!r}")

    @property
    def uses_blocks(self) -> bool:
        """The method adapts the layers of the blocks chosen by ``MaskConfig.blocks``."""
        return self.mask_settings != "none"

    def load(self) -> "Method":
        """The method's implementation (imports it)."""
        module, _, attribute = self.implementation.partition(":")
        return getattr(importlib.import_module(module), attribute)


# --- the built-in methods' own settings ------------------------------------------------------------------------


@dataclass
class LoraSettings:
    """LoRA's settings (method ``lora``): rank-r updates alpha / r * B A of the chosen layers of each block."""

    lora_r: int = field(default=8, metadata={"help": "LoRA's rank r"})
    lora_alpha: float = field(default=8.0, metadata={"help": "LoRA's scaling alpha: updates are alpha/r * BA"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on LoRA's input, in [0, 1)"})
    lora_targets: str = field(default="all", metadata={
        "help": "block layers LoRA adapts: 'all', 'attention', 'feedforward' or a comma-separated list of "
                f"{', '.join(BLOCK_LINEARS)}"})

    def __post_init__(self) -> None:
        if isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int) or self.lora_r < 1:
            raise ConfigError(f"lora_r: expected a positive integer, got {self.lora_r!r}")
        if (isinstance(self.lora_alpha, bool) or not isinstance(self.lora_alpha, (int, float))
                or not math.isfinite(self.lora_alpha) or self.lora_alpha <= 0):
            raise ConfigError(f"lora_alpha: expected a positive number, got {self.lora_alpha!r}")
        if (isinstance(self.lora_dropout, bool) or not isinstance(self.lora_dropout, (int, float))
                or not 0 <= self.lora_dropout < 1):
            raise ConfigError(f"lora_dropout: expected a number in [0, 1), got {self.lora_dropout!r}")
        self.lora_alpha, self.lora_dropout = float(self.lora_alpha), float(self.lora_dropout)
        self.lora_targets = layers_text(parse_layers("lora_targets", self.lora_targets))


@dataclass
class Ia3Settings:
    """IA3's settings (method ``ia3``): learned vectors that rescale the chosen layers of each block."""

    ia3_targets: str = field(default="key,value,output", metadata={
        "help": "block layers whose activations IA3 rescales (comma-separated, as --lora-targets)"})
    ia3_feedforward: str = field(default="output", metadata={
        "help": "those of --ia3-targets rescaled at their input (peft's feedforward_modules); 'none' for none"})

    def __post_init__(self) -> None:
        targets = parse_layers("ia3_targets", self.ia3_targets)
        feedforward = () if self.ia3_feedforward == "none" else parse_layers("ia3_feedforward", self.ia3_feedforward)
        if not set(feedforward) <= set(targets):
            raise ConfigError(f"ia3_feedforward: expected some of ia3_targets ({','.join(targets)}), got "
                              f"{self.ia3_feedforward!r}")
        self.ia3_targets = layers_text(targets)
        self.ia3_feedforward = ",".join(feedforward) or "none"


@dataclass
class BitfitSettings:
    """BitFit's settings (method ``bitfit``): which biases train (the head always does)."""

    bitfit_biases: str = field(default="all", metadata={
        "help": "biases that train: 'all' (every bias of the model, layer norms and pooler included), or the "
                "biases of block layers ('attention', 'feedforward' or a comma-separated list of "
                f"{', '.join(BLOCK_LINEARS)}) in every block"})

    def __post_init__(self) -> None:
        if self.bitfit_biases != "all":
            self.bitfit_biases = ",".join(parse_layers("bitfit_biases", self.bitfit_biases))

    def layers(self) -> tuple[str, ...] | None:
        """The block layers whose biases train; None: every bias of the model."""
        return None if self.bitfit_biases == "all" else tuple(self.bitfit_biases.split(","))


#: the built-in methods, in table order (the paper's two first)
BUILTIN = (
    MethodInfo("masking", "Masking", "maskbench.training.methods.masking:METHOD", mask_settings="all", paper=True,
               learns_masks=True, relative_step_cost=1.03,
               style={"color": "tab:orange", "marker": "s", "linestyle": "--"}, plot_offset=-0.06),
    MethodInfo("finetuning", "Finetuning", "maskbench.training.methods.finetuning:METHOD", short_label="Finetun.",
               full_weights=True, paper=True, style={"color": "tab:blue", "marker": "o", "linestyle": "-"},
               plot_offset=-0.12),
    MethodInfo("lora", "LoRA", "maskbench.training.methods.lora:METHOD", settings=LoraSettings, mask_settings="blocks",
               legacy_defaults={"lora_dropout": 0.0, "lora_targets": "all"},
               style={"color": "tab:green", "marker": "^", "linestyle": ":"}),
    MethodInfo("bitfit", "BitFit", "maskbench.training.methods.bitfit:METHOD", settings=BitfitSettings,
               legacy_defaults={"bitfit_biases": "all"},
               style={"color": "tab:red", "marker": "v", "linestyle": "-."}, plot_offset=0.06),
    MethodInfo("ia3", "IA3", "maskbench.training.methods.ia3:METHOD", settings=Ia3Settings, mask_settings="blocks",
               legacy_defaults={"ia3_targets": "key,value,output", "ia3_feedforward": "output"},
               style={"color": "tab:purple", "marker": "D", "linestyle": (0, (5, 1, 1, 1, 1, 1))}, plot_offset=0.12),
)


@functools.lru_cache(maxsize=None)
def registered() -> dict[str, MethodInfo]:
    """Every method by name: the built-ins in table order, then those of installed entry points by name."""
    found = {info.name: info for info in BUILTIN}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            info = entry.load()
        except Exception as error:  # a broken plugin: one clear line, not a traceback
            raise ConfigError(f"entry point {ENTRY_POINT_GROUP}:{entry.name} ({entry.value}): cannot load it "
                              f"({type(error).__name__}: {error})") from None
        if not isinstance(info, MethodInfo) or info.name != entry.name:
            raise ConfigError(f"entry point {ENTRY_POINT_GROUP}:{entry.name} ({entry.value}): expected a "
                              f"MethodInfo named {entry.name!r}, got {info!r}")
        if info.name in found and found[info.name] != info:
            raise ConfigError(f"entry point {ENTRY_POINT_GROUP}:{entry.name}: method {info.name!r} is registered "
                              f"twice")
        found[info.name] = info
    return found


def method_info(name: str) -> MethodInfo:
    """The registered method ``name`` (ConfigError for an unknown name)."""
    methods = registered()
    if name not in methods:
        raise ConfigError(f"method: expected one of {tuple(methods)}, got {name!r}")
    return methods[name]


def masking_methods() -> list[str]:
    """The registered methods that learn masks (``MethodInfo.learns_masks``: masking), in table order."""
    return [name for name, info in registered().items() if info.learns_masks]


def method_label(name: str, short: bool = False) -> str:
    """A method's label in tables and figures (its name when it is not registered)."""
    info = registered().get(name)
    if info is None:
        return name
    return (info.short_label or info.label) if short else info.label
