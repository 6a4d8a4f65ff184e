"""Many runs: replicated scenario comparisons and resumable, parallel parameter sweeps.

Both go through the model's plain function (:func:`model.run.run`) and the standard
:class:`concurrent.futures.Executor` interface, so the same code runs serially
(``--jobs 1``), on a local process pool (the default) or on a Dask cluster
(``--scheduler ADDRESS`` or ``DASK_SCHEDULER_ADDRESS``; any executor a caller brings
works too).

Seeds are data. Replicate ``i`` of every scenario or sweep sample uses seed ``seed + i``,
and the model gives each of its processes its own random stream spawned from that seed,
so two scenarios run on the same seed differ because of the scenario, not the noise
(common random numbers). Comparisons are therefore *paired*: differences are taken
replicate by replicate on matched seeds.

A sweep spec is a small TOML file::

    name = "funding_grid"            # names the output folder (letters, digits, _ and -)
    description = "..."              # optional, free text
    base = "baseline"                # scenario to start from (name or .toml path)
    replicates = 20                  # seeds seed, seed+1, ..., seed+replicates-1
    seed = 1
    months = 120                     # optional horizon (else the scenario's)

    [params]                         # optional fixed overrides for every run
    n_children = 300

    [grid]                           # full factorial over these values
    funding_scheme = ["short_cycles", "rolling"]
    initial_stigma = [0.4, 0.8]

    [ranges]                         # optional: sampled ranges [low, high] ...
    stigma_influence_rate = [0.02, 0.3]
    sampler = "latin"                # ... with a seeded Latin hypercube (top level)
    samples = 50                     # ... of this many points (top level)

    [outputs]
    timeseries = true                # also keep every run's monthly series
    flush_seconds = 5                # write finished runs to disk at least this often

``sampler`` and ``samples`` live at the top level. Grid points and range samples are
crossed: every grid point is combined with every Latin-hypercube point. Whole-number
parameters sampled from a range are drawn uniformly over the whole numbers in it.

A sweep writes finished runs, as they arrive, to small Parquet parts under
``OUT/parts/runs/`` (and, when asked, the monthly series under ``OUT/parts/timeseries/``,
part for part with the same file name). Each part is written to a hidden temporary file
and renamed into place, so a part is either complete or absent: a sweep killed at any
point loses at most the runs in flight and those not yet flushed (a few seconds' worth).
``--resume`` reads the parts, skips the finished task ids and runs the rest; the
combined ``results.parquet`` and ``runs.csv`` (sorted by task id) are then identical to
those of an uninterrupted sweep.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from model.outputs import KEY_SUMMARY, SUMMARY_LABELS
from model.parameters import SPECS, ParameterError, Params
from model.run import run

from .errors import UserError
from .manifest import manifest, new_output_dir, write_json
from .scenarios import load_scenario
from .specs import base_params as spec_base_params
from .specs import check_keys, read_toml_spec, spec_error, spec_header, whole
from .specs import table as spec_table

# --- what to report ------------------------------------------------------------------
KEY_METRICS: tuple[tuple[str, str, str], ...] = tuple(
    (m, *SUMMARY_LABELS[m]) for m in KEY_SUMMARY)
"""Summary metrics printed and plotted by ``compare``: (name, label, unit).

The definitions are in ``model.outputs.SUMMARY_DEFINITIONS``."""

EXPLOITED_ALL = "n_exploited_all"
"""Derived series for the plots: children exploited or re-exploited (never in runs.csv)."""

SERIES: tuple[str, ...] = ("n_reintegrated", "n_in_care", EXPLOITED_ALL, "mean_stigma",
                           "staff_employed", "premature_exits")
"""Monthly series plotted by ``compare``, in panel order."""

COMPARISON_COLUMNS: dict[str, str] = {
    "scenario": "Scenario name.",
    "metric": "Summary metric (definitions in model.outputs.SUMMARY_DEFINITIONS).",
    "n": "Replicates with a value for this metric (some metrics are empty in some runs).",
    "mean": "Mean over replicates.",
    "sd": "Standard deviation over replicates (run-to-run variation).",
    "ci_low": "Lower end of the 95% t-interval for the mean (Student t, n-1 df).",
    "ci_high": "Upper end of the 95% t-interval for the mean.",
    "p2_5": "2.5th percentile of the replicates (the spread of single runs).",
    "p97_5": "97.5th percentile of the replicates.",
    "reference": "The reference scenario (the first one named).",
    "diff_n": "Replicate pairs (same seed) with a value in both scenarios.",
    "diff_mean": "Mean paired difference, this scenario minus the reference, on matched seeds.",
    "diff_sd": "Standard deviation of the paired differences.",
    "diff_ci_low": "Lower end of the 95% t-interval of the mean paired difference.",
    "diff_ci_high": "Upper end of the 95% t-interval of the mean paired difference.",
    "likely": "True when the paired 95% interval excludes zero: the difference is unlikely "
              "to be run-to-run noise (in the model, under its assumptions).",
}
"""Columns of ``comparison.csv`` and what they mean (also written to manifest.json)."""

INTERVAL_METHOD = ("95% intervals are Student-t intervals of the mean over replicates "
                   "(ci_low/ci_high) and of the mean paired difference over seed-matched "
                   "replicate pairs (diff_ci_low/diff_ci_high); p2_5/p97_5 give the spread of "
                   "single runs. Plot bands are the 2.5-97.5 percentiles across replicates.")

SPEC_KEYS = ("name", "description", "base", "replicates", "seed", "months", "sampler",
             "samples", "params", "grid", "ranges", "outputs")
OUTPUT_KEYS = ("timeseries", "flush_seconds")
SAMPLERS = ("latin",)
FLUSH_RUNS = 200
"""Write a part at least every this many finished runs (and every flush_seconds)."""


# --- one run, executed in a worker ---------------------------------------------------
def run_one(task_id: int, params: dict[str, Any], seed: int,
            timeseries: bool) -> tuple[int, dict[str, float], pd.DataFrame | None]:
    """Run the model once; this is what every executor executes.

    Args:
        task_id: identifies the run in the results.
        params: the full, already validated parameter set as a mapping.
        seed: the run seed.
        timeseries: also return the monthly series.

    Returns:
        ``(task_id, summary, monthly series or None)``.
    """
    result = run(Params.from_dict(params), seed=seed, tables=False)
    return task_id, result.summary, (result.timeseries if timeseries else None)


def param_hash(params: Params) -> str:
    """Fingerprint of a full parameter set: the first 16 hex digits of a SHA-256.

    Computed on the sorted JSON of :meth:`Params.to_dict`, so equal parameter sets
    always give equal hashes, in any process and on any machine.
    """
    text = json.dumps(params.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- executors ---------------------------------------------------------------------------
class SerialExecutor(Executor):
    """Runs each task in the calling process as it is submitted (``--jobs 1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` now and return its finished future."""
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001  (delivered through the future, as a pool would)
            future.set_exception(exc)
        return future


def _check_jobs(jobs: int | None) -> int:
    if jobs is None:
        return os.cpu_count() or 1
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: need at least 1 worker process (default: all "
                        f"{os.cpu_count()} cores)")
    return jobs


def scheduler_address(scheduler: str | None) -> str | None:
    """The Dask scheduler to use: ``--scheduler``, else ``DASK_SCHEDULER_ADDRESS``, else None."""
    return scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


def connect_dask(address: str):
    """A ``distributed.Client`` for ``address``, or a one-line UserError if it can't connect."""
    from distributed import Client

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--scheduler {address}: cannot reach a Dask scheduler ({reason}); "
                        "check the address, or start one with 'dask scheduler' and "
                        "'dask worker ADDRESS'") from None
    if any(_workers_profiling(client).values()):
        print("note: the Dask workers run Dask's statistical profiler, which slows these runs "
              "by about 8%; start workers with DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False "
              "(see docs/guide.md)", file=sys.stderr)
    return client


def _profile_enabled() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled", True))


def _workers_profiling(client) -> dict[str, bool]:
    """Whether each worker of ``client``'s cluster runs Dask's statistical profiler."""
    try:
        return client.run(_profile_enabled)
    except Exception:  # noqa: BLE001 - a check for a note only; never fail a sweep on it
        return {}


@contextmanager
def open_executor(jobs: int | None, scheduler: str | None = None
                  ) -> Iterator[tuple[Executor, str, int]]:
    """The executor to run on, with a description and a window of tasks to keep in flight.

    Args:
        jobs: worker processes for the local pool (None: one per core; 1: serial, in
            this process).
        scheduler: address of a Dask scheduler; when given (or when the environment
            variable ``DASK_SCHEDULER_ADDRESS`` is set) runs go to that cluster instead.

    Yields:
        ``(executor, description, window)``.
    """
    address = scheduler_address(scheduler)
    if address:
        client = connect_dask(address)
        try:
            threads = sum(client.nthreads().values()) or 1
            yield (client.get_executor(pure=False),
                   f"Dask scheduler {address} ({threads} worker threads)", 4 * threads)
        finally:
            client.close()
        return
    jobs = _check_jobs(jobs)
    if jobs == 1:
        yield SerialExecutor(), "serial (1 process)", 1
        return
    # 'spawn': fresh interpreters, safe whatever threads this process runs (progress bar,
    # a Dask client); the import cost (~2 s) is paid once per worker, not per run.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent)
    try:
        yield pool, f"local process pool ({jobs} workers)", 4 * jobs
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _exit_with_parent() -> None:
    """Pool-worker initialiser: end this worker when the process that started it dies.

    Without it, workers of a sweep killed with ``kill -9`` wait forever on their task
    queue (they hold its pipe open themselves).
    """
    import threading
    from multiprocessing.connection import wait as wait_for

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait_for([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def run_many(tasks: list[tuple[int, dict[str, Any], int, bool]]) -> list[tuple]:
    """Run several tasks in one worker call (see :func:`_drive`); results in task order."""
    return [run_one(*task) for task in tasks]


MAX_CHUNK = 8
"""Most runs sent to a worker in one call."""


def _drive(executor: Executor, tasks: Iterable[tuple[int, dict[str, Any], int, bool]],
           window: int, on_result: Callable[[tuple], None],
           on_tick: Callable[[], None] | None = None, tick: float = 1.0,
           total: int | None = None) -> None:
    """Run tasks through ``executor``, keeping about ``window`` runs in flight.

    With more than one worker (``window`` > 1, a window being 4 runs per worker) and a
    known ``total``, runs go to workers in chunks, guided: about a third of each worker's
    share of what remains, at most ``MAX_CHUNK``, shrinking to single runs at the end so
    the workers finish together. A 1,000-child run takes about 0.15 s, so sending runs one
    by one spends a noticeable share of it on the round trip (pickling, the pool's or
    Dask's scheduling). ``on_result`` gets each finished run's result as it arrives (in
    completion order); ``on_tick`` is called at least every ``tick`` seconds while runs
    are in flight. A run in a chunk that has not come back is not written, as with any
    run in flight, and a resumed sweep runs it again.
    """
    workers = max(1, window // 4)
    chunked = window > 1 and total is not None
    pending: dict[Future, int] = {}
    queue = iter(tasks)
    remaining = total or 0
    in_flight = 0
    more = True
    try:
        while True:
            while more and (in_flight < max(window, 1) if not chunked
                            else len(pending) < 2 * workers):
                if chunked:
                    size = max(1, min(MAX_CHUNK, -(-remaining // (3 * workers))))
                    chunk = [t for _, t in zip(range(size), queue, strict=False)]
                    if not chunk:
                        more = False
                        break
                    remaining -= len(chunk)
                    pending[executor.submit(run_many, chunk)] = len(chunk)
                    in_flight += len(chunk)
                else:
                    task = next(queue, None)
                    if task is None:
                        more = False
                        break
                    pending[executor.submit(run_one, *task)] = 1
                    in_flight += 1
            if not pending:
                return
            done, _ = wait(pending, timeout=tick, return_when=FIRST_COMPLETED)
            for future in done:
                in_flight -= pending.pop(future)
                result = future.result()
                for one in (result if chunked else [result]):
                    on_result(one)
            if on_tick is not None:
                on_tick()
    finally:
        for future in pending:
            future.cancel()


def _progress(total: int, initial: int = 0, desc: str = "runs") -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, unit="run", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.05, mininterval=0.5)


# --- statistics ------------------------------------------------------------------------
def t_interval(values: np.ndarray) -> tuple[int, float, float, float, float]:
    """``(n, mean, sd, low, high)``: a 95% Student-t interval for the mean of ``values``.

    Non-finite values are dropped. With fewer than two values the spread and the
    interval are NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n == 1:
        return 1, mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return n, mean, sd, mean - half, mean + half


def comparison_table(runs: pd.DataFrame, scenarios: list[str],
                     metrics: list[str]) -> pd.DataFrame:
    """Per scenario and metric: mean, spread, 95% intervals, paired difference.

    Args:
        runs: one row per run with ``scenario``, ``replicate``, ``seed`` and the metrics.
        scenarios: scenario names; the first is the reference for paired differences.
        metrics: the metric columns to summarise.

    Returns:
        One row per (scenario, metric) with the columns in :data:`COMPARISON_COLUMNS`.
    """
    reference = scenarios[0]
    ref = runs[runs["scenario"] == reference].set_index("replicate").sort_index()
    rows = []
    for sc in scenarios:
        sub = runs[runs["scenario"] == sc].set_index("replicate").sort_index()
        if sc != reference and not sub["seed"].equals(ref["seed"]):
            raise RuntimeError("paired comparison needs the same seeds in every scenario")
        for m in metrics:
            x = sub[m].to_numpy(dtype=float)
            n, mean, sd, lo, hi = t_interval(x)
            finite = x[np.isfinite(x)]
            p_lo, p_hi = ((float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))
                          if len(finite) else (math.nan, math.nan))
            if sc == reference:
                dn, dmean, dsd, dlo, dhi, likely = 0, math.nan, math.nan, math.nan, math.nan, False
            else:
                diff = sub[m].to_numpy(dtype=float) - ref[m].to_numpy(dtype=float)
                dn, dmean, dsd, dlo, dhi = t_interval(diff)
                likely = bool(dn >= 2 and (dlo > 0 or dhi < 0))
            rows.append({"scenario": sc, "metric": m, "n": n, "mean": mean, "sd": sd,
                         "ci_low": lo, "ci_high": hi, "p2_5": p_lo, "p97_5": p_hi,
                         "reference": reference, "diff_n": dn, "diff_mean": dmean,
                         "diff_sd": dsd, "diff_ci_low": dlo, "diff_ci_high": dhi,
                         "likely": likely})
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


# --- compare -------------------------------------------------------------------------
def _series_label(var: str) -> tuple[str, str]:
    from model.outputs import TIMESERIES

    if var == EXPLOITED_ALL:
        return "Children exploited or re-exploited", "children"
    entry = TIMESERIES.get(var, (var, ""))
    return entry[0], entry[1]  # (label, unit, ...): only the first two are needed here


def compare(scenarios: list[str], replicates: int, seed: int, jobs: int | None,
            out: str | Path | None, months: int | None = None,
            overrides: dict[str, Any] | None = None) -> Path:
    """Run scenarios on common seeds, write tidy results and plots, print a table.

    Replicate ``i`` of every scenario uses seed ``seed + i``; differences from the first
    scenario are paired on those seeds.

    Args:
        scenarios: scenario names or files; the first is the reference.
        replicates: runs per scenario.
        seed: first seed.
        jobs: worker processes (None: one per core; 1: serial in this process).
        out: output folder (must be new or empty; None: a new folder under results/).
        months: horizon override for every scenario.
        overrides: parameter overrides applied to every scenario (validated).

    Returns:
        The output folder, holding runs.csv, comparison.csv, timeseries.parquet,
        series.png, differences.png and manifest.json.
    """
    from . import plots
    from .cli import DISCLAIMER, format_value, print_table

    if not scenarios:
        raise UserError("compare: name at least one scenario (see 'reintegration scenarios')")
    if replicates < 1:
        raise UserError(f"--replicates {replicates}: need at least 1 (20 or more to separate "
                        "scenarios)")
    _check_jobs(jobs)
    loaded = [load_scenario(s) for s in scenarios]
    names = [s.name for s in loaded]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"compare: scenario {name!r} is named twice; name each scenario "
                            "once (give differently named files to compare variants)")
    changes = dict(overrides or {})
    if months is not None:
        changes["months"] = months
    params: dict[str, Params] = {}
    for sc in loaded:
        try:
            params[sc.name] = sc.params.replace(**changes)
        except ParameterError as exc:
            raise ParameterError(f"{sc.name}: {exc}") from None
    out_dir = new_output_dir("compare", out)
    seeds = [seed + i for i in range(replicates)]
    hashes = {name: param_hash(p) for name, p in params.items()}
    param_dicts = {name: p.to_dict() for name, p in params.items()}

    def tasks() -> Iterator[tuple[int, dict[str, Any], int, bool]]:
        for si, name in enumerate(names):
            for r, s in enumerate(seeds):
                yield si * replicates + r, param_dicts[name], s, True

    results: dict[int, tuple] = {}
    started = time.perf_counter()
    with open_executor(jobs) as (executor, described, window):
        with _progress(len(names) * replicates, desc="compare") as bar:
            def keep(result: tuple) -> None:
                results[result[0]] = result
                bar.update(1)

            _drive(executor, tasks(), window, keep, total=len(names) * replicates)
    elapsed = time.perf_counter() - started

    rows, frames = [], []
    for run_id in sorted(results):
        _, summary, ts = results[run_id]
        si, r = divmod(run_id, replicates)
        name = names[si]
        meta = {"run_id": run_id, "scenario": name, "replicate": r, "seed": seeds[r]}
        rows.append({**meta, "param_hash": hashes[name], **param_dicts[name],
                     **{k: float(v) for k, v in summary.items()}})
        frames.append(ts.assign(**meta))
    runs = pd.DataFrame(rows)
    metrics = list(results[0][1])
    table = comparison_table(runs, names, metrics)
    wide = pd.concat(frames, ignore_index=True)
    ts_vars = [c for c in wide.columns if c not in ("run_id", "scenario", "replicate", "seed",
                                                    "month")]
    long = wide.melt(id_vars=["run_id", "scenario", "replicate", "seed", "month"],
                     value_vars=ts_vars, var_name="variable", value_name="value")
    long["value"] = long["value"].astype(float)
    long = long.sort_values(["run_id", "variable", "month"], kind="stable",
                            ignore_index=True)

    runs.to_csv(out_dir / "runs.csv", index=False)
    table.to_csv(out_dir / "comparison.csv", index=False)
    long.to_parquet(out_dir / "timeseries.parquet", index=False)

    # Plots: mean and 2.5-97.5 percentile band across replicates, month by month.
    if {"n_exploited", "n_re_exploited"} <= set(wide.columns):
        wide[EXPLOITED_ALL] = wide["n_exploited"] + wide["n_re_exploited"]
    plotted = [v for v in SERIES if v in wide.columns]
    grouped = wide.groupby(["scenario", "month"])[plotted]
    band = pd.concat({"mean": grouped.mean(), "low": grouped.quantile(0.025),
                      "high": grouped.quantile(0.975)}, names=["stat"])
    band = (band.stack().rename_axis(["stat", "scenario", "month", "variable"])
            .unstack("stat").reset_index())
    funded = (wide.groupby(["scenario", "month"])["funded"].mean().rename("share").reset_index()
              if "funded" in wide.columns else None)
    caption = (f"Dots: mean paired difference from {names[0]} over {replicates} replicates "
               f"on the same seeds ({seeds[0]}-{seeds[-1]}); lines: 95% t-interval; filled dots: "
               "the interval excludes zero. " + DISCLAIMER + " Synthetic children: the model "
               "counts simulated agents, and no real child's data is used.")
    plots.monthly_bands(
        band, [(v, *_series_label(v)) for v in plotted], names, out_dir / "series.png",
        title=f"Monthly series, {replicates} replicates per scenario",
        note="Lines: mean over replicates; bands: 2.5-97.5 percentiles of single runs. "
             + DISCLAIMER, funded=funded)
    files = ["runs.csv", "comparison.csv", "timeseries.parquet", "series.png"]
    if len(names) > 1:
        key = [m for m in KEY_METRICS if m[0] in metrics]
        plots.forest(table, key, names, names[0], out_dir / "differences.png", caption)
        files.append("differences.png")
    files.append("manifest.json")
    command = ("reintegration compare " + " ".join(scenarios)
               + f" --replicates {replicates} --seed {seed}"
               + (f" --months {months}" if months is not None else "")
               + "".join(f" --set {k}={v}" for k, v in (overrides or {}).items()))
    write_json(out_dir / "manifest.json", manifest(
        command, kind="compare",
        scenarios=[{"name": s.name, "title": s.title, "file": str(s.path),
                    "overrides": s.overrides} for s in loaded],
        reference=names[0], replicates=replicates, seeds=seeds, months=months,
        overrides=overrides or {}, parameters=param_dicts, param_hashes=hashes,
        executor=described, elapsed_seconds=round(elapsed, 2), interval_method=INTERVAL_METHOD,
        comparison_columns=COMPARISON_COLUMNS, files=files))

    # The readable table: metrics as rows, scenarios as columns.
    by = table.set_index(["metric", "scenario"])
    print(f"\nComparison on common seeds: {len(names)} scenarios x {replicates} replicates "
          f"(seeds {seeds[0]}-{seeds[-1]}, {params[names[0]].months} months), {elapsed:.0f} s "
          f"on {described}")
    print("Mean over replicates (95% interval of the mean)\n")
    shown = [m for m, _, _ in KEY_METRICS if m in metrics]
    print_table([(m, *(_cell(by.loc[(m, sc)], format_value) for sc in names)) for m in shown],
                ("metric", *names))
    if len(names) > 1:
        print(f"\nPaired difference from {names[0]} (95% interval; * = excludes zero)\n")
        print_table([(m, *(_diff_cell(by.loc[(m, sc)], format_value) for sc in names[1:]))
                     for m in shown], ("metric", *names[1:]))
    print(f"\nWrote {out_dir}/: {' '.join(files)}")
    print(DISCLAIMER)
    return out_dir


def _cell(row: pd.Series, fmt: Callable[[Any], str]) -> str:
    if not np.isfinite(row["mean"]):
        return "–"
    if not np.isfinite(row["ci_low"]):
        return fmt(row["mean"])
    return f"{fmt(row['mean'])} ({fmt(row['ci_low'])}–{fmt(row['ci_high'])})"


def _diff_cell(row: pd.Series, fmt: Callable[[Any], str]) -> str:
    def signed(v: float) -> str:
        return ("+" if v > 0 else "") + fmt(float(v))

    if not np.isfinite(row["diff_mean"]):
        return "–"
    if not np.isfinite(row["diff_ci_low"]):
        return signed(row["diff_mean"])
    star = " *" if row["likely"] else ""
    # "to", not a dash: the ends are often negative.
    return (f"{signed(row['diff_mean'])} ({signed(row['diff_ci_low'])} to "
            f"{signed(row['diff_ci_high'])}){star}")


# --- sweep specs -------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec: the samples to run and how.

    Task ``t`` is replicate ``t % replicates`` of sample ``t // replicates`` and runs on
    seed ``seed + t % replicates``.
    """

    path: Path
    data: dict[str, Any]
    name: str
    description: str
    base: str
    base_params: Params
    replicates: int
    seed: int
    varied: tuple[str, ...]
    samples: tuple[dict[str, Any], ...]
    sample_hashes: tuple[str, ...]
    timeseries: bool
    flush_seconds: float

    @property
    def n_tasks(self) -> int:
        """Runs in the sweep: samples times replicates."""
        return len(self.samples) * self.replicates

    @property
    def seeds(self) -> list[int]:
        """The seed of each replicate."""
        return [self.seed + r for r in range(self.replicates)]

    def sample_params(self, sample_id: int) -> dict[str, Any]:
        """The full parameter set of one sample (already validated)."""
        return {**self.base_params.to_dict(), **self.samples[sample_id]}

    def tasks(self, skip: set[int] | frozenset[int] = frozenset()
              ) -> Iterator[tuple[int, dict[str, Any], int, bool]]:
        """``(task_id, params, seed, timeseries)`` of each task not in ``skip``, in order."""
        for sample_id in range(len(self.samples)):
            params = None
            for r in range(self.replicates):
                task_id = sample_id * self.replicates + r
                if task_id in skip:
                    continue
                params = params or self.sample_params(sample_id)
                yield task_id, params, self.seed + r, self.timeseries


def _ranges_hint(name: str) -> str:
    return ("; put sampler and samples at the top level of the file"
            if name in ("sampler", "samples") else "")


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a sweep spec; every mistake is a one-line :class:`UserError`.

    Args:
        path: the TOML file.

    Returns:
        The validated spec, with every sample's full parameter set checked.
    """
    path = Path(path)
    data = read_toml_spec(path, "sweep spec", "experiments/smoke.toml")
    check_keys(path, data, SPEC_KEYS)
    name, description, base = spec_header(path, data)
    replicates = whole(path, data, "replicates", 1, 1)
    seed = whole(path, data, "seed", 0, 0)

    # The whole table's names are checked before any of its values.
    spec_table(path, data, "params")
    fixed, base_params = spec_base_params(
        path, data, base, lists_hint="put lists of values to try under [grid]")

    grid = spec_table(path, data, "grid")
    grid_values: dict[str, list[Any]] = {}
    for k, values in grid.items():
        if k in fixed:
            raise spec_error(path, f"grid.{k}", "also fixed (in [params] or at the top level); "
                                                "vary it or fix it, not both")
        if not isinstance(values, list) or not values:
            raise spec_error(path, f"grid.{k}", f"expected a non-empty list of values, e.g. "
                                                f"{k} = [{SPECS[k].default!r}], got {values!r}")
        checked = []
        for v in values:
            if isinstance(v, list | dict):
                raise spec_error(path, f"grid.{k}", f"expected single values, got {v!r}")
            try:
                checked.append(SPECS[k].check(v))
            except ParameterError as exc:
                raise UserError(f"{path}: grid.{exc}") from None
        if len(set(checked)) < len(checked):
            raise spec_error(path, f"grid.{k}", "a value is listed twice; list each once")
        grid_values[k] = checked

    ranges = spec_table(path, data, "ranges", hint=_ranges_hint)
    bounds: dict[str, tuple[float, float]] = {}
    for k, pair in ranges.items():
        spec = SPECS[k]
        key = f"ranges.{k}"
        if k in fixed or k in grid_values:
            raise spec_error(path, key, "also given in [params] or [grid]; give it once")
        if spec.type not in (int, float):
            raise spec_error(path, key, f"{k} is not a number; list its values under [grid]")
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)):
            raise spec_error(path, key, f"expected [low, high], two numbers, got {pair!r}")
        low, high = pair
        lo, hi = spec.bounds
        if not lo <= low < high <= hi:
            problem = ("low must be below high" if low >= high else
                       f"[{low}, {high}] is outside the allowed range {lo} to {hi} "
                       f"({spec.unit})")
            plausible = f"; plausible range {list(spec.plausible)}" if spec.plausible else ""
            raise spec_error(path, key, problem + plausible)
        if spec.type is int and not (float(low).is_integer() and float(high).is_integer()):
            raise spec_error(path, key, f"{k} is a whole number; give whole-number bounds")
        bounds[k] = (low, high)

    sampler = data.get("sampler")
    if bounds:
        if sampler is None:
            sampler = "latin"
        if sampler not in SAMPLERS:
            raise spec_error(path, "sampler", f"{sampler!r} is not one of {', '.join(SAMPLERS)}")
        if "samples" not in data:
            raise spec_error(path, "samples", "missing; [ranges] needs samples = N (points "
                                              "to draw)")
        n_samples = whole(path, data, "samples", None, 1)
    elif "samples" in data or sampler is not None:
        raise spec_error(path, "samples" if "samples" in data else "sampler",
                         "only used with a [ranges] table; add one or remove this key")

    outputs = spec_table(path, data, "outputs", parameters=False)
    for k in outputs:
        if k not in OUTPUT_KEYS:
            raise spec_error(path, f"outputs.{k}", f"unknown key; allowed: "
                                                   f"{', '.join(OUTPUT_KEYS)}")
    timeseries = outputs.get("timeseries", False)
    if not isinstance(timeseries, bool):
        raise spec_error(path, "outputs.timeseries", "expected true or false")
    flush = outputs.get("flush_seconds", 5.0)
    if isinstance(flush, bool) or not isinstance(flush, int | float) or not flush > 0:
        raise spec_error(path, "outputs.flush_seconds", f"expected a positive number of "
                                                        f"seconds, got {flush!r}")

    points = [dict(zip(grid_values, combo, strict=True))
              for combo in itertools.product(*grid_values.values())]
    if bounds:
        unit = stats.qmc.LatinHypercube(d=len(bounds), rng=seed).random(n_samples)
        drawn = []
        for row in unit:
            point = {}
            for (k, (low, high)), u in zip(bounds.items(), row, strict=True):
                if SPECS[k].type is int:
                    point[k] = int(min(math.floor(low + u * (high - low + 1)), high))
                else:
                    point[k] = float(low + u * (high - low))
            drawn.append(point)
        points = [{**g, **d} for g in points for d in drawn]
    samples, hashes = [], []
    base_dict = base_params.to_dict()
    for i, point in enumerate(points):
        try:
            full = Params.from_dict({**base_dict, **point})
        except ParameterError as exc:
            raise UserError(f"{path}: sample {i} ({_describe(point)}): {exc}") from None
        samples.append(point)
        hashes.append(param_hash(full))
    return SweepSpec(path=path, data=data, name=name, description=description,
                     base=base.name, base_params=base_params, replicates=replicates, seed=seed,
                     varied=(*grid_values, *bounds), samples=tuple(samples),
                     sample_hashes=tuple(hashes), timeseries=timeseries,
                     flush_seconds=float(flush))


def _describe(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "base parameters"


# --- sweep output ------------------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through a hidden temporary file and rename: the file is whole or absent."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class PartWriter:
    """Buffers finished runs in the parent process and writes them as Parquet parts.

    A part is written when ``FLUSH_RUNS`` runs are buffered or ``flush_seconds`` have
    passed since the last write, so memory stays flat however long the sweep.
    """

    def __init__(self, spec: SweepSpec, runs_dir: Path, ts_dir: Path, first_batch: int):
        self.spec = spec
        self.runs_dir = runs_dir
        self.ts_dir = ts_dir
        self.batch = first_batch
        self.rows: list[dict[str, Any]] = []
        self.series: list[dict[str, np.ndarray]] = []
        self.last = time.monotonic()
        self._params: tuple[int, dict[str, Any]] | None = None
        self.written = 0

    def add(self, result: tuple[int, dict[str, float], pd.DataFrame | None]) -> None:
        """Buffer one finished run; write a part when the buffer is due."""
        task_id, summary, ts = result
        sample_id, r = divmod(task_id, self.spec.replicates)
        if self._params is None or self._params[0] != sample_id:
            self._params = (sample_id, self.spec.sample_params(sample_id))
        meta = {"task_id": task_id, "sample_id": sample_id, "replicate": r,
                "seed": self.spec.seed + r}
        self.rows.append({**meta, "param_hash": self.spec.sample_hashes[sample_id],
                          **self._params[1], **{k: float(v) for k, v in summary.items()}})
        if ts is not None:
            long = long_series(ts)
            n = len(long["value"])
            self.series.append({**{k: np.full(n, v) for k, v in meta.items()}, **long})
        if len(self.rows) >= FLUSH_RUNS:
            self.flush()

    def maybe_flush(self) -> None:
        """Write a part if ``flush_seconds`` have passed since the last one."""
        if self.rows and time.monotonic() - self.last >= self.spec.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered runs as one part.

        The series part is written first: the runs part, written last, is what marks
        the runs finished.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.last = time.monotonic()
        if not self.rows:
            return
        name = f"part-{self.batch:06d}-{uuid.uuid4().hex[:12]}.parquet"
        if self.series:
            ts = pa.table({k: np.concatenate([s[k] for s in self.series])
                           for k in self.series[0]})
            atomic_write(self.ts_dir / name, lambda fh: pq.write_table(ts, fh))
        runs = pa.Table.from_pylist(self.rows)
        atomic_write(self.runs_dir / name, lambda fh: pq.write_table(runs, fh))
        self.written += len(self.rows)
        self.batch += 1
        self.rows, self.series = [], []


def long_series(ts: pd.DataFrame) -> dict[str, np.ndarray]:
    """A run's monthly series (one column per variable) as long-format columns.

    Returns:
        ``month``, ``variable`` and ``value`` arrays, variable by variable, month by
        month (the order ``DataFrame.melt`` gives, without its cost).
    """
    variables = [c for c in ts.columns if c != "month"]
    months = ts["month"].to_numpy()
    return {"month": np.tile(months, len(variables)),
            "variable": np.repeat(np.array(variables, dtype=object), len(months)),
            "value": ts[variables].to_numpy(dtype=float).T.ravel()}


def _tidy_parts(runs_dir: Path, ts_dir: Path) -> None:
    """Remove temporary files and series parts whose runs part was never written."""
    for d in (runs_dir, ts_dir):
        for tmp in d.glob(".*.tmp"):
            tmp.unlink()
    for orphan in ts_dir.glob("part-*.parquet"):
        if not (runs_dir / orphan.name).exists():
            orphan.unlink()


def finished_tasks(spec: SweepSpec, runs_dir: Path) -> set[int]:
    """Task ids already on disk, checked against the parameters the spec gives now."""
    import pyarrow.parquet as pq

    done: set[int] = set()
    for part in sorted(runs_dir.glob("part-*.parquet")):
        try:
            table = pq.read_table(part, columns=["task_id", "sample_id", "param_hash"])
        except Exception as exc:  # noqa: BLE001  (any unreadable part is reported the same way)
            raise UserError(f"{part}: damaged result part ({type(exc).__name__}); delete it and "
                            "rerun with --resume (its runs are run again)") from None
        for task_id, sample_id, h in zip(*(table.column(c).to_pylist() for c in
                                           ("task_id", "sample_id", "param_hash")), strict=True):
            if task_id >= spec.n_tasks or spec.sample_hashes[sample_id] != h:
                raise UserError(f"{part}: finished run {task_id} has parameters the spec no "
                                "longer gives (the base scenario or the model's parameters "
                                "changed); start a new sweep in a new --out folder")
            done.add(task_id)
    return done


def combine_parts(runs_dir: Path) -> pd.DataFrame:
    """All finished runs, one row per task, sorted by task id."""
    parts = sorted(runs_dir.glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame()
    frames = [pd.read_parquet(p) for p in parts]
    return (pd.concat(frames, ignore_index=True)
            .drop_duplicates("task_id")
            .sort_values("task_id", kind="stable")
            .reset_index(drop=True))


def sweep(spec: Path, jobs: int | None, out: str | Path | None, resume: bool,
          scheduler: str | None, *, executor: Executor | None = None,
          window: int | None = None) -> Path:
    """Run a sweep spec, streaming results to disk; resumable after any interruption.

    Args:
        spec: the sweep spec (TOML; see this module's docstring).
        jobs: worker processes for the local pool (None: one per core; 1: serial).
        out: output folder; must be new or empty unless ``resume``.
        resume: finish the interrupted sweep in ``out``: skip finished runs, run the rest.
        scheduler: Dask scheduler address (else ``DASK_SCHEDULER_ADDRESS``, else local).
        executor: run on this :class:`concurrent.futures.Executor` instead (not shut
            down here); ``jobs`` and ``scheduler`` are then ignored.
        window: tasks kept in flight (default: four per worker).

    Returns:
        The output folder, holding results.parquet, runs.csv, samples.csv, spec.toml,
        manifest.json and parts/ (parts/timeseries/ holds the monthly series when asked).
    """
    sp = load_spec(Path(spec))
    _check_output(sp, out, resume)
    command = (f"reintegration sweep {sp.path}" + (f" --out {out}" if out is not None else "")
               + (" --resume" if resume else ""))
    # Connect first (a wrong --scheduler fails here), then create the folder.
    with executor_for(executor, jobs, scheduler) as (ex, described, default_window):
        out_dir = Path(out) if resume else new_output_dir(f"sweep-{sp.name}", out)
        if not resume:
            atomic_write(out_dir / "spec.toml", lambda fh: fh.write(sp.path.read_bytes()))
        runs_dir, ts_dir = prepare_parts(out_dir)
        done = finished_tasks(sp, runs_dir)
        samples = pd.DataFrame([{"sample_id": i, "param_hash": h, **s} for i, (s, h) in
                                enumerate(zip(sp.samples, sp.sample_hashes, strict=True))])
        atomic_write(out_dir / "samples.csv",
                      lambda fh: fh.write(samples.to_csv(index=False).encode()))
        info = _sweep_info(sp, out_dir, resume)
        write_json(out_dir / "manifest.json", manifest(command, **info, status="running",
                                                       executor=described))

        elapsed = run_tasks(sp, ex, window or default_window, runs_dir, ts_dir, done, sp.name)

    results = collect_results(sp, runs_dir, "sweep")
    atomic_write(out_dir / "results.parquet", lambda fh: results.to_parquet(fh, index=False))
    atomic_write(out_dir / "runs.csv",
                  lambda fh: fh.write(results.to_csv(index=False).encode()))
    files = ["results.parquet", "runs.csv", "samples.csv", "spec.toml", "manifest.json",
             "parts/"]
    series = ("parts/timeseries/ (long format: task_id, sample_id, replicate, seed, month, "
              "variable, value); read with pandas.read_parquet(that folder)")
    write_json(out_dir / "manifest.json", manifest(
        command, **info, status="complete", executor=described,
        runs_this_time=sp.n_tasks - len(done), elapsed_seconds=round(elapsed, 2), files=files,
        timeseries=series if sp.timeseries else None))
    _print_sweep(sp, results, out_dir, files, len(done), elapsed, described)
    return out_dir


def _check_output(sp: SweepSpec, out: str | Path | None, resume: bool) -> None:
    """Refuse an output folder that would be overwritten, or a resume that cannot be."""
    if not resume:
        if out is not None and (Path(out) / "spec.toml").exists():
            raise UserError(f"--out {out}: holds a sweep already; add --resume to finish it, "
                            "or choose a new folder (results are never overwritten)")
        if out is not None and Path(out).is_dir() and any(Path(out).iterdir()):
            raise UserError(f"--out {out}: folder already holds results; choose a new folder "
                            "(results are never overwritten)")
        return
    if out is None:
        raise UserError("--resume needs --out FOLDER: the folder of the sweep to finish")
    saved = Path(out) / "spec.toml"
    if not saved.is_file():
        raise UserError(f"--out {out}: no sweep to resume here (no spec.toml); run without "
                        "--resume to start one")
    before = tomllib.loads(saved.read_text())
    if before != sp.data:
        keys = sorted(k for k in set(before) | set(sp.data) if before.get(k) != sp.data.get(k))
        raise UserError(f"{sp.path}: differs from the spec of the sweep in {out} (changed: "
                        f"{', '.join(keys)}); resume with the same spec, or start a new sweep "
                        "in a new --out folder")


def _sweep_info(sp: SweepSpec, out_dir: Path, resume: bool) -> dict[str, Any]:
    """The sweep's part of manifest.json (with the history of earlier attempts)."""
    from .manifest import git_commit

    history: list[dict[str, Any]] = []
    previous = out_dir / "manifest.json"
    if resume and previous.exists():
        try:
            old = json.loads(previous.read_text())
        except ValueError:
            old = {}
        history = [*old.get("history", []),
                   {k: old.get(k) for k in ("command", "created", "git_commit", "status")}]
        if old.get("git_commit") not in (None, git_commit()):
            print(f"warning: the code changed since this sweep started (commit "
                  f"{old.get('git_commit')} -> {git_commit()}); runs already finished are "
                  "kept as they are", file=sys.stderr)
    return {"kind": "sweep", "spec": sp.data, "spec_file": str(sp.path), "name": sp.name,
            "description": sp.description, "base": sp.base, "replicates": sp.replicates,
            "seeds": sp.seeds, "varied": list(sp.varied), "n_samples": len(sp.samples),
            "n_tasks": sp.n_tasks, "base_parameters": sp.base_params.to_dict(),
            "task_ids": "task_id = sample_id * replicates + replicate; seed = seed + replicate",
            "history": history}


def _print_sweep(sp: SweepSpec, results: pd.DataFrame, out_dir: Path, files: list[str],
                 n_done_before: int, elapsed: float, described: str) -> None:
    from .cli import DISCLAIMER, format_value, print_table

    print(f"\nSweep {sp.name}: {sp.n_tasks} runs ({len(sp.samples)} samples x "
          f"{sp.replicates} replicates; {sp.n_tasks - n_done_before} run now, "
          f"{n_done_before} already done) in {elapsed:.1f} s on {described}")
    shown = [m for m in ("stable_reintegration_rate", "premature_exits", "unmet_need_share",
                         "re_exploitation_per_100_child_years") if m in results.columns]
    if len(sp.samples) <= 30 and shown:
        means = results.groupby("sample_id")[shown].mean()
        print("Mean over replicates, by sample\n")
        print_table([(str(i), *(format_value(sp.samples[i][k]) for k in sp.varied),
                      *(format_value(float(means.at[i, m])) for m in shown))
                     for i in means.index], ("sample", *sp.varied, *shown))
    print(f"\nWrote {out_dir}/: {' '.join(files)}")
    print(DISCLAIMER)


def prepare_parts(out_dir: Path) -> tuple[Path, Path]:
    """Create ``parts/runs`` and ``parts/timeseries`` under ``out_dir``; drop half-written parts.

    Returns:
        The runs and time-series part folders.
    """
    runs_dir = out_dir / "parts" / "runs"
    ts_dir = out_dir / "parts" / "timeseries"
    runs_dir.mkdir(parents=True, exist_ok=True)
    ts_dir.mkdir(parents=True, exist_ok=True)
    _tidy_parts(runs_dir, ts_dir)
    return runs_dir, ts_dir


def run_tasks(spec: SweepSpec, executor: Executor, window: int, runs_dir: Path, ts_dir: Path,
              done: set[int], desc: str) -> float:
    """Run the spec's unfinished tasks, streaming them to Parquet parts with a progress bar.

    Returns:
        The wall time in seconds.
    """
    writer = PartWriter(spec, runs_dir, ts_dir,
                        first_batch=len(list(runs_dir.glob("part-*.parquet"))))
    started = time.perf_counter()
    bar = _progress(spec.n_tasks, len(done), desc=desc)
    try:
        def keep(result: tuple) -> None:
            writer.add(result)
            bar.update(1)

        _drive(executor, spec.tasks(done), window, keep, total=spec.n_tasks - len(done),
               on_tick=writer.maybe_flush, tick=min(1.0, spec.flush_seconds))
    finally:
        writer.flush()
        bar.close()
    return time.perf_counter() - started


def collect_results(spec: SweepSpec, runs_dir: Path, what: str) -> pd.DataFrame:
    """All finished runs from the parts, sorted by task id; every task must be there."""
    results = combine_parts(runs_dir)
    if len(results) != spec.n_tasks:
        raise RuntimeError(f"{what} finished with {len(results)} of {spec.n_tasks} runs on disk")
    return results


@contextmanager
def executor_for(executor: Executor | None, jobs: int | None, scheduler: str | None
                 ) -> Iterator[tuple[Executor, str, int]]:
    """The given executor (not shut down here), or one opened by :func:`open_executor`."""
    if executor is not None:
        yield executor, f"given executor ({type(executor).__name__})", 4 * (os.cpu_count() or 1)
        return
    with open_executor(jobs, scheduler) as opened:
        yield opened
