"""Calibration to observed figures: approximate Bayesian computation with pyabc's ABC-SMC.

A user who has observed figures from a programme (or from the literature) can fit the
model's uncertain parameters to them. ABC-SMC (Sequential Monte Carlo approximate
Bayesian computation, ``pyabc.ABCSMC``) draws parameter sets from the prior, runs the
model, keeps those whose simulated figures come close to the observed ones, and
tightens "close" generation by generation; the last generation is a weighted sample
from the approximate posterior. Nothing of ABC is written here: pyabc does it, with its
own samplers for one core, several cores or a Dask cluster.

A targets file is a small TOML file::

    title = "Evidence from the model brief"
    description = "..."
    base = "baseline"            # scenario to start from (name or .toml path)
    seed = 1                     # seeds pyabc's draws (reproducible with --jobs 1)
    replicates = 1               # runs per particle; observables are averaged over them
    months = 120                 # optional horizon (else the scenario's)
    population_size = 100        # particles per generation
    generations = 6              # at most this many generations
    minimum_epsilon = 0.0        # stop early once the distance threshold is this small
    max_simulations = 20000      # stop early after this many model runs
    posterior_predictive = 50    # fresh runs at posterior draws for the fit table

    [params]                     # fixed overrides for every run
    n_children = 1000

    [fit]                        # parameters to fit, with uniform priors
    base_turnover = [0.005, 0.04]
    entry_wellbeing = "plausible"      # the parameter's plausible range

    [[targets]]                  # one table per observed figure
    metric = "staff_turnover_annual"
    value = 0.30                 # the typical figure (reported beside the fit)
    interval = [0.20, 0.40]      # the range the figure lies in ...
    source = "Casey Family Programs; Strolin-Goltzman et al. 2010"

    [[targets]]
    metric = "intake_low_wellbeing_share"
    value = 0.56
    tolerance = 0.05             # ... or how far from value a simulated figure may fall
    source = "Kiss et al. 2015 (depression 56% at entry to services)"

A target's ``metric`` is a run-summary metric (``model.outputs.SUMMARY_DEFINITIONS``)
or one of the derived observables in :data:`OBSERVABLES`. Its distance is zero inside
``interval`` and grows with the distance to the nearer end in units of half the
interval's width; without an interval it is ``|simulated - value| / tolerance``. The
distance of a run is the weighted mean over targets (``weight``, default 1). A run
with an empty value for a target (e.g. no re-exploitation at all) is rejected.

Outputs go to one folder: ``abc.db`` (pyabc's sqlite history), the posterior sample,
per-parameter intervals, the fit of each target, a calibrated scenario file for
``reintegration compare``, plots and ``manifest.json``.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import sys
import time
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.outputs import SUMMARY_DEFINITIONS
from model.parameters import SPECS, ParameterError, Params, unknown_message

from .errors import UserError
from .manifest import manifest, new_output_dir, write_json
from .scenarios import SCENARIO_DIR, ScenarioError, load_scenario
from .specs import base_params as spec_base_params
from .specs import check_keys, read_toml_spec, spec_error, spec_header, whole

ETHICS = ("Scenario exploration with synthetic agents under stated assumptions: not a "
          "prediction about real children, and not a basis for decisions about any child.")

TOP_KEYS = ("title", "description", "base", "seed", "replicates", "months", "population_size",
            "generations", "minimum_epsilon", "max_simulations", "posterior_predictive",
            "params", "fit", "targets")
TARGET_KEYS = ("metric", "value", "interval", "tolerance", "weight", "source", "note")

BURNOUT_THRESHOLD = 0.5
"""Burn-out (0-1) at or above which a worker counts as burned out in
``staff_burnout_share``. An assumption: surveys classify workers with a cut-off on a
burn-out inventory; here the cut-off is half of the model's scale."""

EARLY_MONTHS = 24
"""Window of ``early_reexploitation_share`` (IOM / Jobe 2010: about two years)."""

LOW_WELLBEING = 0.4
"""Intake wellbeing below which ``intake_low_wellbeing_share`` counts a child as
distressed (the model's reading of Kiss et al. 2015's depression at entry; see the
``entry_wellbeing`` parameter)."""


@dataclass(frozen=True)
class Observable:
    """A figure derived from a run beyond the run summary."""

    description: str
    unit: str
    needs: str
    """What it is computed from: ``timeseries``, ``children``, ``events`` or ``staff``."""


OBSERVABLES: dict[str, Observable] = {
    "mean_caseload_per_caseworker": Observable(
        "Mean over the months with caseworkers employed of the monthly caseload per "
        "caseworker (time series caseload_per_caseworker).", "children per caseworker",
        "timeseries"),
    "intake_low_wellbeing_share": Observable(
        f"Share of the children admitted to care whose wellbeing at intake was below "
        f"{LOW_WELLBEING} (children table: intake_wellbeing of children ever in care).",
        "share of admitted children", "children"),
    "staff_burnout_share": Observable(
        f"Mean over the months with staff employed of the share of employed staff whose "
        f"burn-out is {BURNOUT_THRESHOLD} or more (the cut-off is an assumption).",
        "share of staff", "staff"),
    "mean_staff_burnout": Observable(
        "Mean over the months with staff employed of the mean burn-out of employed staff "
        "(time series mean_burnout).", "burn-out 0-1", "timeseries"),
    "early_reexploitation_share": Observable(
        f"Share of re-exploitation events that happen within {EARLY_MONTHS} months of the "
        "child's latest return to the community (event log).", "share of events", "events"),
}
"""Derived observables a target can name, besides the summary metrics."""


def known_metrics() -> list[str]:
    """Every name a target's ``metric`` may take."""
    return [*SUMMARY_DEFINITIONS, *OBSERVABLES]


def describe_metric(name: str) -> str:
    """The definition of a summary metric or derived observable."""
    return SUMMARY_DEFINITIONS.get(name) or OBSERVABLES[name].description


# --- running the model for observables -------------------------------------------------------
def observe(params: dict[str, Any], seed: int, metrics: tuple[str, ...]) -> dict[str, float]:
    """Run the model once and compute the named metrics (summary or derived).

    Args:
        params: a full, valid parameter set as a mapping.
        seed: the run seed.
        metrics: names from :func:`known_metrics`.

    Returns:
        One value per metric (NaN when the run gives none).
    """
    from model.reintegration import ReintegrationModel

    model = ReintegrationModel(rng=int(seed), **params)
    needs = {OBSERVABLES[m].needs for m in metrics if m in OBSERVABLES}
    burned: list[float] = []
    # The same loop as ReintegrationModel.run(), so that per-month staff state can be read.
    for _ in range(model.horizon - model.month):
        model.step()
        if "staff" in needs:
            employed = ~model.staff.left
            if employed.any():
                burned.append(float(np.mean(model.staff.burnout[employed] >= BURNOUT_THRESHOLD)))
    summary = model.summary()
    out: dict[str, float] = {}
    ts = model.timeseries() if "timeseries" in needs else None
    for m in metrics:
        if m in SUMMARY_DEFINITIONS:
            out[m] = float(summary[m])
        elif m == "mean_caseload_per_caseworker":
            out[m] = _nanmean(ts["caseload_per_caseworker"].to_numpy(float))
        elif m == "mean_staff_burnout":
            out[m] = _nanmean(ts["mean_burnout"].to_numpy(float))
        elif m == "intake_low_wellbeing_share":
            ch = model.children_table()
            admitted = ch["intake_wellbeing"][ch["ever_in_care"].to_numpy(bool)].to_numpy(float)
            out[m] = float(np.mean(admitted < LOW_WELLBEING)) if len(admitted) else math.nan
        elif m == "staff_burnout_share":
            out[m] = float(np.mean(burned)) if burned else math.nan
        elif m == "early_reexploitation_share":
            out[m] = early_reexploitation_share(model.events())
    return out


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan


def early_reexploitation_share(events: pd.DataFrame, months: int = EARLY_MONTHS) -> float:
    """Share of re-exploitation events within ``months`` of the child's latest return.

    Args:
        events: the event log (month, child_id, from_stage, to_stage, cause).
        months: the window.

    Returns:
        The share, or NaN when there was no re-exploitation after a return.
    """
    hits = events[events["to_stage"] == "re_exploited"][["month", "child_id"]]
    back = events[events["to_stage"] == "reintegrating"][["month", "child_id"]]
    if hits.empty or back.empty:
        return math.nan
    hits = hits.assign(month=hits["month"].astype("int64")).sort_values("month")
    back = (back.assign(month=back["month"].astype("int64"), returned=back["month"].astype("int64"))
            .sort_values("month"))
    joined = pd.merge_asof(hits, back, on="month", by="child_id", direction="backward")
    joined = joined.dropna(subset=["returned"])
    if joined.empty:
        return math.nan
    return float(np.mean((joined["month"] - joined["returned"]) < months))


def observe_mean(params: dict[str, Any], seeds: list[int], metrics: tuple[str, ...]
                 ) -> dict[str, float]:
    """:func:`observe` averaged over seeds (NaN only when every run gives NaN)."""
    values = [observe(params, s, metrics) for s in seeds]
    out = {}
    for m in metrics:
        x = np.array([v[m] for v in values], float)
        out[m] = _nanmean(x)
    return out


# --- the targets file ------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One observed figure."""

    metric: str
    value: float | None
    interval: tuple[float, float] | None
    tolerance: float | None
    weight: float
    source: str
    note: str

    @property
    def centre(self) -> float:
        """The figure the fit aims at: the value, else the middle of the interval."""
        if self.value is not None:
            return self.value
        assert self.interval is not None
        return 0.5 * (self.interval[0] + self.interval[1])

    def distance(self, simulated: float) -> float:
        """Zero inside the interval, else the miss in half-widths; or |miss| / tolerance."""
        if not np.isfinite(simulated):
            return math.inf
        if self.interval is not None:
            low, high = self.interval
            return max(0.0, low - simulated, simulated - high) / (0.5 * (high - low))
        assert self.value is not None and self.tolerance is not None
        return abs(simulated - self.value) / self.tolerance

    def accepts(self, simulated: float) -> bool:
        """Whether a simulated figure is within the interval (or value +- tolerance)."""
        if not np.isfinite(simulated):
            return False
        if self.interval is not None:
            return bool(self.interval[0] <= simulated <= self.interval[1])
        assert self.value is not None and self.tolerance is not None
        return bool(abs(simulated - self.value) <= self.tolerance)


@dataclass(frozen=True)
class CalibrationSpec:
    """A validated targets file."""

    path: Path
    data: dict[str, Any]
    title: str
    description: str
    base: str
    base_file: Path | None
    fixed: dict[str, Any]
    base_params: Params
    priors: dict[str, tuple[float, float]]
    targets: tuple[Target, ...]
    seed: int
    replicates: int
    population_size: int
    generations: int
    minimum_epsilon: float
    max_simulations: int
    posterior_predictive: int

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric of each target, in file order."""
        return tuple(t.metric for t in self.targets)


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise spec_error(path, key, f"expected a number, got {value!r}")
    return float(value)


def load_targets(path: Path) -> CalibrationSpec:
    """Read and validate a targets file; every mistake is a one-line :class:`UserError`.

    Args:
        path: the TOML file (see this module's docstring for the keys).

    Returns:
        The validated calibration set-up.
    """
    path = Path(path)
    data = read_toml_spec(path, "targets file", "experiments/targets/evidence.toml")
    check_keys(path, data, TOP_KEYS, parameter_hint="a parameter: fix it under [params], or "
                                                    "fit it under [fit]")
    title, description, base = spec_header(path, data, name_key="title")
    # A shipped scenario is extended by name; any other file by its path.
    shipped = base.path is not None and base.path.resolve().parent == SCENARIO_DIR.resolve()
    base_file = None if shipped or base.path is None else base.path

    seed = whole(path, data, "seed", 0, 0)
    replicates = whole(path, data, "replicates", 1, 1)
    population_size = whole(path, data, "population_size", 100, 5)
    generations = whole(path, data, "generations", 6, 1)
    minimum_epsilon = _number(path, "minimum_epsilon", data.get("minimum_epsilon", 0.0))
    if minimum_epsilon < 0:
        raise spec_error(path, "minimum_epsilon", "must be 0 or more")
    max_simulations = whole(path, data, "max_simulations",
                            50 * population_size * generations, population_size)
    predictive = whole(path, data, "posterior_predictive", 50, 1)

    fixed, base_params = spec_base_params(path, data, base)

    fit = data.get("fit")
    if not isinstance(fit, dict) or not fit:
        raise spec_error(path, "fit", "missing or empty; give a [fit] table of parameter = [low, high] "
                                      "prior ranges (or = \"plausible\")")
    priors: dict[str, tuple[float, float]] = {}
    for k, rng in fit.items():
        key = f"fit.{k}"
        if k not in SPECS:
            raise UserError(f"{path}: fit.{unknown_message(k)}")
        spec = SPECS[k]
        if spec.type not in (int, float):
            raise spec_error(path, key, f"{k} is not a number and cannot be fitted; fix it under "
                                        "[params]")
        if k in fixed:
            raise spec_error(path, key, f"{k} is also fixed in [params]; fit it or fix it, not both")
        if rng == "plausible":
            if spec.plausible is None:
                raise spec_error(path, key, f"{k} has no plausible range; give [low, high]")
            low, high = (float(v) for v in spec.plausible)
        elif (isinstance(rng, list) and len(rng) == 2
              and all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng)):
            low, high = float(rng[0]), float(rng[1])
        else:
            raise spec_error(path, key, f"expected a prior range [low, high] or \"plausible\", got "
                                        f"{rng!r}")
        lo, hi = spec.bounds
        if not lo <= low < high <= hi:
            problem = ("low must be below high" if low >= high else
                       f"[{rng[0]}, {rng[1]}] is outside the allowed range {lo} to {hi} "
                       f"({spec.unit})")
            plausible = f"; plausible range {list(spec.plausible)}" if spec.plausible else ""
            raise spec_error(path, key, problem + plausible)
        priors[k] = (low, high)

    raw_targets = data.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets or not all(
            isinstance(t, dict) for t in raw_targets):
        raise spec_error(path, "targets", "missing; give one [[targets]] table per observed figure, "
                                          "with metric, value or interval, and source")
    targets: list[Target] = []
    seen: set[str] = set()
    for i, t in enumerate(raw_targets, start=1):
        key = f"targets[{i}]"
        for k in t:
            if k not in TARGET_KEYS:
                near = difflib.get_close_matches(k, TARGET_KEYS, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise spec_error(path, f"{key}.{k}", f"unknown key; {hint}allowed: "
                                                     f"{', '.join(TARGET_KEYS)}")
        metric = t.get("metric")
        if not isinstance(metric, str):
            raise spec_error(path, f"{key}.metric", "missing; name a summary metric or a derived "
                                                    "observable")
        if metric not in known_metrics():
            near = difflib.get_close_matches(metric, known_metrics(), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(near)}? " if near else ""
            raise spec_error(path, f"{key}.metric", f"unknown metric {metric!r}; {hint}use a summary "
                                                    f"metric or one of {', '.join(OBSERVABLES)}")
        key = f"targets[{i}] ({metric})"
        if metric in seen:
            raise spec_error(path, key, "this metric is targeted twice; give each figure once")
        seen.add(metric)
        value = _number(path, f"{key}.value", t["value"]) if "value" in t else None
        interval = None
        if "interval" in t:
            pair = t["interval"]
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(v, int | float) and not isinstance(v, bool)
                               for v in pair)):
                raise spec_error(path, f"{key}.interval", f"expected [low, high], two numbers, got "
                                                          f"{pair!r}")
            interval = (float(pair[0]), float(pair[1]))
            if not interval[0] < interval[1]:
                raise spec_error(path, f"{key}.interval", "low must be below high")
            if value is not None and not interval[0] <= value <= interval[1]:
                raise spec_error(path, f"{key}.value", f"{value} lies outside its interval "
                                                       f"{list(pair)}")
        tolerance = None
        if "tolerance" in t:
            tolerance = _number(path, f"{key}.tolerance", t["tolerance"])
            if tolerance <= 0:
                raise spec_error(path, f"{key}.tolerance", "must be above 0")
            if interval is not None:
                raise spec_error(path, f"{key}.tolerance", "give an interval or a tolerance, not both "
                                                           "(an interval already says how close)")
        if interval is None:
            if value is None:
                raise spec_error(path, key, "no observed figure; give value = X (with tolerance) or "
                                            "interval = [low, high]")
            if tolerance is None:
                raise spec_error(path, key, "give tolerance = T (how far from the value a simulated "
                                            "figure may fall) or interval = [low, high]")
        weight = _number(path, f"{key}.weight", t.get("weight", 1.0))
        if weight <= 0:
            raise spec_error(path, f"{key}.weight", "must be above 0")
        source = t.get("source")
        if not isinstance(source, str) or not source.strip():
            raise spec_error(path, f"{key}.source", "missing; say where the figure comes from (a "
                                                    "study, a programme's records)")
        note = t.get("note", "")
        if not isinstance(note, str):
            raise spec_error(path, f"{key}.note", "expected text in quotes")
        targets.append(Target(metric=metric, value=value, interval=interval,
                              tolerance=tolerance, weight=weight, source=source.strip(),
                              note=note))
    return CalibrationSpec(path=path, data=data, title=title, description=description,
                           base=base.name, base_file=base_file, fixed=dict(fixed),
                           base_params=base_params, priors=priors, targets=tuple(targets),
                           seed=seed, replicates=replicates, population_size=population_size,
                           generations=generations, minimum_epsilon=minimum_epsilon,
                           max_simulations=max_simulations, posterior_predictive=predictive)


# --- what pyabc runs ------------------------------------------------------------------------
def full_params(base: dict[str, Any], values: dict[str, float]) -> dict[str, Any]:
    """The base parameters with fitted values (whole-number parameters rounded)."""
    out = dict(base)
    for k, v in values.items():
        out[k] = int(round(float(v))) if SPECS[k].type is int else float(v)
    return out


class Simulator:
    """The model as pyabc sees it: a parameter set in, the targets' figures out.

    A class (not a closure) so that it pickles for Dask workers. Run seeds are drawn
    from numpy's global generator, which pyabc seeds (in each worker process, too).
    """

    def __init__(self, base: dict[str, Any], metrics: tuple[str, ...], replicates: int):
        self.base = base
        self.metrics = metrics
        self.replicates = replicates

    def __call__(self, parameter: dict[str, float]) -> dict[str, float]:
        """Run the model ``replicates`` times at ``parameter`` and average the figures."""
        seeds = [int(s) for s in np.random.randint(0, 2**31 - 1, size=self.replicates)]
        return observe_mean(full_params(self.base, dict(parameter)), seeds, self.metrics)


class TargetDistance:
    """The weighted mean over targets of each target's distance (see :class:`Target`)."""

    def __init__(self, targets: tuple[Target, ...]):
        self.targets = targets
        self.total_weight = sum(t.weight for t in targets)

    def __call__(self, simulated: dict[str, float], observed: dict[str, float]) -> float:
        """Distance of one run's figures (``observed`` is fixed by the targets)."""
        total = 0.0
        for t in self.targets:
            d = t.distance(float(simulated[t.metric]))
            if not math.isfinite(d):
                return math.inf
            total += t.weight * d
        return total / self.total_weight


# --- statistics -------------------------------------------------------------------------------
def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of a weighted sample (linear between weighted mid-points)."""
    order = np.argsort(values)
    v = np.asarray(values, float)[order]
    w = np.asarray(weights, float)[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(q, cum, v))


def posterior_summary(spec: CalibrationSpec, samples: pd.DataFrame, weights: np.ndarray
                      ) -> pd.DataFrame:
    """Per parameter: prior range, posterior mean, median, 90% and 95% intervals."""
    rows = []
    for p, (low, high) in spec.priors.items():
        x = samples[p].to_numpy(float)
        q = {f: weighted_quantile(x, weights, f) for f in (0.025, 0.05, 0.5, 0.95, 0.975)}
        median = q[0.5]
        rows.append({
            "parameter": p, "unit": SPECS[p].unit, "prior_low": low, "prior_high": high,
            "posterior_mean": float(np.average(x, weights=weights)), "posterior_median": median,
            "p5": q[0.05], "p95": q[0.95], "p2_5": q[0.025], "p97_5": q[0.975],
            "width95_share_of_prior": (q[0.975] - q[0.025]) / (high - low),
            "calibrated_value": (int(round(median)) if SPECS[p].type is int
                                 else float(f"{median:.4g}")),
            "default": SPECS[p].default, "provenance": SPECS[p].provenance})
    return pd.DataFrame(rows)


# --- outputs -----------------------------------------------------------------------------------
def _toml_text(text: str) -> str:
    """A TOML multi-line basic string body (backslashes and quotes escaped)."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def calibrated_scenario(spec: CalibrationSpec, summary: pd.DataFrame, out_dir: Path) -> str:
    """The text of a scenario file that extends the base with the posterior medians."""
    extends = str(spec.base_file.resolve()) if spec.base_file is not None else spec.base
    fitted = "; ".join(f"{t.metric} ({_observed_text(t)}; {t.source})" for t in spec.targets)
    lines = [
        f"# Written by 'reintegration calibrate {spec.path}' into {out_dir}.",
        "# Posterior medians of ABC-SMC; see posterior_summary.csv for their intervals.",
        f"title = {_toml_value('Calibrated: ' + spec.title)}",
        'description = """',
        _toml_text(f"The {spec.base} scenario with {', '.join(spec.priors)} fitted by "
                   f"approximate Bayesian computation (pyabc ABC-SMC) to: {fitted}. Values are "
                   "posterior medians; the posterior intervals (posterior_summary.csv) show how "
                   "well the figures pin each one down. Parameters fixed during the fit are "
                   "repeated below, because the fit holds only with them. " + ETHICS),
        '"""',
        f"extends = {_toml_value(extends)}",
        "",
        "[params]",
        "# fitted (posterior medians)",
    ]
    for _, r in summary.iterrows():
        lines.append(f"{r['parameter']} = {_toml_value(r['calibrated_value'])}  "
                     f"# 95% interval {r['p2_5']:.4g} to {r['p97_5']:.4g}")
    if spec.fixed:
        lines.append("# fixed during the fit")
        for k, v in spec.fixed.items():
            lines.append(f"{k} = {_toml_value(SPECS[k].check(v))}")
    return "\n".join(lines) + "\n"


def _observed_text(t: Target) -> str:
    if t.interval is not None:
        typical = f"{t.value:g} within " if t.value is not None else ""
        return f"{typical}{t.interval[0]:g}-{t.interval[1]:g}"
    return f"{t.value:g} +- {t.tolerance:g}"


def plot_posterior(spec: CalibrationSpec, samples: pd.DataFrame, weights: np.ndarray,
                   summary: pd.DataFrame, truth: dict[str, float] | None, path: Path) -> Path:
    """Weighted histogram and density of each fitted parameter over its prior range."""
    import matplotlib.pyplot as plt
    from scipy.stats import gaussian_kde

    from .plots import OKABE_ITO

    n = len(spec.priors)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.6),
                             squeeze=False, layout="constrained")
    by = summary.set_index("parameter")
    for ax, (p, (low, high)) in zip(axes.ravel(), spec.priors.items(), strict=False):
        x = samples[p].to_numpy(float)
        ax.hist(x, bins=20, range=(low, high), weights=weights, density=True, color=OKABE_ITO[0],
                alpha=0.45, label="posterior (weighted)")
        if len(np.unique(x)) > 2:
            grid = np.linspace(low, high, 200)
            try:
                kde = gaussian_kde(x, weights=weights)
                ax.plot(grid, kde(grid), color=OKABE_ITO[0], linewidth=1.6)
            except np.linalg.LinAlgError:
                pass
        ax.axhline(1.0 / (high - low), color=OKABE_ITO[1], linestyle="--", linewidth=1.2,
                   label="prior (uniform)")
        r = by.loc[p]
        ax.axvspan(r["p2_5"], r["p97_5"], color=OKABE_ITO[2], alpha=0.15, label="95% interval")
        ax.axvline(r["posterior_median"], color=OKABE_ITO[2], linewidth=1.5, label="median")
        if truth and p in truth:
            ax.axvline(truth[p], color=OKABE_ITO[6], linestyle=":", linewidth=1.5,
                       label="true value")
        ax.set_xlim(low, high)
        ax.set_title(p, fontsize=10)
        ax.set_xlabel(SPECS[p].unit)
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"Posterior of the fitted parameters: {spec.title}", fontsize=11)
    fig.supxlabel(ETHICS, fontsize=6.5)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_fit(fit: pd.DataFrame, path: Path) -> Path:
    """Each target: observed figure (interval or value +- tolerance) vs posterior prediction."""
    import matplotlib.pyplot as plt

    from .plots import OKABE_ITO

    n = len(fit)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 1.3 * n + 0.9), squeeze=False,
                             layout="constrained")
    for ax, (_, r) in zip(axes.ravel(), fit.iterrows(), strict=True):
        ax.plot([r["target_low"], r["target_high"]], [1, 1], color=OKABE_ITO[1], linewidth=6,
                alpha=0.6, solid_capstyle="butt", label="observed range")
        if np.isfinite(r["observed"]):
            ax.plot([r["observed"]], [1], "D", color=OKABE_ITO[4], label="observed value")
        ax.plot([r["predictive_p5"], r["predictive_p95"]], [0, 0], color=OKABE_ITO[0],
                linewidth=2, label="posterior prediction, 90% of runs")
        ax.plot([r["predictive_mean"]], [0], "o", color=OKABE_ITO[0], label="its mean")
        ax.set_yticks([0, 1], ["model", "observed"])
        ax.set_ylim(-0.7, 1.7)
        ax.set_title(f"{r['metric']} ({r['source'][:70]})", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes.ravel()[0].legend(fontsize=7, ncols=2, loc="upper right")
    fig.supxlabel(ETHICS, fontsize=6.5)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- the command -----------------------------------------------------------------------------
def _sampler(jobs: int | None, scheduler: str | None) -> tuple[Any, str, Any]:
    """The pyabc sampler for the request, a description, and a client to close (or None)."""
    import pyabc

    from .runner import connect_dask, scheduler_address

    address = scheduler_address(scheduler)
    if address:
        client = connect_dask(address)
        threads = sum(client.nthreads().values()) or 1
        return (pyabc.sampler.DaskDistributedSampler(dask_client=client),
                f"Dask scheduler {address} ({threads} worker threads)", client)
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs {jobs}: need at least 1 worker process (default: all "
                        f"{os.cpu_count()} cores)")
    n = jobs or os.cpu_count() or 1
    if n == 1:
        return pyabc.sampler.SingleCoreSampler(), "serial (1 process)", None
    return (pyabc.sampler.MulticoreEvalParallelSampler(n_procs=n),
            f"local processes ({n}, pyabc MulticoreEvalParallelSampler)", None)


def posterior_predictive(spec: CalibrationSpec, samples: pd.DataFrame, weights: np.ndarray,
                         jobs: int | None, scheduler: str | None) -> pd.DataFrame:
    """Fresh runs at parameter sets drawn from the posterior, one row per run.

    Draw ``k`` uses seed ``seed + 1_000_000 + k`` (never one of the fit's seeds by
    design intent; the fit draws its seeds at random).
    """
    from .runner import open_executor

    rng = np.random.default_rng(spec.seed)
    picks = rng.choice(len(samples), size=spec.posterior_predictive, p=weights / weights.sum())
    base = spec.base_params.to_dict()
    draws = [{p: float(samples[p].iloc[i]) for p in spec.priors} for i in picks]
    rows: dict[int, dict[str, Any]] = {}
    with open_executor(jobs, scheduler) as (executor, _, _):
        futures = {executor.submit(observe, full_params(base, d), spec.seed + 1_000_000 + k,
                                   spec.metrics): k for k, d in enumerate(draws)}
        for future in as_completed(futures):
            k = futures[future]
            rows[k] = {"draw": k, "seed": spec.seed + 1_000_000 + k, **draws[k],
                       **future.result()}
    return pd.DataFrame([rows[k] for k in sorted(rows)])


def fit_table(spec: CalibrationSpec, predictive: pd.DataFrame) -> pd.DataFrame:
    """Observed vs posterior predictive, one row per target."""
    rows = []
    for t in spec.targets:
        x = predictive[t.metric].to_numpy(float)
        ok = x[np.isfinite(x)]
        low, high = (t.interval if t.interval is not None
                     else (t.value - t.tolerance, t.value + t.tolerance))
        rows.append({
            "metric": t.metric, "observed": t.value if t.value is not None else math.nan,
            "target_low": low, "target_high": high,
            "target_kind": "interval" if t.interval is not None else "value +- tolerance",
            "source": t.source, "weight": t.weight, "n_runs": len(ok),
            "predictive_mean": float(ok.mean()) if len(ok) else math.nan,
            "predictive_p5": float(np.percentile(ok, 5)) if len(ok) else math.nan,
            "predictive_p95": float(np.percentile(ok, 95)) if len(ok) else math.nan,
            "share_of_runs_in_target": float(np.mean([t.accepts(v) for v in x])),
            "definition": describe_metric(t.metric)})
    return pd.DataFrame(rows)


def calibrate(targets: Path, jobs: int | None, out: str | Path | None,
              scheduler: str | None, *, truth: dict[str, float] | None = None) -> Path:
    """Fit the targets file's parameters to its observed figures with ABC-SMC.

    Args:
        targets: the targets file (TOML; see this module's docstring).
        jobs: worker processes (None: one per core; 1: serial, reproducible).
        out: output folder; must be new or empty (None: a new folder under results/).
        scheduler: Dask scheduler address (else ``DASK_SCHEDULER_ADDRESS``, else local).
        truth: known parameter values to mark on the plots (when the targets were
            generated by the model itself, as in the tests).

    Returns:
        The output folder, holding posterior_samples.csv, posterior_summary.csv, fit.csv,
        predictive.csv, generations.csv, calibrated.toml, posterior.png, fit.png, abc.db
        and manifest.json.
    """
    import pyabc

    spec = load_targets(Path(targets))
    # pyabc reports each generation (epsilon, acceptance) on its "ABC" loggers; the
    # sampler's start-up line adds nothing.
    logging.getLogger("ABC.Sampler").setLevel(logging.WARNING)
    sampler, described, client = _sampler(jobs, scheduler)
    try:
        out_dir = new_output_dir(f"calibrate-{spec.path.stem}", out)
        command = (f"reintegration calibrate {spec.path}" + (f" --out {out}" if out else "")
                   + (f" --jobs {jobs}" if jobs else ""))
        info = _info(spec)
        write_json(out_dir / "manifest.json", manifest(command, **info, status="running",
                                                       executor=described))
        prior = pyabc.Distribution(**{p: pyabc.RV("uniform", low, high - low)
                                      for p, (low, high) in spec.priors.items()})
        simulator = Simulator(spec.base_params.to_dict(), spec.metrics, spec.replicates)
        abc = pyabc.ABCSMC(simulator, prior, TargetDistance(spec.targets),
                           population_size=spec.population_size, sampler=sampler)
        np.random.seed(spec.seed)  # pyabc draws from numpy's global generator
        db = out_dir / "abc.db"
        abc.new("sqlite:///" + str(db.resolve()), {t.metric: t.centre for t in spec.targets})
        started = time.perf_counter()
        print(f"Calibrating {len(spec.priors)} parameters to {len(spec.targets)} targets: "
              f"{spec.population_size} particles, up to {spec.generations} generations, on "
              f"{described}", file=sys.stderr)
        history = abc.run(minimum_epsilon=spec.minimum_epsilon,
                          max_nr_populations=spec.generations,
                          max_total_nr_simulations=spec.max_simulations)
        fit_seconds = time.perf_counter() - started
    finally:
        if client is not None:
            client.close()

    samples, weights = history.get_distribution(m=0, t=history.max_t)
    samples = samples.reset_index(drop=True)
    weights = np.asarray(weights, float)
    pops = history.get_all_populations()
    generations = pops[pops["t"] >= 0][["t", "epsilon", "samples", "particles"]].copy()
    generations["acceptance_rate"] = generations["particles"] / generations["samples"]
    summary = posterior_summary(spec, samples, weights)
    started = time.perf_counter()
    predictive = posterior_predictive(spec, samples, weights, jobs, scheduler)
    predictive_seconds = time.perf_counter() - started
    fit = fit_table(spec, predictive)

    posterior = samples[list(spec.priors)].assign(weight=weights, generation=history.max_t)
    posterior.to_csv(out_dir / "posterior_samples.csv", index=False)
    summary.to_csv(out_dir / "posterior_summary.csv", index=False)
    fit.to_csv(out_dir / "fit.csv", index=False)
    predictive.to_csv(out_dir / "predictive.csv", index=False)
    generations.to_csv(out_dir / "generations.csv", index=False)
    scenario_text = calibrated_scenario(spec, summary, out_dir)
    (out_dir / "calibrated.toml").write_text(scenario_text)
    try:
        load_scenario(str(out_dir / "calibrated.toml"))
    except (ScenarioError, ParameterError) as exc:  # a bug here, not the user's mistake
        raise RuntimeError(f"the calibrated scenario does not load: {exc}") from None
    plot_posterior(spec, samples, weights, summary, truth, out_dir / "posterior.png")
    plot_fit(fit, out_dir / "fit.png")
    files = ["posterior_samples.csv", "posterior_summary.csv", "fit.csv", "predictive.csv",
             "generations.csv", "calibrated.toml", "posterior.png", "fit.png", "abc.db",
             "manifest.json"]
    stopped = ("minimum_epsilon reached" if generations["epsilon"].iloc[-1] <= spec.minimum_epsilon
               else "max_simulations reached" if history.total_nr_simulations
               >= spec.max_simulations else "generations reached")
    write_json(out_dir / "manifest.json", manifest(
        command, **info, status="complete", executor=described, files=files,
        generations_run=int(history.max_t) + 1, stopped=stopped,
        total_simulations=int(history.total_nr_simulations),
        fit_seconds=round(fit_seconds, 2), predictive_seconds=round(predictive_seconds, 2),
        final_epsilon=float(generations["epsilon"].iloc[-1]), truth=truth))
    _print(spec, summary, fit, generations, int(history.total_nr_simulations), out_dir, files,
           fit_seconds, described)
    return out_dir


def _info(spec: CalibrationSpec) -> dict[str, Any]:
    import importlib.metadata as md

    return {"kind": "calibration", "targets_file": str(spec.path), "targets_spec": spec.data,
            "title": spec.title, "description": spec.description, "base": spec.base,
            "fixed": spec.fixed, "priors": {p: list(b) for p, b in spec.priors.items()},
            "targets": [{"metric": t.metric, "value": t.value,
                         "interval": list(t.interval) if t.interval else None,
                         "tolerance": t.tolerance, "weight": t.weight, "source": t.source,
                         "note": t.note, "definition": describe_metric(t.metric)}
                        for t in spec.targets],
            "method": "ABC-SMC (pyabc.ABCSMC): uniform priors, median epsilon schedule, "
                      "multivariate normal perturbation; distance = weighted mean over targets "
                      "of 0 inside the interval else the miss in half-widths, or |miss| / "
                      "tolerance.",
            "population_size": spec.population_size, "max_generations": spec.generations,
            "minimum_epsilon": spec.minimum_epsilon, "max_simulations": spec.max_simulations,
            "replicates_per_particle": spec.replicates, "seed": spec.seed,
            "posterior_predictive_runs": spec.posterior_predictive,
            "base_parameters": spec.base_params.to_dict(), "pyabc_version": md.version("pyabc"),
            "reproducibility": "With --jobs 1 the fit is reproducible from the seed; parallel "
                               "samplers reseed their workers, so parallel fits vary within the "
                               "posterior's Monte Carlo error."}


def _print(spec: CalibrationSpec, summary: pd.DataFrame, fit: pd.DataFrame,
           generations: pd.DataFrame, total_runs: int, out_dir: Path, files: list[str],
           seconds: float, described: str) -> None:
    from .cli import DISCLAIMER, format_value, print_table

    print(f"\nCalibration {spec.title}: {len(generations)} generations, "
          f"{total_runs} runs in {seconds:.0f} s on {described}; "
          f"final epsilon {generations['epsilon'].iloc[-1]:.3g}")
    print("Posterior (median, 95% interval; prior range)\n")
    print_table([(r.parameter, format_value(float(r.posterior_median)),
                  f"{format_value(float(r.p2_5))} to {format_value(float(r.p97_5))}",
                  f"{format_value(float(r.prior_low))} to {format_value(float(r.prior_high))}")
                 for r in summary.itertuples()], ("parameter", "median", "95% interval", "prior"))
    print("\nFit: observed vs posterior prediction (mean, 90% of runs)\n")
    print_table([(r.metric, f"{format_value(float(r.target_low))} to "
                  f"{format_value(float(r.target_high))}", format_value(float(r.predictive_mean)),
                  f"{format_value(float(r.predictive_p5))} to {format_value(float(r.predictive_p95))}",
                  format_value(float(r.share_of_runs_in_target)))
                 for r in fit.itertuples()], ("target", "observed", "model mean", "model 90%",
                                              "share in target"))
    print(f"\nWrote {out_dir}/: {' '.join(files)}")
    print(f"Compare with: reintegration compare {spec.base} {out_dir / 'calibrated.toml'}")
    print(DISCLAIMER)
