"""Learning-rate selection: the mean dev score over seeds per lr, and extending the grid at its border.

The paper searches each (model, task, method)'s lr on a grid and extends the grid "whenever the best lr lies on
the border" (§4). One selection *round* looks at the runs of its grid and either settles on the best lr or names
the single next lr beyond the border it touches; the workflow then trains that lr for every seed and runs the
next round on the grown grid (a Snakemake checkpoint per round). How the next value is found is configurable
(:class:`LrExtension`):

``decade`` (default)
    the next value of the sequence ``m × 10^k`` with ``m`` in ``mantissas`` (default 1, 3, 5, 7, 9): after 9e-5
    comes 1e-4, before 1e-5 comes 9e-6. This is the sequence every lr of the paper's Table 4 lies on.
``ratio``
    multiply (upper border) or divide (lower border) the border value by the ratio of the two outermost grid
    values on that side: continues a geometric grid such as 1e-5, 1e-4, 1e-3.
``spacing``
    add (upper) or subtract (lower) the difference of the two outermost grid values on that side: continues an
    arithmetic grid; where subtracting would reach zero or below, the ``ratio`` rule is used instead.

A grid of a single lr has no border to extend. Ties between lrs are broken towards the smaller lr. Extension stops
after ``max_extensions`` rounds (the result then says ``capped``) or when the next value would leave
``[min_lr, max_lr]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskbench.io.errors import ConfigError, SettingError
from maskbench.io.fileio import write_json
from maskbench.records import load_runs, read_selection_round
from maskbench.results.aggregate import check_same_setting

EXTENSION_RULES = ("decade", "ratio", "spacing")


def format_lr(lr: float) -> str:
    """The canonical text of an lr, used in paths and JSON keys (``1e-05``, ``0.0003``): ``float()`` reads back
    exactly the value (a run folder never trains another lr than the configured one).

    Six significant digits (``:.6g``, the text of every folder made so far) where they read back exactly, else
    the fewest digits that do (``0.0012345678``, ``0.0010000001``).
    """
    value = float(lr)
    for digits in range(6, 18):  # 17 significant digits always read back a double exactly
        text = f"{value:.{digits}g}"
        if float(text) == value:
            return text
    return repr(value)  # nan / inf (never an lr: the configuration and TrainConfig refuse them)


def sorted_grid(values: Sequence[float | str]) -> list[str]:
    """The :func:`format_lr` texts of an lr grid, each once, in increasing order (the folder labels of a round)."""
    return sorted({format_lr(v) for v in values}, key=float)


def folder_labels(key: str, values: Sequence[float | str]) -> list[str]:
    """The :func:`format_lr` texts of the configured ``values`` at ``key`` (``lr_grid.masking``), in order.

    Two values with one text would share a run folder: the same value written twice (``1.0e-3`` and
    ``0.001``); refused with a :class:`SettingError` naming ``key``.
    """
    labels: dict[str, float | str] = {}
    for value in values:
        label = format_lr(value)
        if label in labels:
            raise SettingError(key, f"{labels[label]!r} and {value!r} are the same value (folder label "
                                    f"{label!r}); write each value once")
        labels[label] = value
    return list(labels)


@dataclass(frozen=True)
class LrExtension:
    """How (and how often) a grid is extended when its best lr lies on its border."""

    rule: str = "decade"
    max_extensions: int = 3
    mantissas: tuple[float, ...] = (1, 3, 5, 7, 9)
    min_lr: float = 1e-7
    max_lr: float = 1.0
    #: significant digits of values made by the ratio and spacing rules (keeps path names short)
    digits: int = 3

    def __post_init__(self) -> None:
        if self.rule not in EXTENSION_RULES:
            raise ConfigError(f"lr_extension.rule: expected one of {EXTENSION_RULES}, got {self.rule!r}")
        if not isinstance(self.max_extensions, int) or self.max_extensions < 0:
            raise ConfigError(f"lr_extension.max_extensions: expected an integer >= 0, got {self.max_extensions!r}")
        mantissas = tuple(self.mantissas)
        if not mantissas or any(not 1 <= m < 10 for m in mantissas) or len(set(mantissas)) != len(mantissas):
            raise ConfigError(f"lr_extension.mantissas: expected distinct numbers in [1, 10), got {list(mantissas)}")
        object.__setattr__(self, "mantissas", tuple(sorted(mantissas)))
        if not 0 < self.min_lr < self.max_lr:
            raise ConfigError(f"lr_extension: expected 0 < min_lr < max_lr, got {self.min_lr!r} and {self.max_lr!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LrExtension":
        known = {"rule", "max_extensions", "mantissas", "min_lr", "max_lr", "digits"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"lr_extension: unknown key(s) {unknown}; expected some of {sorted(known)}")
        values = dict(data)
        if "mantissas" in values:
            values["mantissas"] = tuple(values["mantissas"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mantissas"] = list(self.mantissas)
        return data


def _round(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def _decade_neighbour(value: float, side: str, mantissas: Sequence[float]) -> float:
    """The next ``m × 10^k`` strictly above (``upper``) or below (``lower``) ``value``."""
    exponent = math.floor(math.log10(value))
    candidates = sorted(float(f"{m:g}e{k}") for k in (exponent - 1, exponent, exponent + 1) for m in mantissas)
    tolerance = value * 1e-9
    if side == "upper":
        return next(c for c in candidates if c > value + tolerance)
    return next(c for c in reversed(candidates) if c < value - tolerance)


def next_lr(grid: Sequence[float], side: str, extension: LrExtension) -> float | None:
    """The lr beyond the ``side`` (``lower``/``upper``) border of ``grid``, or None outside [min_lr, max_lr]."""
    values = sorted(float(v) for v in grid)
    if len(values) < 2:
        return None
    if side not in ("lower", "upper"):
        raise ValueError(f"side: expected 'lower' or 'upper', got {side!r}")
    border, inner = (values[0], values[1]) if side == "lower" else (values[-1], values[-2])
    if extension.rule == "decade":
        value = _decade_neighbour(border, side, extension.mantissas)
    elif extension.rule == "spacing" and border + (border - inner) > 0:
        value = _round(border + (border - inner), extension.digits)
    else:  # ratio, or spacing that would reach zero
        value = _round(border * (border / inner), extension.digits)
    if not extension.min_lr <= value <= extension.max_lr:
        return None
    return value


def mean_dev_by_lr(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per lr (canonical text): the seeds, their dev scores, mean and (population) std."""
    by_lr: dict[str, dict[int, float]] = {}
    for record in records:
        by_lr.setdefault(format_lr(record["lr"]), {})[int(record["seed"])] = float(record["dev_score"])
    summary = {}
    for lr, scores in sorted(by_lr.items(), key=lambda item: float(item[0])):
        seeds = sorted(scores)
        values = np.array([scores[s] for s in seeds])
        summary[lr] = {"seeds": seeds, "dev_scores": values.tolist(), "mean": float(values.mean()),
                       "std": float(values.std())}
    return summary


def select_lr(records: Sequence[Mapping[str, Any]], grid: Sequence[float], seeds: Sequence[int],
              extension: LrExtension, round_index: int = 0,
              paths: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """One selection round over the runs of ``grid`` × ``seeds`` (``records`` = their ``metrics.json``).

    Returns the per-lr summary, the best lr (highest mean dev score; ties go to the smaller lr), the border it
    lies on (if any), and ``next_lr``: the value to add to the grid for the next round, or None when this round
    is final (best lr inside the grid, a single-lr grid, the cap reached, or the next value out of bounds).
    """
    grid_text = sorted_grid(grid)
    if not grid_text:
        raise ConfigError("lr grid: empty; expected at least one learning rate")
    setting = check_same_setting(records, vary=("seed", "lr"), paths=paths)
    summary = mean_dev_by_lr(records)
    expected = {(lr, int(s)) for lr in grid_text for s in seeds}
    found = {(format_lr(r["lr"]), int(r["seed"])) for r in records}
    if found != expected:
        missing = sorted(expected - found, key=lambda x: (float(x[0]), x[1]))
        extra = sorted(found - expected, key=lambda x: (float(x[0]), x[1]))
        raise ConfigError(f"lr selection: runs do not match grid {grid_text} × seeds {sorted(seeds)}; "
                          f"missing (lr, seed) {missing}, unexpected {extra}")
    best = max(grid_text, key=lambda lr: (summary[lr]["mean"], -float(lr)))
    border = None
    if len(grid_text) >= 2:
        border = "lower" if best == grid_text[0] else "upper" if best == grid_text[-1] else None
    proposed = next_lr([float(v) for v in grid_text], border, extension) if border else None
    capped = border is not None and proposed is not None and round_index >= extension.max_extensions
    if border is None:
        reason = "single lr in the grid" if len(grid_text) < 2 else "best lr lies inside the grid"
    elif proposed is None:
        reason = f"best lr on the {border} border, but the next value is outside [min_lr, max_lr]"
    elif capped:
        reason = f"best lr on the {border} border, but the cap of {extension.max_extensions} extension(s) is reached"
    else:
        reason = f"best lr on the {border} border: extend the grid with {format_lr(proposed)}"
    first = records[0] if records else {}
    return {
        "task": first.get("task"), "method": first.get("method"), "model": first.get("model"),
        "metric": first.get("metric"), "round": round_index, "grid": grid_text, "seeds": sorted(int(s) for s in seeds),
        "by_lr": summary, "best_lr": best, "best_mean_dev": summary[best]["mean"], "border": border,
        "next_lr": None if capped or proposed is None else format_lr(proposed),
        "final": capped or proposed is None, "capped": capped, "reason": reason,
        "extension": extension.to_dict(), "setting_hash": setting,
    }


def round_grid(grid: Sequence[float | str], previous: Mapping[str, Any] | None) -> list[str]:
    """The grid of a round: the initial grid, or the previous round's grid plus the lr it proposed."""
    if previous is None:
        return sorted_grid(grid)
    if previous.get("next_lr") is None:
        raise ConfigError(f"selection round {previous.get('round')} is final; there is no next round")
    return sorted_grid([*previous["grid"], previous["next_lr"]])


def write_selection(metrics_paths: Sequence[str | Path], out: str | Path, initial_grid: Sequence[float | str],
                    seeds: Sequence[int], extension: Mapping[str, Any] | LrExtension, round_index: int,
                    previous: str | Path | None = None) -> dict:
    """Workflow step: selection round ``round_index`` over the runs' ``metrics.json`` files, to ``out`` (JSON).

    ``previous`` is the output of the round before (None for round 0); it determines this round's grid. Every run
    record is checked and its dev score recomputed from the run's stored predictions before it counts.
    """
    if not isinstance(extension, LrExtension):
        extension = LrExtension.from_dict(extension)
    before = read_selection_round(previous) if previous else None
    if (before is None) != (round_index == 0) or (before is not None and before["round"] != round_index - 1):
        raise ConfigError(f"selection round {round_index}: expected the output of round {round_index - 1} "
                          f"as 'previous', got {previous!r}")
    records = load_runs(metrics_paths, check_scores=True)  # a NaN or edited dev score never chooses an lr
    grid = round_grid(initial_grid, before)
    result = select_lr(records, [float(v) for v in grid], seeds, extension, round_index, paths=metrics_paths)
    result["initial_grid"] = round_grid(initial_grid, None)
    result["runs"] = [str(p) for p in metrics_paths]
    write_json(out, result)
    return result


def write_choice(final_round: str | Path, out: str | Path, initial_grid: Sequence[float]) -> dict:
    """Workflow step: the chosen lr of a (model, task, method), from its final selection round."""
    selection = read_selection_round(final_round)
    if not selection.get("final"):
        raise ConfigError(f"{final_round}: not a final selection round (next_lr = {selection.get('next_lr')})")
    initial = sorted_grid(initial_grid)
    choice = {key: selection[key] for key in ("task", "method", "model", "metric", "best_lr", "best_mean_dev",
                                              "border", "capped", "reason", "setting_hash", "seeds")}
    choice.update({"lr": selection["best_lr"], "initial_grid": initial, "final_grid": selection["grid"],
                   "extensions": selection["round"],
                   "added_lrs": [lr for lr in selection["grid"] if lr not in initial],
                   "outside_initial_grid": selection["best_lr"] not in initial,
                   "by_lr": selection["by_lr"], "selection": str(final_round)})
    write_json(out, choice)
    return choice
