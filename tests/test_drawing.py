"""Figures drawn in threads of one process (the workflow's local rules) are drawn one at a time: matplotlib's text
layout is not thread-safe (a ``ParseException`` in ``fig3_memory`` while ``dev_vs_bytes`` drew, CI 2026-12-07)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import threading
import time

from matplotlib.figure import Figure

import maskbench.analysis
import maskbench.results
from maskbench.results.figures import write_memory_figure
from test_tables import LAYOUT, _cells


def _figure_functions():
    """Every top-level function of the figure-making packages that makes a figure itself."""
    for package in (maskbench.results, maskbench.analysis):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, function in inspect.getmembers(module, inspect.isfunction):
                if function.__module__ != module.__name__ or name == "new_figure":
                    continue
                source = inspect.getsource(inspect.unwrap(function))
                if re.search(r"\bnew_figure\(|\bFigure\(", source):
                    yield f"{module.__name__}.{name}", function


def test_every_function_that_makes_a_figure_draws_alone():
    found = dict(_figure_functions())
    # the figures of the tables (Fig. 3, dev vs bytes) and of the analyses (Figs. 1, 2, 4, 5, 6, 7)
    assert len(found) >= 8, sorted(found)
    assert [name for name, function in found.items() if not getattr(function, "draws_alone", False)] == []


def test_two_threads_never_draw_at_once(tmp_path, monkeypatch):
    paths, references = _cells(tmp_path)
    intervals, savefig = [], Figure.savefig

    def slow_savefig(self, *args, **kwargs):
        started = time.perf_counter()
        time.sleep(0.3)  # wide enough that two unlocked threads overlap
        savefig(self, *args, **kwargs)
        intervals.append((started, time.perf_counter()))

    monkeypatch.setattr(Figure, "savefig", slow_savefig)
    barrier, errors = threading.Barrier(2), []

    def draw(index: int) -> None:
        try:
            barrier.wait()
            write_memory_figure(LAYOUT, tmp_path / f"f{index}.png", tmp_path / f"f{index}.csv",
                                paths["aggregates"], references)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(intervals) == 2
    (first_start, first_end), (second_start, _) = sorted(intervals)
    assert second_start >= first_end
    assert (tmp_path / "f0.png").read_bytes() == (tmp_path / "f1.png").read_bytes()
