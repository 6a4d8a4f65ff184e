"""Funding schemes: which months are funded, when grants end, and when renewal is uncertain.

The funder is model-level state, not an agent. A scheme is turned into a month-by-month
schedule at the start of a run (drawing renewals from the funding stream), so that the
schedule is part of the run's reproducible output and the dashboard can mark grant ends
and gaps on its charts. Source: "Funding issues", "Length of funding".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .parameters import Params


@dataclass(frozen=True)
class FundingSchedule:
    """A month-by-month funding schedule.

    Attributes:
        funded: True for each funded month.
        insecure: True in the last ``insecure_months`` of a grant whose renewal is not
            certain (staff feel contract insecurity).
        grants: (first month, first month after the end) of each grant.
    """

    funded: np.ndarray
    insecure: np.ndarray
    grants: tuple[tuple[int, int], ...]

    def ends(self) -> list[int]:
        """Months at which funding stops (the first unfunded month after a grant)."""
        f = self.funded
        return [m for m in range(1, len(f)) if f[m - 1] and not f[m]]

    def last_end(self) -> int | None:
        """First month of the final unfunded stretch, or None if funded to the horizon."""
        f = self.funded
        if len(f) == 0 or f[-1] or not f.any():
            return None
        return int(np.flatnonzero(f)[-1] + 1)


def funding_schedule(params: Params, months: int, rng: np.random.Generator) -> FundingSchedule:
    """Build the schedule for ``params.funding_scheme``.

    - ``none``: never funded.
    - ``fixed``: one grant of ``grant_months`` from month 0, never renewed.
    - ``long_term``: one grant of ``long_grant_months`` from month 0.
    - ``rolling``: grants of ``grant_months`` renewed before they end: funded
      throughout, renewal always certain.
    - ``short_cycles``: grants of ``grant_months``; after each, ``gap_months`` without
      funding, after which a new grant starts with ``renewal_probability`` (otherwise
      another gap follows).
    """
    funded = np.zeros(months, bool)
    insecure = np.zeros(months, bool)
    grants: list[tuple[int, int]] = []
    scheme = params.funding_scheme

    def grant(start: int, length: int, certain: bool) -> int:
        end = min(start + length, months)
        if start < months:
            funded[start:end] = True
            if not certain:
                insecure[max(start, start + length - params.insecure_months):end] = True
            grants.append((start, start + length))
        return start + length

    if scheme == "fixed":
        grant(0, params.grant_months, certain=False)
    elif scheme == "long_term":
        grant(0, params.long_grant_months, certain=False)
    elif scheme == "rolling":
        t = 0
        while t < months:
            t = grant(t, params.grant_months, certain=True)
    elif scheme == "short_cycles":
        t = 0
        while t < months:
            t = grant(t, params.grant_months, certain=False) + params.gap_months
            # Not renewed: the programme goes on looking, one more gap at a time.
            while t < months and rng.random() >= params.renewal_probability:
                t += max(params.gap_months, 1)
    return FundingSchedule(funded, insecure, tuple(grants))
