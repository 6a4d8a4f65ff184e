"""Global sensitivity analysis (Morris screening, Sobol variance decomposition) with SALib.

Which uncertain assumptions swing the outcomes a funder cares about, and which barely
matter? SALib draws the design (``SALib.sample.morris``, or Saltelli's extension of the
Sobol sequence in ``SALib.sample.sobol``), the model runs every design point through the
same resumable, parallel, Dask-capable machinery as sweeps (:mod:`experiments.runner`:
its executors, its bounded in-flight window, its Parquet parts written as runs finish,
``--resume`` skipping finished task ids), and SALib computes the indices
(``SALib.analyze.morris`` / ``SALib.analyze.sobol``).

A sensitivity spec is a small TOML file::

    name = "morris_smoke"          # names the output folder (letters, digits, _ and -)
    description = "..."            # optional, free text
    base = "baseline"              # scenario to start from (name or .toml path)
    seed = 1                       # seeds the design and the bootstrap; runs use seed+r
    replicates = 2                 # seeds per design point (2 or more: noise is measured)
    months = 120                   # optional horizon (else the scenario's)
    parameters = ["recovery_rate", "base_turnover"]   # factors, over their plausible range
    outcomes = ["stable_reintegration_rate"]          # summary metrics to analyse
    trajectories = 8               # Morris: trajectories (r)
    levels = 4                     # Morris: grid levels (p)
    N = 256                        # Sobol: base sample size (a power of two)
    second_order = false           # Sobol: also second-order indices (costs ~2x runs)

    [ranges]                       # optional: factors with a narrower (or other) range
    stigma_threshold = [0.0, 0.1]  # must lie inside the parameter's allowed range

    [params]                       # optional fixed overrides for every run
    n_children = 300

    [outputs]
    flush_seconds = 5              # write finished runs to disk at least this often

Factors are the names in ``parameters`` plus those in ``[ranges]``; a factor's range is
its plausible range (``model.parameters.SPECS``) unless ``[ranges]`` gives one. Only
numeric parameters can be factors; whole-number parameters are rounded to the nearest
whole number before the model sees them (the analysis uses the design as drawn).

Replicate noise is handled openly. Every design point runs on the same list of seeds
(``seed``, ``seed+1``, ...; common random numbers, so two points differ because of their
parameters, not their luck), the indices are computed on the mean over replicates of
each point, and ``noise.csv`` reports beside them how much of the spread of those means
is run-to-run noise. It also gives a *noise floor*: the same analysis run on a
noise-only outcome (one replicate's deviation from its point's mean, scaled to the size
of the noise left in a mean) shows how large an index pure noise produces. An index
below the floor cannot be told apart from noise (column ``above_noise``).

Task ``t`` is replicate ``t % replicates`` of design point ``t // replicates`` and runs
on seed ``seed + t % replicates``; results do not depend on the executor, the number of
workers or interruptions.
"""

from __future__ import annotations

import difflib
import json
import math
import textwrap
import tomllib
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.outputs import SUMMARY_DEFINITIONS
from model.parameters import ASSUMPTION, SPECS, ParameterError, Params, unknown_message

from .errors import UserError
from .manifest import manifest, new_output_dir, write_json
from .runner import (
    KEY_METRICS,
    SweepSpec,
    atomic_write,
    collect_results,
    executor_for,
    finished_tasks,
    param_hash,
    prepare_parts,
    run_tasks,
)
from .specs import base_params as spec_base_params
from .specs import check_keys, read_toml_spec, spec_error, spec_header, whole

METHODS = ("morris", "sobol")
SPEC_KEYS = ("name", "description", "base", "seed", "replicates", "months", "parameters",
             "outcomes", "trajectories", "levels", "N", "second_order", "ranges", "params",
             "outputs")
OUTPUT_KEYS = ("flush_seconds",)
DEFAULT_OUTCOMES = tuple(m for m, _, _ in KEY_METRICS)
"""Outcomes analysed when a spec names none: the metrics ``compare`` reports."""
DEFAULT_TRAJECTORIES = 10
DEFAULT_LEVELS = 4
DEFAULT_N = 64
BOOTSTRAP_RESAMPLES = 200
CONF_LEVEL = 0.95

ETHICS = ("Scenario exploration with synthetic agents under stated assumptions: not a "
          "prediction about real children, and not a basis for decisions about any child.")

INDEX_COLUMNS: dict[str, str] = {
    "method": "morris or sobol.",
    "metric": "Summary metric (definitions in model.outputs.SUMMARY_DEFINITIONS).",
    "parameter": "The uncertain parameter (factor).",
    "mu_star": "Morris: mean absolute elementary effect, in the metric's units per full "
               "range of the parameter (the screening measure of influence).",
    "mu_star_conf": f"Morris: half-width of the bootstrap {CONF_LEVEL:.0%} interval of mu_star.",
    "sigma": "Morris: standard deviation of the elementary effects (non-linearity or "
             "interactions).",
    "mu": "Morris: mean signed elementary effect (direction).",
    "S1": "Sobol: first-order index, the share of the metric's variance explained by this "
          "parameter alone.",
    "S1_conf": f"Sobol: half-width of the bootstrap {CONF_LEVEL:.0%} interval of S1.",
    "ST": "Sobol: total-order index, the share of variance explained by this parameter "
          "alone or in interaction with others.",
    "ST_conf": f"Sobol: half-width of the bootstrap {CONF_LEVEL:.0%} interval of ST.",
    "noise_floor": "Largest index of the same kind that a noise-only outcome gets (see "
                   "noise.csv): an index below it cannot be told apart from run-to-run noise.",
    "above_noise": "True when the index (mu_star, or ST) exceeds the noise floor.",
}
"""Columns of ``indices.csv`` and what they mean (also written to manifest.json)."""

NOISE_COLUMNS: dict[str, str] = {
    "method": "morris or sobol.",
    "metric": "Summary metric.",
    "n_points": "Design points with a value for the metric (mean over replicates).",
    "replicates": "Seeds per design point (the same seeds for every point).",
    "missing_runs": "Runs whose value of the metric is empty (e.g. no child reintegrated).",
    "total_sd": "Standard deviation, across design points, of the replicate means: the "
                "variation the indices decompose.",
    "replicate_sd": "Pooled standard deviation between replicates of one design point: the "
                    "run-to-run noise of a single run.",
    "interaction_sd": "The part of replicate_sd that common random numbers do not cancel: "
                      "what is left after removing each seed's average deviation, which every "
                      "design point shares (point-by-seed interaction).",
    "noise_sd_of_mean": "interaction_sd / sqrt(replicates): the noise left in a replicate mean "
                        "that differs between design points.",
    "noise_share": "noise_sd_of_mean^2 / total_sd^2: the share of the variance the indices "
                   "decompose that is noise (0 = none; near 1 = the indices mostly measure "
                   "noise).",
    "floor_measure": "What the noise floor measures (mu_star for Morris; ST as a share of the "
                     "metric's variance for Sobol).",
    "noise_floor": "Largest index the analysis gives on a noise-only outcome of the same size "
                   "as the noise in the means.",
    "analysed": "False when the metric could not be analysed (a design point had no value).",
}
"""Columns of ``noise.csv`` and what they mean."""


# --- the spec ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SensitivitySpec:
    """A validated sensitivity spec: factors with ranges, outcomes, design sizes."""

    path: Path
    data: dict[str, Any]
    name: str
    description: str
    base: str
    base_params: Params
    factors: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    outcomes: tuple[str, ...]
    replicates: int
    seed: int
    trajectories: int
    levels: int
    n_base: int
    second_order: bool
    flush_seconds: float

    def problem(self) -> dict[str, Any]:
        """The SALib problem definition."""
        return {"num_vars": len(self.factors), "names": list(self.factors),
                "bounds": [list(b) for b in self.bounds]}

    def n_points(self, method: str) -> int:
        """Design points the method needs."""
        d = len(self.factors)
        if method == "morris":
            return self.trajectories * (d + 1)
        return self.n_base * (2 * d + 2 if self.second_order else d + 2)


def _check_factor(path: Path, key: str, name: str) -> None:
    if name not in SPECS:
        raise UserError(f"{path}: {key}: {unknown_message(name)}")
    spec = SPECS[name]
    if spec.type not in (int, float):
        kind = f"one of {', '.join(spec.choices)}" if spec.choices else (
            "true/false" if spec.type is bool else "text")
        raise spec_error(path, key, f"{name} is {kind}, not a number, so it cannot be a factor; fix "
                                    "it under [params] and run one analysis per value")


def load_sensitivity_spec(path: Path) -> SensitivitySpec:
    """Read and validate a sensitivity spec; every mistake is a one-line :class:`UserError`.

    Args:
        path: the TOML file (see this module's docstring for the keys).

    Returns:
        The validated spec.
    """
    path = Path(path)
    data = read_toml_spec(path, "sensitivity spec", "experiments/morris-smoke.toml")
    check_keys(path, data, SPEC_KEYS, parameter_hint="a parameter: fix it under [params], "
                                                     "or make it a factor in 'parameters' or "
                                                     "[ranges]")
    name, description, base = spec_header(path, data)
    seed = whole(path, data, "seed", 0, 0)
    replicates = whole(path, data, "replicates", 2, 1)
    if replicates < 2:
        raise spec_error(path, "replicates", "give 2 or more: with one seed per design point the "
                                             "run-to-run noise cannot be measured or reported")
    trajectories = whole(path, data, "trajectories", DEFAULT_TRAJECTORIES, 2)
    levels = whole(path, data, "levels", DEFAULT_LEVELS, 2)
    if levels % 2:
        raise spec_error(path, "levels", f"{levels} is odd; Morris needs an even number of levels "
                                         "(4 is usual)")
    n_base = whole(path, data, "N", DEFAULT_N, 2)
    if n_base & (n_base - 1):
        lower = 1 << (n_base.bit_length() - 1)
        raise spec_error(path, "N", f"{n_base} is not a power of two; Sobol sequences need one, "
                                    f"e.g. {lower} or {lower * 2}")
    second_order = data.get("second_order", False)
    if not isinstance(second_order, bool):
        raise spec_error(path, "second_order", f"expected true or false, got {second_order!r}")

    fixed, base_params = spec_base_params(path, data, base)

    listed = data.get("parameters", [])
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise spec_error(path, "parameters", f"expected a list of parameter names in quotes, got "
                                             f"{listed!r}")
    ranges = data.get("ranges", {})
    if not isinstance(ranges, dict):
        raise spec_error(path, "ranges", "expected a [ranges] table of name = [low, high] lines")
    factors: list[str] = []
    for p in listed:
        _check_factor(path, "parameters", p)
        if p in factors:
            raise spec_error(path, "parameters", f"{p} is listed twice; list each parameter once")
        factors.append(p)
    for p in ranges:
        _check_factor(path, "ranges", p)
        if p not in factors:
            factors.append(p)
    bounds: list[tuple[float, float]] = []
    for p in factors:
        spec = SPECS[p]
        key = f"ranges.{p}" if p in ranges else "parameters"
        if p in fixed:
            raise spec_error(path, key, f"{p} is also fixed in [params]; vary it or fix it, not both")
        if p in ranges:
            pair = ranges[p]
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(v, int | float) and not isinstance(v, bool)
                               for v in pair)):
                raise spec_error(path, key, f"expected [low, high], two numbers, got {pair!r}")
            low, high = float(pair[0]), float(pair[1])
        elif spec.plausible is not None:
            low, high = float(spec.plausible[0]), float(spec.plausible[1])
        else:
            raise spec_error(path, key, f"{p} has no plausible range; give one under [ranges]")
        lo, hi = spec.bounds
        if not lo <= low < high <= hi:
            problem = ("low must be below high" if low >= high else
                       f"[{pair[0]}, {pair[1]}] is outside the allowed range {lo} to {hi} "
                       f"({spec.unit})")
            plausible = f"; plausible range {list(spec.plausible)}" if spec.plausible else ""
            raise spec_error(path, key, problem + plausible)
        bounds.append((low, high))
    if not factors:
        raise spec_error(path, "parameters", "no factors; list parameter names in 'parameters' or "
                                             "give a [ranges] table")
    if len(factors) < 2:
        raise spec_error(path, "parameters", "give at least two factors to compare")

    outcomes = data.get("outcomes", list(DEFAULT_OUTCOMES))
    if (not isinstance(outcomes, list) or not outcomes
            or not all(isinstance(o, str) for o in outcomes)):
        raise spec_error(path, "outcomes", f"expected a non-empty list of summary metric names, got "
                                           f"{outcomes!r}")
    for o in outcomes:
        if o not in SUMMARY_DEFINITIONS:
            near = difflib.get_close_matches(o, list(SUMMARY_DEFINITIONS), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(near)}? " if near else ""
            raise spec_error(path, "outcomes", f"unknown summary metric {o!r}; {hint}(the metrics are "
                                               "listed in model/outputs.py, SUMMARY_DEFINITIONS)")
    if len(set(outcomes)) < len(outcomes):
        raise spec_error(path, "outcomes", "a metric is listed twice; list each once")

    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict):
        raise spec_error(path, "outputs", "expected an [outputs] table")
    for k in outputs:
        if k not in OUTPUT_KEYS:
            raise spec_error(path, f"outputs.{k}", f"unknown key; allowed: {', '.join(OUTPUT_KEYS)}")
    flush = outputs.get("flush_seconds", 5.0)
    if isinstance(flush, bool) or not isinstance(flush, int | float) or not flush > 0:
        raise spec_error(path, "outputs.flush_seconds", f"expected a positive number of seconds, got "
                                                        f"{flush!r}")
    return SensitivitySpec(path=path, data=data, name=name, description=description,
                           base=base.name, base_params=base_params, factors=tuple(factors),
                           bounds=tuple(bounds), outcomes=tuple(outcomes),
                           replicates=replicates, seed=seed, trajectories=trajectories,
                           levels=levels, n_base=n_base, second_order=second_order,
                           flush_seconds=float(flush))


# --- the design -----------------------------------------------------------------------------
def design(spec: SensitivitySpec, method: str) -> np.ndarray:
    """The SALib design: one row per design point, one column per factor (as drawn).

    Args:
        spec: the validated spec.
        method: ``morris`` or ``sobol``.

    Returns:
        An array of shape ``(spec.n_points(method), len(spec.factors))``.
    """
    import warnings

    problem = spec.problem()
    if method == "morris":
        from SALib.sample import morris as morris_sample

        return morris_sample.sample(problem, spec.trajectories, num_levels=spec.levels,
                                    seed=spec.seed)
    from SALib.sample import sobol as sobol_sample

    with warnings.catch_warnings():
        # SALib warns that skipping the sequence's first points is advisable; with
        # scrambling on (the default) the first point is not the degenerate origin.
        warnings.simplefilter("ignore", UserWarning)
        return sobol_sample.sample(problem, spec.n_base, calc_second_order=spec.second_order,
                                   scramble=True, seed=spec.seed)


def as_run(spec: SensitivitySpec, row: np.ndarray) -> dict[str, Any]:
    """The parameter values the model sees for one design row (whole numbers rounded)."""
    point: dict[str, Any] = {}
    for name, (low, high), x in zip(spec.factors, spec.bounds, row, strict=True):
        if SPECS[name].type is int:
            point[name] = int(min(max(round(float(x)), math.ceil(low)), math.floor(high)))
        else:
            point[name] = float(min(max(float(x), low), high))
    return point


def sweep_spec(spec: SensitivitySpec, method: str, x: np.ndarray) -> SweepSpec:
    """The design as a runner :class:`~experiments.runner.SweepSpec` (one sample per point).

    The sweep machinery then runs, stores and resumes the analysis exactly as a sweep.
    """
    base = spec.base_params.to_dict()
    samples, hashes = [], []
    for i, row in enumerate(x):
        point = as_run(spec, row)
        try:
            full = Params.from_dict({**base, **point})
        except ParameterError as exc:
            raise UserError(f"{spec.path}: design point {i}: {exc}") from None
        samples.append(point)
        hashes.append(param_hash(full))
    return SweepSpec(path=spec.path, data={**spec.data, "method": method}, name=spec.name,
                     description=spec.description, base=spec.base, base_params=spec.base_params,
                     replicates=spec.replicates, seed=spec.seed, varied=spec.factors,
                     samples=tuple(samples), sample_hashes=tuple(hashes), timeseries=False,
                     flush_seconds=spec.flush_seconds)


# --- analysis -------------------------------------------------------------------------------
def replicate_means(runs: pd.DataFrame, metric: str, n_points: int, replicates: int
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Per design point: the replicate mean, a noise-only stand-in, and noise statistics.

    The noise-only value of a point is its first finite replicate's deviation from the
    point's mean, times ``1/sqrt(n-1)`` (``n`` finite replicates): it has the variance
    of the noise left in a mean of ``n`` runs, and it inherits the common-random-number
    correlation between neighbouring points, but none of the parameters' effect.

    Args:
        runs: one row per run with ``sample_id``, ``replicate`` and the metric.
        metric: the metric column.
        n_points: design points.
        replicates: seeds per point.

    Returns:
        ``(means, noise_only, stats)``; ``means`` holds NaN for a point with no value.
    """
    y = np.full((n_points, replicates), np.nan)
    y[runs["sample_id"].to_numpy(), runs["replicate"].to_numpy()] = runs[metric].to_numpy(float)
    finite = np.isfinite(y)
    count = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(count > 0, np.nansum(y, axis=1) / np.maximum(count, 1), np.nan)
        first = np.array([row[f][0] if f.any() else np.nan for row, f in zip(y, finite,
                                                                              strict=True)])
        noise_only = np.where(count > 1, (first - means) / np.sqrt(np.maximum(count - 1, 1)), 0.0)
    dev = y - means[:, None]
    dof = int(np.maximum(count - 1, 0).sum())
    replicate_sd = math.sqrt(float(np.nansum(dev ** 2)) / dof) if dof else math.nan
    # Common random numbers: part of a seed's effect is shared by every design point
    # (the same seeds everywhere) and cancels between points. The noise that remains is
    # the point-by-seed interaction: the deviations left after removing each seed's
    # average deviation (a two-way decomposition).
    with np.errstate(invalid="ignore"):
        seed_effect = np.nanmean(np.where(finite, dev, np.nan), axis=0)
    resid = dev - np.nan_to_num(seed_effect)[None, :]
    dof_int = dof - (replicates - 1)
    interaction_sd = (math.sqrt(float(np.nansum(resid ** 2)) / dof_int) if dof_int > 0
                      else math.nan)
    ok = np.isfinite(means)
    total_sd = float(np.std(means[ok], ddof=1)) if ok.sum() > 1 else math.nan
    noise_sd = interaction_sd / math.sqrt(replicates)
    if not (np.isfinite(noise_sd) and np.isfinite(total_sd)):
        share = math.nan
    elif total_sd > 0:
        share = min(noise_sd ** 2 / total_sd ** 2, 1.0)
    else:
        share = 0.0 if noise_sd == 0 else 1.0
    return means, noise_only, {"n_points": int(ok.sum()), "replicates": replicates,
                               "missing_runs": int((~finite).sum()), "total_sd": total_sd,
                               "replicate_sd": replicate_sd, "interaction_sd": interaction_sd,
                               "noise_sd_of_mean": noise_sd, "noise_share": share}


def analyse(spec: SensitivitySpec, method: str, x: np.ndarray, y: np.ndarray
            ) -> dict[str, np.ndarray]:
    """SALib's analysis of one outcome (one value per design point).

    Args:
        spec: the spec (problem, levels, seed).
        method: ``morris`` or ``sobol``.
        x: the design as drawn.
        y: the outcome per design point (finite).

    Returns:
        SALib's result as a mapping of index name to one value per factor.
    """
    problem = spec.problem()
    # A non-zero seed: SALib's Sobol analysis ignores a seed of 0 and would then draw
    # its bootstrap from the global generator.
    boot_seed = spec.seed + 1
    if method == "morris":
        from SALib.analyze import morris as morris_analyze

        res = morris_analyze.analyze(problem, x, y, num_resamples=BOOTSTRAP_RESAMPLES,
                                     conf_level=CONF_LEVEL, num_levels=spec.levels,
                                     seed=boot_seed)
        return {k: np.asarray(res[k], float) for k in ("mu_star", "mu_star_conf", "sigma", "mu")}
    from SALib.analyze import sobol as sobol_analyze

    with np.errstate(divide="ignore", invalid="ignore"):
        res = sobol_analyze.analyze(problem, y, calc_second_order=spec.second_order,
                                    num_resamples=BOOTSTRAP_RESAMPLES, conf_level=CONF_LEVEL,
                                    seed=boot_seed)
    out = {k: np.asarray(res[k], float) for k in ("S1", "S1_conf", "ST", "ST_conf")}
    if spec.second_order:
        out["S2"] = np.asarray(res["S2"], float)
        out["S2_conf"] = np.asarray(res["S2_conf"], float)
    return out


def _noise_floor(spec: SensitivitySpec, method: str, x: np.ndarray, noise_only: np.ndarray,
                 means: np.ndarray) -> float:
    """The largest index a noise-only outcome gets, on the scale of the real outcome."""
    if not np.any(noise_only != 0):
        return 0.0
    res = analyse(spec, method, x, noise_only)
    if method == "morris":
        return float(np.nanmax(res["mu_star"]))
    # Sobol indices are shares of the analysed outcome's variance: rescale from the
    # noise-only outcome's variance to the real outcome's.
    total = np.var(means)
    if not total > 0:
        return math.nan
    return float(np.nanmax(res["ST"]) * np.var(noise_only) / total)


def indices_and_noise(spec: SensitivitySpec, method: str, x: np.ndarray, runs: pd.DataFrame
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Indices per outcome and factor, the noise report, and second-order indices.

    Returns:
        ``(indices, noise, second_order)`` tables (the last is empty unless asked).
    """
    n_points = len(x)
    rows, noise_rows, s2_rows = [], [], []
    for metric in spec.outcomes:
        means, noise_only, stats = replicate_means(runs, metric, n_points, spec.replicates)
        measure = "mu_star" if method == "morris" else "ST (share of the metric's variance)"
        if not np.all(np.isfinite(means)):
            noise_rows.append({"method": method, "metric": metric, **stats,
                               "floor_measure": measure, "noise_floor": math.nan,
                               "analysed": False})
            continue
        res = analyse(spec, method, x, means)
        floor = _noise_floor(spec, method, x, noise_only, means)
        noise_rows.append({"method": method, "metric": metric, **stats, "floor_measure": measure,
                           "noise_floor": floor, "analysed": True})
        key = "mu_star" if method == "morris" else "ST"
        for j, p in enumerate(spec.factors):
            row: dict[str, Any] = {"method": method, "metric": metric, "parameter": p}
            for k in (("mu_star", "mu_star_conf", "sigma", "mu") if method == "morris"
                      else ("S1", "S1_conf", "ST", "ST_conf")):
                row[k] = float(res[k][j])
            row["noise_floor"] = floor
            row["above_noise"] = bool(np.isfinite(floor) and row[key] > floor)
            rows.append(row)
        if "S2" in res:
            for a in range(len(spec.factors)):
                for b in range(a + 1, len(spec.factors)):
                    s2_rows.append({"metric": metric, "parameter_1": spec.factors[a],
                                    "parameter_2": spec.factors[b], "S2": res["S2"][a, b],
                                    "S2_conf": res["S2_conf"][a, b]})
    cols = [c for c in INDEX_COLUMNS if c in ("method", "metric", "parameter", "noise_floor",
                                              "above_noise")
            or (method == "morris" and c in ("mu_star", "mu_star_conf", "sigma", "mu"))
            or (method == "sobol" and c in ("S1", "S1_conf", "ST", "ST_conf"))]
    return (pd.DataFrame(rows, columns=cols), pd.DataFrame(noise_rows, columns=list(NOISE_COLUMNS)),
            pd.DataFrame(s2_rows))


# --- the learning agenda ------------------------------------------------------------------
def learning_agenda(indices: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per outcome, the factors ranked by importance, with their provenance.

    Importance is Sobol's total-order index ST (the share of the outcome's variance the
    parameter explains, alone or with others) or, for Morris, the parameter's share of
    the summed mu* (a screening ranking, not a variance share).
    """
    rows = []
    for metric, g in indices.groupby("metric", sort=False):
        if method == "sobol":
            imp = g["ST"].clip(lower=0.0)
            measure = "Sobol ST (share of variance, alone or in interactions)"
        else:
            total = g["mu_star"].sum()
            imp = g["mu_star"] / total if total > 0 else g["mu_star"] * 0.0
            measure = "share of summed Morris mu* (screening rank)"
        order = np.argsort(-imp.to_numpy(), kind="stable")
        for rank, i in enumerate(order, start=1):
            p = g["parameter"].iloc[i]
            rows.append({"metric": metric, "rank": rank, "parameter": p,
                         "importance": float(imp.iloc[i]), "importance_measure": measure,
                         "provenance": SPECS[p].provenance, "description": SPECS[p].description,
                         "above_noise": bool(g["above_noise"].iloc[i])})
    return pd.DataFrame(rows, columns=["metric", "rank", "parameter", "importance",
                                       "importance_measure", "provenance", "description",
                                       "above_noise"])


def evidence_today(provenance: str) -> str:
    """A plain reading of a provenance string: what backs the parameter's value today."""
    text = provenance.strip()
    if text.lower() == ASSUMPTION:
        return "assumption (no source)"
    if ASSUMPTION in text.lower():
        return f"source for the mechanism, size assumed: {text}"
    return f"source cited: {text}"


def agenda_markdown(spec: SensitivitySpec, method: str, agenda: pd.DataFrame,
                    noise: pd.DataFrame, indices: pd.DataFrame, n_runs: int) -> str:
    """The plain-language learning agenda (Markdown)."""
    what = ("how much of each outcome's variance they explain (Sobol total-order index ST)"
            if method == "sobol" else
            "how strongly they move each outcome (Morris mu*, a screening method: it ranks "
            "parameters but does not split the variance; run a Sobol analysis for shares)")
    lines = [f"# Learning agenda: {spec.name}", "",
             f"The uncertain parameters ranked by {what}, each with its provenance, so a funder "
             "sees which evidence would be worth buying. A parameter that ranks high but rests "
             "on an assumption is where new evidence (monitoring data, a baseline study, "
             "longitudinal follow-up) would most change what the model says.", "",
             f"*{ETHICS}*", "",
             f"Set-up: base scenario `{spec.base}`, {len(spec.factors)} uncertain parameters over "
             f"their ranges, {spec.n_points(method)} design points x {spec.replicates} "
             f"replicates on common seeds ({n_runs} runs, {spec.base_params.months} months, "
             f"{spec.base_params.n_children} children at the start).", ""]
    if spec.description.strip():
        lines += [spec.description.strip(), ""]
    # Overall: the best rank each parameter reaches on any outcome.
    ok = agenda[agenda["above_noise"]]
    if len(ok):
        best = (ok.sort_values(["rank", "importance"], ascending=[True, False])
                .drop_duplicates("parameter"))
        lines += ["## Evidence worth buying first", "",
                  "Parameters that rank in the top three for at least one outcome (and stand "
                  "out from run-to-run noise), with what the evidence behind them is today:", ""]
        top = best[best["rank"] <= 3]
        for _, r in top.iterrows():
            outcomes = ", ".join(f"`{m}`" for m in ok.loc[(ok["parameter"] == r["parameter"])
                                                          & (ok["rank"] <= 3), "metric"])
            lines.append(f"- **{r['parameter']}** ({evidence_today(r['provenance'])}): "
                         f"{r['description']} Ranks in the top three for {outcomes}.")
        assumed = [p for p in top["parameter"] if ASSUMPTION in SPECS[p].provenance.lower()]
        if assumed:
            lines.append("")
            named = [f"**{p}**" for p in assumed]
            listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
            lines.append(f"Of these, {listed} "
                         f"{'rests' if len(assumed) == 1 else 'rest'} wholly or partly on "
                         "assumption: evidence there is likely the best buy.")
        lines.append("")
    low = sorted(set(spec.factors) - set(ok.loc[ok["rank"] <= 3, "parameter"]))
    if low:
        lines += ["Parameters that rank in the top three for no outcome (evidence on these "
                  "would change the model's answers least): " + ", ".join(low) + ".", ""]
    noise_by = noise.set_index("metric")
    for metric, g in agenda.groupby("metric", sort=False):
        nz = noise_by.loc[metric]
        floor = float(nz["noise_floor"])
        if method == "morris":
            # The table shows shares of the summed mu*: put the floor on that scale.
            total = float(indices.loc[indices["metric"] == metric, "mu_star"].sum())
            floor = floor / total if total > 0 else math.nan
        lines += [f"## {metric}", "", SUMMARY_DEFINITIONS[metric], "",
                  f"Run-to-run noise: {_pct(nz['noise_share'])} of the variation between "
                  f"design points is noise left in the {spec.replicates}-run means; an "
                  f"importance below {_num(floor)} cannot be told apart from noise.", "",
                  f"Importance: {g['importance_measure'].iloc[0]}.", "",
                  "| rank | parameter | importance | above noise | evidence today |",
                  "|---|---|---|---|---|"]
        for _, r in g.iterrows():
            lines.append(f"| {r['rank']} | {r['parameter']} | {_num(r['importance'])} | "
                         f"{'yes' if r['above_noise'] else 'no'} | "
                         f"{evidence_today(r['provenance'])} |")
        lines.append("")
    skipped = noise[~noise["analysed"]]
    for _, r in skipped.iterrows():
        lines += [f"## {r['metric']}", "", "Not analysed: at some design points no run gave a "
                  "value for this metric (it is empty when, e.g., no child reached the event "
                  "it counts). Narrow the ranges or use more children.", ""]
    lines += ["## How to read this", "",
              "Importance is relative to the ranges given to the parameters: widening a "
              "parameter's range raises its importance. The ranges are the parameter set's "
              "plausible ranges (or the spec's), listed under 'factors' in manifest.json. "
              f"{ETHICS}", ""]
    return "\n".join(lines)


def _pct(v: float) -> str:
    if not np.isfinite(v):
        return "–"
    return "under 1%" if 0 < v < 0.005 else f"{100 * v:.0f}%"


def _num(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:.3g}"


# --- plots -----------------------------------------------------------------------------------
def plot_indices(indices: pd.DataFrame, method: str, metric: str, path: Path,
                 noise_share: float, replicates: int) -> Path:
    """A horizontal bar chart (tornado-style, largest at the top) for one outcome."""
    import matplotlib.pyplot as plt

    from .plots import OKABE_ITO

    g = indices[indices["metric"] == metric]
    key = "mu_star" if method == "morris" else "ST"
    g = g.sort_values(key, ascending=True, kind="stable")
    y = np.arange(len(g))
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.45 * len(g)), layout="constrained")
    h = 0.38
    if method == "morris":
        ax.barh(y + h / 2, g["mu_star"], h, xerr=g["mu_star_conf"], color=OKABE_ITO[0],
                label="μ* (mean |effect|), 95% bootstrap interval", capsize=2)
        ax.barh(y - h / 2, g["sigma"], h, color=OKABE_ITO[1], label="σ (non-linearity, "
                "interactions)")
        ax.set_xlabel(f"Change in {metric} per full range of the parameter")
    else:
        ax.barh(y + h / 2, g["ST"], h, xerr=g["ST_conf"], color=OKABE_ITO[0],
                label="ST (total: alone or with others)", capsize=2)
        ax.barh(y - h / 2, g["S1"], h, xerr=g["S1_conf"], color=OKABE_ITO[1],
                label="S1 (first order: alone)", capsize=2)
        ax.set_xlabel(f"Share of the variance of {metric}")
    floor = float(g["noise_floor"].iloc[0]) if len(g) else math.nan
    if np.isfinite(floor):
        ax.axvline(floor, color=OKABE_ITO[6], linestyle="--", linewidth=1,
                   label=f"noise floor ({key} of a noise-only outcome)")
    ax.set_yticks(y, g["parameter"])
    ax.axvline(0, color="0.6", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    name = "Morris screening" if method == "morris" else "Sobol indices"
    ax.set_title(f"{name}: {metric}", fontsize=11)
    note = (f"Means over {replicates} common seeds per design point; run-to-run noise is "
            f"{_pct(noise_share)} of their variance. " + ETHICS)
    fig.supxlabel(textwrap.fill(note, 150), fontsize=6.5)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- running -------------------------------------------------------------------------------
def _check_output(spec: SensitivitySpec, method: str, out: str | Path | None,
                  resume: bool) -> None:
    """Refuse an output folder that would be overwritten, or a resume that cannot be."""
    if not resume:
        if out is not None and (Path(out) / "spec.toml").exists():
            raise UserError(f"--out {out}: holds a sensitivity analysis already; add --resume "
                            "to finish it, or choose a new folder (results are never "
                            "overwritten)")
        return
    if out is None:
        raise UserError("--resume needs --out FOLDER: the folder of the analysis to finish")
    saved = Path(out) / "spec.toml"
    if not saved.is_file():
        raise UserError(f"--out {out}: no analysis to resume here (no spec.toml); run without "
                        "--resume to start one")
    before = tomllib.loads(saved.read_text())
    if before != spec.data:
        keys = sorted(k for k in set(before) | set(spec.data)
                      if before.get(k) != spec.data.get(k))
        raise UserError(f"{spec.path}: differs from the spec of the analysis in {out} "
                        f"(changed: {', '.join(keys)}); resume with the same spec, or start a "
                        "new analysis in a new --out folder")
    try:
        old = json.loads((Path(out) / "manifest.json").read_text()).get("method")
    except (OSError, ValueError):
        old = None
    if old is not None and old != method:
        raise UserError(f"--method {method}: the analysis in {out} used --method {old}; resume "
                        "with the same method")


def sensitivity(spec: Path, method: str, jobs: int | None, out: str | Path | None,
                resume: bool, scheduler: str | None, *, executor: Executor | None = None,
                window: int | None = None) -> Path:
    """Run a Morris or Sobol analysis: design, runs (resumable), indices, learning agenda.

    Args:
        spec: the sensitivity spec (TOML; see this module's docstring).
        method: ``morris`` or ``sobol``.
        jobs: worker processes for the local pool (None: one per core; 1: serial).
        out: output folder; must be new or empty unless ``resume``.
        resume: finish the interrupted analysis in ``out``: skip finished runs.
        scheduler: Dask scheduler address (else ``DASK_SCHEDULER_ADDRESS``, else local).
        executor: run on this :class:`concurrent.futures.Executor` instead (not shut
            down here); ``jobs`` and ``scheduler`` are then ignored.
        window: tasks kept in flight (default: four per worker).

    Returns:
        The output folder, holding indices.csv, noise.csv, learning_agenda.csv,
        learning_agenda.md, one indices-METRIC.png per outcome, design.csv, runs.csv,
        results.parquet, spec.toml, manifest.json and parts/.
    """
    if method not in METHODS:
        raise UserError(f"--method {method}: use one of {', '.join(METHODS)}")
    sp = load_sensitivity_spec(Path(spec))
    _check_output(sp, method, out, resume)
    x = design(sp, method)
    sw = sweep_spec(sp, method, x)
    command = (f"reintegration sensitivity {sp.path} --method {method}"
               + (f" --out {out}" if out is not None else "") + (" --resume" if resume else ""))
    with executor_for(executor, jobs, scheduler) as (ex, described, default_window):
        out_dir = Path(out) if resume else new_output_dir(f"sensitivity-{sp.name}-{method}", out)
        if not resume:
            atomic_write(out_dir / "spec.toml", lambda fh: fh.write(sp.path.read_bytes()))
        runs_dir, ts_dir = prepare_parts(out_dir)
        done = finished_tasks(sw, runs_dir)
        drawn = pd.DataFrame(x, columns=[f"{p}_drawn" for p in sp.factors])
        used = pd.DataFrame(list(sw.samples))
        design_table = pd.concat([pd.DataFrame({"sample_id": np.arange(len(x)),
                                                "param_hash": sw.sample_hashes}), used, drawn],
                                 axis=1)
        atomic_write(out_dir / "design.csv",
                      lambda fh: fh.write(design_table.to_csv(index=False).encode()))
        info = _info(sp, method, sw)
        write_json(out_dir / "manifest.json", manifest(command, **info, status="running",
                                                       executor=described))
        elapsed = run_tasks(sw, ex, window or default_window, runs_dir, ts_dir, done,
                            f"{sp.name} ({method})")

    results = collect_results(sw, runs_dir, "analysis")
    indices, noise, s2 = indices_and_noise(sp, method, x, results)
    agenda = learning_agenda(indices, method)

    atomic_write(out_dir / "results.parquet", lambda fh: results.to_parquet(fh, index=False))
    slim = results[["task_id", "sample_id", "replicate", "seed", "param_hash", *sp.factors,
                    *sp.outcomes]]
    files = ["indices.csv", "noise.csv", "learning_agenda.csv", "learning_agenda.md"]
    for name, table in (("indices.csv", indices), ("noise.csv", noise),
                        ("learning_agenda.csv", agenda),
                        ("runs.csv", slim)):
        atomic_write(out_dir / name, lambda fh, t=table: fh.write(t.to_csv(index=False).encode()))
    if len(s2):
        atomic_write(out_dir / "indices_second_order.csv",
                      lambda fh: fh.write(s2.to_csv(index=False).encode()))
        files.append("indices_second_order.csv")
    text = agenda_markdown(sp, method, agenda, noise, indices, sw.n_tasks)
    atomic_write(out_dir / "learning_agenda.md", lambda fh: fh.write(text.encode()))
    noise_by = noise.set_index("metric")
    for metric in indices["metric"].unique():
        png = f"indices-{metric}.png"
        plot_indices(indices, method, metric, out_dir / png,
                     float(noise_by.at[metric, "noise_share"]), sp.replicates)
        files.append(png)
    files += ["design.csv", "runs.csv", "results.parquet", "spec.toml", "manifest.json", "parts/"]
    write_json(out_dir / "manifest.json", manifest(
        command, **info, status="complete", executor=described,
        runs_this_time=sw.n_tasks - len(done), elapsed_seconds=round(elapsed, 2), files=files,
        index_columns=INDEX_COLUMNS, noise_columns=NOISE_COLUMNS))
    _print(sp, method, agenda, noise, out_dir, files, len(done), sw.n_tasks, elapsed, described)
    return out_dir


def _info(sp: SensitivitySpec, method: str, sw: SweepSpec) -> dict[str, Any]:
    """The analysis' part of manifest.json."""
    import importlib.metadata as md

    return {"kind": "sensitivity", "method": method, "spec": sp.data, "spec_file": str(sp.path),
            "name": sp.name, "description": sp.description, "base": sp.base,
            "factors": {p: {"range": list(b), "plausible": list(SPECS[p].plausible or ()),
                            "unit": SPECS[p].unit, "whole_number": SPECS[p].type is int,
                            "provenance": SPECS[p].provenance}
                        for p, b in zip(sp.factors, sp.bounds, strict=True)},
            "outcomes": list(sp.outcomes), "replicates": sp.replicates, "seeds": sw.seeds,
            "design": ({"sampler": "SALib.sample.morris", "trajectories": sp.trajectories,
                        "levels": sp.levels} if method == "morris" else
                       {"sampler": "SALib.sample.sobol (Saltelli, scrambled)", "N": sp.n_base,
                        "second_order": sp.second_order}),
            "n_points": len(sw.samples), "n_tasks": sw.n_tasks,
            "salib_version": md.version("SALib"),
            "noise_handling": "Common random numbers: every design point runs on the same "
                              "seeds; indices are computed on the replicate mean per point; "
                              "noise.csv reports the noise share and a noise floor from the "
                              "same analysis of a noise-only outcome.",
            "base_parameters": sp.base_params.to_dict(),
            "task_ids": "task_id = sample_id * replicates + replicate; seed = seed + replicate"}


def _print(sp: SensitivitySpec, method: str, agenda: pd.DataFrame, noise: pd.DataFrame,
           out_dir: Path, files: list[str], n_done_before: int, n_tasks: int, elapsed: float,
           described: str) -> None:
    from .cli import DISCLAIMER, format_value, print_table

    print(f"\nSensitivity {sp.name} ({method}): {n_tasks} runs ({n_tasks // sp.replicates} "
          f"design points x {sp.replicates} replicates; {n_tasks - n_done_before} run now, "
          f"{n_done_before} already done) in {elapsed:.1f} s on {described}")
    noise_by = noise.set_index("metric")
    rows = []
    for metric, g in agenda.groupby("metric", sort=False):
        top = g.head(3)
        rows.append((metric, *(f"{r.parameter} ({format_value(float(r.importance))})"
                               + ("" if r.above_noise else " ~noise") for r in top.itertuples()),
                     *([""] * (3 - len(top))), format_value(float(noise_by.at[metric,
                                                                             "noise_share"]))))
    print("Top parameters per outcome (importance; ~noise = not above the noise floor)\n")
    print_table(rows, ("outcome", "1st", "2nd", "3rd", "noise share"))
    for _, r in noise[~noise["analysed"]].iterrows():
        print(f"not analysed: {r['metric']} (empty in some runs)")
    print(f"\nWrote {out_dir}/: {' '.join(files)}")
    print(DISCLAIMER)
