"""The model as a plain function: ``run(params, seed) -> RunResult``.

Sweeps, comparisons, the dashboard, the CLI and the tests all go through this entry
point (or construct ``ReintegrationModel`` directly, which is the same thing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .parameters import Params
from .reintegration import ReintegrationModel


@dataclass
class RunResult:
    """Everything one run produces."""

    params: Params
    seed: int
    summary: dict[str, float]
    timeseries: pd.DataFrame
    children: pd.DataFrame
    events: pd.DataFrame
    funding_grants: tuple[tuple[int, int], ...]


def run(params: Params | dict[str, Any] | None = None, seed: int = 0,
        months: int | None = None, tables: bool = True) -> RunResult:
    """Run the model once to its horizon.

    Args:
        params: a Params, or a mapping of parameter overrides (validated).
        seed: the run seed.
        months: override the horizon (``params.months``).
        tables: also build the per-child table and event log (skip for speed in sweeps).
    """
    if params is None:
        params = Params()
    elif not isinstance(params, Params):
        params = Params.from_dict(dict(params))
    if months is not None:
        params = params.replace(months=months)
    model = ReintegrationModel(rng=seed, **params.to_dict())
    model.run()
    return RunResult(
        params=params,
        seed=seed,
        summary=model.summary(),
        timeseries=model.timeseries(),
        children=model.children_table() if tables else pd.DataFrame(),
        events=model.events() if tables else pd.DataFrame(),
        funding_grants=model.schedule.grants,
    )
