"""Learning-rate selection: mean dev over seeds, border detection, the extension rules, the cap."""

from __future__ import annotations

import pytest

from maskbench.io.errors import ConfigError
from maskbench.results.selection import (
    LrExtension,
    format_lr,
    next_lr,
    round_grid,
    select_lr,
    write_choice,
    write_selection,
)
from run_records import write_run


def _run(lr, seed, dev, **config_overrides):
    config = {"method": "masking", "model": "m", "task": "trec", "seed": seed, "lr": lr, "batch_size": 32,
              "epochs": 3, "patience": 2, "max_length": 128, "max_train_examples": None, "max_eval_examples": None,
              "mask": {"initial_sparsity": 0.05}, "eval_batch_size": 128, "save_weights": False,
              "allow_partial": False, "out": f"runs/{lr}/{seed}", "data_dir": None, "prepared": None, "device": None}
    config.update(config_overrides)
    return {"task": "trec", "method": "masking", "model": "m", "metric": "accuracy", "lr": lr, "seed": seed,
            "dev_score": dev, "config": config, "config_hash": f"{lr}-{seed}"}


def _runs(scores: dict[float, list[float]]):
    return [_run(lr, seed, dev) for lr, devs in scores.items() for seed, dev in enumerate(devs, start=1)]


def test_format_lr_round_trips_and_matches_the_workflow():
    for lr in (1e-5, 3e-5, 9e-5, 1e-4, 3e-4, 1.1e-4, 0.001, 7e-6, 2.5e-3):
        assert float(format_lr(lr)) == pytest.approx(lr, rel=1e-12)
        assert format_lr(float(format_lr(lr))) == format_lr(lr)
    assert format_lr(1e-5) == "1e-05" and format_lr(3e-4) == "0.0003"


@pytest.mark.parametrize("grid, side, expected", [
    ([1e-5, 3e-5, 5e-5, 7e-5, 9e-5], "upper", 1e-4),
    ([1e-5, 3e-5, 5e-5, 7e-5, 9e-5], "lower", 9e-6),
    ([1e-4, 3e-4, 5e-4, 7e-4, 9e-4], "upper", 1e-3),
    ([1e-3, 3e-4, 5e-4], "upper", 3e-3),
    ([9e-6, 1e-5, 3e-5], "lower", 7e-6),  # the paper's RoBERTa lrs 7e-6, 9e-6 lie on this sequence
])
def test_decade_rule_follows_the_papers_sequence(grid, side, expected):
    assert next_lr(grid, side, LrExtension(rule="decade")) == pytest.approx(expected, rel=1e-12)


def test_ratio_and_spacing_rules():
    geometric = [1e-5, 1e-4, 1e-3]
    assert next_lr(geometric, "upper", LrExtension(rule="ratio")) == pytest.approx(1e-2)
    assert next_lr(geometric, "lower", LrExtension(rule="ratio")) == pytest.approx(1e-6)
    arithmetic = [1e-5, 3e-5, 5e-5]
    assert next_lr(arithmetic, "upper", LrExtension(rule="spacing")) == pytest.approx(7e-5)
    # subtracting the spacing would reach -1e-5: the ratio rule takes over (1e-5 / 3)
    assert next_lr(arithmetic, "lower", LrExtension(rule="spacing")) == pytest.approx(3.33e-6)
    assert next_lr([3e-5, 5e-5], "lower", LrExtension(rule="spacing")) == pytest.approx(1e-5)


def test_bounds_and_single_value_grids_stop_the_extension():
    assert next_lr([1e-3, 1e-2], "upper", LrExtension(max_lr=1e-2)) is None
    assert next_lr([1e-7, 3e-7], "lower", LrExtension(min_lr=1e-7)) is None
    assert next_lr([1e-4], "upper", LrExtension()) is None


def test_best_inside_the_grid_is_final():
    result = select_lr(_runs({1e-4: [0.5, 0.6], 3e-4: [0.8, 0.7], 5e-4: [0.6, 0.6]}), [1e-4, 3e-4, 5e-4], [1, 2],
                       LrExtension())
    assert result["best_lr"] == "0.0003" and result["final"] and result["border"] is None
    assert result["by_lr"]["0.0003"]["mean"] == pytest.approx(0.75)
    assert result["by_lr"]["0.0003"]["std"] == pytest.approx(0.05)  # population std over seeds
    assert result["next_lr"] is None


def test_best_on_the_border_proposes_the_next_lr_until_the_cap():
    runs = _runs({1e-4: [0.5, 0.6], 3e-4: [0.6, 0.7], 5e-4: [0.8, 0.9]})
    first = select_lr(runs, [1e-4, 3e-4, 5e-4], [1, 2], LrExtension(max_extensions=1), round_index=0)
    assert first["border"] == "upper" and first["next_lr"] == "0.0007" and not first["final"]
    runs += _runs({7e-4: [0.9, 0.95]})
    capped = select_lr(runs, [1e-4, 3e-4, 5e-4, 7e-4], [1, 2], LrExtension(max_extensions=1), round_index=1)
    assert capped["best_lr"] == "0.0007" and capped["final"] and capped["capped"] and capped["next_lr"] is None


def test_ties_go_to_the_smaller_lr():
    result = select_lr(_runs({1e-4: [0.5, 0.7], 3e-4: [0.6, 0.6], 5e-4: [0.4, 0.4]}), [1e-4, 3e-4, 5e-4], [1, 2],
                       LrExtension(max_extensions=0))
    assert result["best_lr"] == "0.0001" and result["border"] == "lower" and result["capped"]


def test_missing_or_foreign_runs_are_refused():
    runs = _runs({1e-4: [0.5, 0.6], 3e-4: [0.8]})
    with pytest.raises(ConfigError, match=r"missing \(lr, seed\) \[\('0.0003', 2\)\]"):
        select_lr(runs, [1e-4, 3e-4], [1, 2], LrExtension())
    mixed = _runs({1e-4: [0.5, 0.6]}) + [_run(3e-4, 1, 0.7), _run(3e-4, 2, 0.7, epochs=5)]
    with pytest.raises(ConfigError, match="refusing to combine runs of different configurations"):
        select_lr(mixed, [1e-4, 3e-4], [1, 2], LrExtension(), paths=[f"run{i}" for i in range(4)])


def test_extension_config_is_checked():
    with pytest.raises(ConfigError, match="lr_extension.rule"):
        LrExtension(rule="double")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['step'\]"):
        LrExtension.from_dict({"step": 2})
    with pytest.raises(ConfigError, match="mantissas"):
        LrExtension(mantissas=(1, 12))


def test_rounds_on_disk_and_the_choice(tmp_path):
    def write_runs(scores):
        paths = []
        for run in _runs(scores):  # complete records whose dev scores are what their stored predictions give
            paths.append(write_run(tmp_path / "runs" / format_lr(run["lr"]) / str(run["seed"]), run))
        return paths

    scores = {1e-4: [0.5, 0.6], 3e-4: [0.6, 0.7]}
    extension = {"rule": "decade", "max_extensions": 2}
    round0 = write_selection(write_runs(scores), tmp_path / "round0.json", [1e-4, 3e-4], [1, 2], extension, 0)
    assert round0["next_lr"] == "0.0005" and round0["initial_grid"] == ["0.0001", "0.0003"]
    assert round_grid([1e-4, 3e-4], round0) == ["0.0001", "0.0003", "0.0005"]
    scores[5e-4] = [0.6, 0.6]
    round1 = write_selection(write_runs(scores), tmp_path / "round1.json", [1e-4, 3e-4], [1, 2], extension, 1,
                             previous=tmp_path / "round0.json")
    assert round1["final"] and round1["best_lr"] == "0.0003" and round1["border"] is None and not round1["capped"]
    with pytest.raises(ConfigError, match="expected the output of round 0"):
        write_selection(write_runs(scores), tmp_path / "bad.json", [1e-4, 3e-4], [1, 2], extension, 1)
    with pytest.raises(ConfigError, match="not a final selection round"):
        write_choice(tmp_path / "round0.json", tmp_path / "chosen.json", [1e-4, 3e-4])
    choice = write_choice(tmp_path / "round1.json", tmp_path / "chosen.json", [1e-4, 3e-4])
    assert choice["lr"] == round1["best_lr"] and choice["extensions"] == 1
    assert choice["added_lrs"] == ["0.0005"] and not choice["outside_initial_grid"]
