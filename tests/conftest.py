"""Shared fixtures and helpers for the test suite.

The model describes children who survived sexual exploitation; every agent here is
synthetic. Tests keep runs small (100-300 children, 12-120 months) so that the whole
suite stays fast; behaviour tests compare means over common (paired) seeds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

from model import ReintegrationModel, run
from model.agents import CASEWORKER, IN_CARE

# A small district that still has every kind of agent and a working programme.
SMALL: dict[str, Any] = {"n_children": 200, "months": 60}

# Run sizes for behaviour tests: 300 children over the default 10-year horizon.
BEHAVIOUR: dict[str, Any] = {"n_children": 300, "months": 120}


def build(seed: int = 1, **overrides: Any) -> ReintegrationModel:
    """A small model (``SMALL`` plus overrides), constructed but not run."""
    return ReintegrationModel(rng=seed, **{**SMALL, **overrides})


@pytest.fixture
def make_model() -> Callable[..., ReintegrationModel]:
    """Factory for small models: ``make_model(seed=1, **overrides)``."""
    return build


@functools.cache
def _cached_run(items: tuple[tuple[str, Any], ...], seed: int, tables: bool):
    return run(dict(items), seed=seed, tables=tables)


def cached_run(params: dict[str, Any], seed: int, tables: bool = False):
    """``model.run`` memoised on (parameters, seed), shared by all tests in a session.

    Runs are deterministic given parameters and seed (see test_reproducibility.py), so a
    cached result is the same result.
    """
    return _cached_run(tuple(sorted(params.items())), seed, tables)


def summaries(params: dict[str, Any], seeds: Iterable[int], key: str) -> np.ndarray:
    """One summary value per seed (behaviour-sized runs with ``params`` on top)."""
    return np.array([cached_run({**BEHAVIOUR, **params}, s).summary[key] for s in seeds],
                    dtype=float)


def put_in_care(model: ReintegrationModel, idx: np.ndarray) -> None:
    """Admit children ``idx`` to care, spread over the employed caseworkers (test set-up)."""
    ch, st = model.children, model.staff
    idx = np.asarray(idx, np.int64)
    workers = np.flatnonzero(~st.left & (st.role == CASEWORKER))
    assert len(workers), "test set-up needs employed caseworkers"
    chosen = workers[np.arange(len(idx)) % len(workers)]
    ch.caseworker[idx] = chosen
    np.add.at(st.caseload, chosen, 1)
    ch.stage[idx] = IN_CARE
    ch.ever_in_care[idx] = True
    ch.intake_wellbeing[idx] = ch.wellbeing[idx]
    ch.months_in_stage[idx] = 0
    ch.bond[idx] = 0.0


def start_funded_month(model: ReintegrationModel) -> None:
    """Run the funding process for the current month (sets ``funded`` and ``budget``)."""
    from model import processes

    processes.funding(model, model.streams["funding"])


def nan_equal(a: dict[str, float], b: dict[str, float]) -> bool:
    """Dictionaries equal, treating NaN == NaN."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True
