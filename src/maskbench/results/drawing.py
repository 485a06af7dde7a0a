"""One figure drawn at a time in a process.

The workflow's figure rules are local ``run:`` rules, so Snakemake draws them in threads of its one process. The
object API keeps them off pyplot's state, but not off matplotlib's shared text machinery: the mathtext parser
(pyparsing with a shared packrat cache) and the font caches are not thread-safe, and two figures laid out at the
same time raised ``ParseException`` in one of them (``fig3_memory`` beside ``dev_vs_bytes``). Every function that
draws a figure is wrapped in :func:`draws_alone`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

DRAWING = threading.RLock()  # re-entrant: a figure writer may call a wrapped plot function


def draws_alone(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` runs holding :data:`DRAWING`, so that no other thread of this process draws meanwhile."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with DRAWING:
            return function(*args, **kwargs)

    wrapper.draws_alone = True  # type: ignore[attr-defined]
    return wrapper
