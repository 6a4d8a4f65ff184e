"""Performance benchmark: our model beside Mesa's ``VirusOnNetwork`` example, in one process.

Run with ``python -m experiments.bench`` (``make bench``). It measures:

* **Our model**: a 1,000-child, 120-month run with every output collected
  (``ReintegrationModel(...)``, ``model.run()``, then ``summary()``, ``timeseries()``,
  ``children_table()`` and ``events()``): its wall time (construction + run + outputs)
  and time per agent-month and per child-month. Agents are all Mesa agents in the
  model (``model.agents``: children + families + leaders + professionals, including
  professionals who have left, who stay registered). Agent-months are counted exactly:
  the sum over months of ``len(model.agents)`` at the end of each month, taken from an
  untimed counting run with the same seed (runs are deterministic given the seed).
* **Construction** of a model with 10,000 children and, with ``--large``, 100,000
  children; with ``--large`` also a full 100,000-child run (time per agent-month compared
  with 1,000 children) and its peak memory (``ru_maxrss`` of a fresh subprocess).
* **Mesa's VirusOnNetwork** with as many nodes as our mean number of agents over the run,
  stepped 120 times with its own DataCollector: time per agent-step. The stock model is
  built once (its construction, dominated by networkx's ``spring_layout`` for display,
  is reported but not used in the comparison); each repeat restores the initial agent
  states, random states and a fresh DataCollector, so every repeat steps the same path.
* **Sweeps** (``--sweeps N``, default 60; 0 skips them): the same sweep of 1,000-child runs
  serially, on a 2-worker process pool and on two Dask clusters (``LocalCluster``) of 2 workers
  (Dask's default configuration, and with the workers' statistical profiler off, as
  ``docs/guide.md`` recommends). Each executor is started, warmed up, timed and shut down
  on its own, in alternation, keeping its best of two rounds; results must be identical.
  From the pool's throughput: a Sobol estimate (8 parameters, N = 256, 4,608 runs); from
  the serial sweep's parts: bytes on disk per run-month.

Small runs take the best of ``--repeats`` (default 3) ``time.perf_counter`` timings; our
runs and Mesa's stepping alternate, so that both see the same load on the machine. CPU
times (``time.process_time``) are recorded too: they are less disturbed by other work on
the machine, which the wall times (and the targets, which use them) are not protected from.
Results go to the terminal as a table with PASS/FAIL per target and to
``results/bench.json``. Targets are reported, not enforced: the exit code is 0 unless
something raises, or ``--strict`` is given and a current target fails (``--strict-later``
also enforces the later, stricter targets).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

try:
    import resource
except ImportError:  # not on Windows
    resource = None

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "results" / "bench.json"
GIB = 1024**3


# --- helpers -----------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """Describe the machine and the software versions the figures were measured with.

    Returns:
        A JSON-serialisable dict: platform, CPU model, logical and usable cores, memory,
        Python, numpy, Mesa, networkx and pandas versions, ``OPENBLAS_CORETYPE`` and the
        load average when measured (other work on the machine inflates the timings).
    """
    import mesa
    import networkx
    import pandas

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(mem / GIB, 1) if mem else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mesa": mesa.__version__,
        "networkx": networkx.__version__,
        "pandas": pandas.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _collect_outputs(model) -> None:
    """Build every output of a finished run (what ``model.run.run`` returns)."""
    model.summary()
    model.timeseries()
    model.children_table()
    model.events()


def _step_counting(model, months: int) -> tuple[int, list[int], list[int]]:
    """Step ``model`` month by month (what ``model.run()`` does), counting agents.

    Returns:
        Agents at the start, and agents and children at the end of every month.
    """
    start = len(model.agents)
    agents, children = [], []
    for _ in range(months):
        model.step()
        agents.append(len(model.agents))
        children.append(len(model.children))
    return start, agents, children


def count_agent_months(n_children: int, months: int, seed: int) -> dict[str, Any]:
    """Count agents and agent-months of a run by stepping it once, untimed.

    This run also warms up imports and caches before the timed runs.

    Args:
        n_children: initial children.
        months: months to run.
        seed: the run seed.

    Returns:
        Agents at the start and end, by type at the end, the mean over months, and
        agent-months and child-months (sums over months of the counts at month end).
    """
    from model.reintegration import ReintegrationModel

    model = ReintegrationModel(rng=seed, n_children=n_children, months=months)
    start, agents, children = _step_counting(model, months)
    _collect_outputs(model)
    by_type = {cls.__name__: len(s) for cls, s in model.agents_by_type.items()}
    return {
        "agents_start": start,
        "agents_end": agents[-1] if agents else start,
        "agents_end_by_type": by_type,
        "agents_mean": float(np.mean(agents)) if agents else float(start),
        "children_end": children[-1] if children else n_children,
        "agent_months": int(sum(agents)),
        "child_months": int(sum(children)),
    }


def _clocks() -> tuple[float, float]:
    """Wall-clock and process CPU time now (``perf_counter``, ``process_time``)."""
    return time.perf_counter(), time.process_time()


def time_our_run_once(n_children: int, months: int, seed: int) -> dict[str, float]:
    """Time one full run of our model: construction, ``model.run()`` and all outputs.

    Args:
        n_children: initial children.
        months: months to run.
        seed: the run seed.

    Returns:
        Wall seconds of each phase and the total (``*_s``), and CPU seconds of the run
        and the total (``*_cpu_s``).
    """
    from model.reintegration import ReintegrationModel

    gc.collect()
    w0, c0 = _clocks()
    model = ReintegrationModel(rng=seed, n_children=n_children, months=months)
    w1, c1 = _clocks()
    model.run()
    w2, c2 = _clocks()
    _collect_outputs(model)
    w3, c3 = _clocks()
    return {"construct_s": w1 - w0, "run_s": w2 - w1, "outputs_s": w3 - w2, "total_s": w3 - w0,
            "run_cpu_s": c2 - c1, "total_cpu_s": c3 - c0}


def time_construction(n_children: int, seed: int, repeats: int) -> dict[str, Any]:
    """Time building a model (network, agents, initial staff).

    Args:
        n_children: initial children.
        seed: the run seed.
        repeats: timed repeats; the best is kept.

    Returns:
        The best time in seconds, every repeat, and the number of agents built.
    """
    from model.reintegration import ReintegrationModel

    times, agents = [], 0
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        model = ReintegrationModel(rng=seed, n_children=n_children)
        times.append(time.perf_counter() - t0)
        agents = len(model.agents)
        del model
    return {"n_children": n_children, "best_s": min(times), "repeats_s": times, "agents": agents}


class VirusBench:
    """Mesa's stock ``VirusOnNetwork`` example, built once and stepped repeatedly.

    The model is built with its default parameters apart from ``num_nodes`` and
    ``avg_node_degree``. Before each timed repeat the initial agent states, both random
    generators and a fresh DataCollector (with its initial collection) are restored, so
    every repeat replays the same trajectory.

    Args:
        n_nodes: network nodes (one agent each).
        degree: ``avg_node_degree``.
        steps: steps per repeat.
        seed: seed for the model and for networkx's (global-random) graph generator.
        layout: build the stock model as is (True), or with its ``Network`` space given
            ``layout=None`` (False): this skips networkx's ``spring_layout``, which only
            gives cells display positions; stepping uses network neighbourhoods only and
            is unchanged, so only the construction time differs.
    """

    def __init__(self, n_nodes: int, degree: float, steps: int, seed: int,
                 layout: bool = True) -> None:
        import functools

        from mesa.examples.basic.virus_on_network import model as virus_module

        self.n_nodes, self.degree, self.steps, self.layout = n_nodes, degree, steps, layout
        random.seed(seed)  # nx.erdos_renyi_graph in the example uses the global random
        stock_network = virus_module.Network
        if not layout:
            virus_module.Network = functools.partial(stock_network, layout=None)
        try:
            gc.collect()
            t0 = time.perf_counter()
            self.model = virus_module.VirusOnNetwork(num_nodes=n_nodes, avg_node_degree=degree,
                                                     rng=seed)
            self.construct_s = time.perf_counter() - t0
        finally:
            virus_module.Network = stock_network
        m = self.model
        self._initial = [(a, a.state) for a in m.agents]
        self._py_state = m.random.getstate()
        self._np_state = m.rng.bit_generator.state
        self._reporters = dict(m.datacollector.model_reporters)
        self.rows: list[dict[str, float]] = []

    def time_once(self) -> dict[str, float]:
        """Restore the initial state and time ``steps`` steps.

        Returns:
            Wall and CPU seconds of the steps (also kept in ``rows``).
        """
        import mesa

        m = self.model
        for agent, state in self._initial:
            agent.state = state
        m.random.setstate(self._py_state)
        m.rng.bit_generator.state = self._np_state
        m.datacollector = mesa.DataCollector(model_reporters=self._reporters)
        m.datacollector.collect(m)
        gc.collect()
        w0, c0 = _clocks()
        for _ in range(self.steps):
            m.step()
        w1, c1 = _clocks()
        row = {"step_s": w1 - w0, "step_cpu_s": c1 - c0}
        self.rows.append(row)
        return row

    def result(self) -> dict[str, Any]:
        """Best stepping times, per agent-step, and the final epidemic state."""
        m = self.model
        final = m.datacollector.get_model_vars_dataframe().iloc[-1]
        agents = len(m.agents)
        best = min(r["step_s"] for r in self.rows)
        best_cpu = min(r["step_cpu_s"] for r in self.rows)
        return {
            "num_nodes": self.n_nodes, "agents": agents, "avg_node_degree": self.degree,
            "layout": self.layout, "edges": m.grid.G.number_of_edges(), "steps": self.steps,
            "construct_s": self.construct_s, "step_best_s": best, "step_best_cpu_s": best_cpu,
            "repeats": self.rows,
            "per_agent_step_s": best / (agents * self.steps),
            "per_agent_step_cpu_s": best_cpu / (agents * self.steps),
            "final_infected": int(final["Infected"]),
            "final_susceptible": int(final["Susceptible"]),
            "final_resistant": int(final["Resistant"]),
        }


def time_side_by_side(n_children: int, months: int, seed: int, virus: VirusBench,
                      repeats: int) -> dict[str, Any]:
    """Time our run and Mesa's stepping alternately, so both see the same machine load.

    Args:
        n_children: initial children in our run.
        months: months of our run.
        seed: our run seed.
        virus: the built Mesa benchmark model.
        repeats: repeats of each; the best of each phase is kept.

    Returns:
        Our best timings per phase and every repeat (Mesa's are kept in ``virus``).
    """
    rows = []
    for _ in range(repeats):
        rows.append(time_our_run_once(n_children, months, seed))
        virus.time_once()
    best = {k: min(r[k] for r in rows) for k in rows[0]}
    return {**best, "repeats": rows}


# --- the large run, in a fresh process (for its peak memory) -----------------------------
def large_worker(n_children: int, months: int, seed: int) -> dict[str, Any]:
    """Build and run one large model with all outputs; report times, counts and memory.

    Meant to run in a fresh subprocess (``--_worker``) so that ``ru_maxrss`` is the peak
    resident memory of this run alone (including the interpreter and libraries). The run
    steps the model month by month (exactly what ``model.run()`` does) to count agents.

    Args:
        n_children: initial children.
        months: months to run.
        seed: the run seed.

    Returns:
        Construction, run, output and total seconds, agent-months, child-months and
        peak resident memory in bytes.
    """
    from model.reintegration import ReintegrationModel

    t0 = time.perf_counter()
    model = ReintegrationModel(rng=seed, n_children=n_children, months=months)
    t1 = time.perf_counter()
    start, agents, children = _step_counting(model, months)
    t2 = time.perf_counter()
    _collect_outputs(model)
    t3 = time.perf_counter()
    rss_bytes = None
    if resource is not None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_bytes = int(rss if sys.platform == "darwin" else rss * 1024)  # Linux: KiB
    return {
        "n_children": n_children, "months": months, "seed": seed,
        "construct_s": t1 - t0, "run_s": t2 - t1, "outputs_s": t3 - t2, "total_s": t3 - t0,
        "agents_start": start, "agents_end": agents[-1] if agents else start,
        "agent_months": int(sum(agents)), "child_months": int(sum(children)),
        "peak_rss_bytes": rss_bytes,
    }


def run_large(n_children: int, months: int, seed: int) -> dict[str, Any]:
    """Run :func:`large_worker` in a fresh Python process and return its result.

    Args:
        n_children: initial children.
        months: months to run.
        seed: the run seed.

    Returns:
        The worker's result dict.
    """
    cmd = [sys.executable, "-m", "experiments.bench", "--_worker",
           json.dumps({"n_children": n_children, "months": months, "seed": seed})]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"large run failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- targets and the report ---------------------------------------------------------------
SWEEP_SPEC = """
name = "bench"
description = "Benchmark sweep: 1,000-child runs, monthly series kept."
base = "baseline"
replicates = {replicates}
seed = 1
[params]
n_children = {children}
months = {months}
[grid]
funding_scheme = ["short_cycles", "rolling"]
[outputs]
timeseries = true
"""


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def time_sweeps(runs: int, children: int, months: int, dask: bool = True,
                rounds: int = 2) -> dict[str, Any]:
    """Throughput of the same sweep serially, on a 2-worker pool and on a Dask LocalCluster.

    Each executor is started and warmed up before the clock starts, so start-up costs are
    not counted; all sweeps must give identical results.

    Args:
        runs: runs in the sweep (rounded to an even number).
        children: children per run.
        months: months per run.
        dask: also time a ``distributed.LocalCluster`` with 2 worker processes.
        rounds: timings of each executor, taken in alternation; the best is kept.

    Returns:
        Seconds and runs per second for each executor, speed-ups, the sweep's size on
        disk per run-month, and whether the results were identical.
    """
    import multiprocessing
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    import pandas as pd

    from model.parameters import Params

    from .runner import SerialExecutor, run_one, sweep

    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    spec = tmp / "bench.toml"
    spec.write_text(SWEEP_SPEC.format(replicates=max(1, runs // 2), children=children,
                                      months=months))
    n_runs = 2 * max(1, runs // 2)
    warm = {"n_children": children, "months": 12}
    out: dict[str, Any] = {"runs": n_runs, "children": children, "months": months}
    results = {}

    def warm_up(executor, workers: int) -> None:
        # Start every worker and import what a sweep task needs.
        warm_params = Params.from_dict(warm).to_dict()
        list(executor.map(run_one, range(4 * workers), [warm_params] * (4 * workers),
                          range(4 * workers), [True] * (4 * workers)))

    def timed(name: str, executor, attempt: int) -> None:
        t0 = time.perf_counter()
        folder = sweep(spec, jobs=None, out=tmp / f"{name}-{attempt}", resume=False,
                       scheduler=None, executor=executor)
        elapsed = time.perf_counter() - t0
        best = out.get(name)
        if best is None or elapsed < best["seconds"]:
            out[name] = {"seconds": elapsed, "runs_per_second": n_runs / elapsed}
        results[name] = pd.read_csv(folder / "runs.csv")
        if name == "serial":
            out["bytes_per_run_month"] = _dir_bytes(folder / "parts") / (n_runs * months)

    # The executors are timed in alternation, `rounds` times each, keeping each one's best,
    # so that a slow spell of a shared machine does not fall on one executor only. Each is
    # started, warmed up, timed and shut down on its own: idle workers of another
    # executor (Dask's heartbeats and profiler wake-ups) would otherwise take CPU from the
    # one being timed on a 2-core machine.
    ctx = multiprocessing.get_context("spawn")

    @contextlib.contextmanager
    def dask_cluster(profile: bool):
        import dask as dask_config
        from distributed import Client, LocalCluster

        with dask_config.config.set({"distributed.worker.profile.enabled": profile}):
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        with cluster, Client(cluster) as client:
            yield client.get_executor(pure=False)

    openers = {"serial": lambda: contextlib.nullcontext(SerialExecutor()),
               "pool2": lambda: ProcessPoolExecutor(max_workers=2, mp_context=ctx)}
    if dask:
        # Dask's default configuration, and the one docs/guide.md recommends (workers'
        # statistical profiler off: it samples every worker thread's stack every 10 ms,
        # and the GIL hand-overs slow runs of Python and small numpy calls by about 8%).
        openers["dask2_default"] = lambda: dask_cluster(True)
        openers["dask2"] = lambda: dask_cluster(False)
    for attempt in range(rounds):
        for name, opener in openers.items():
            with opener() as executor:
                warm_up(executor, 1 if name == "serial" else 2)
                timed(name, executor, attempt)
    out["rounds"] = rounds
    base = results["serial"].drop(columns=[c for c in ("elapsed_s",) if c in results["serial"]])
    out["identical"] = all(base.equals(r.drop(columns=[c for c in ("elapsed_s",) if c in r]))
                           for r in results.values())
    out["speedup_pool2"] = out["pool2"]["runs_per_second"] / out["serial"]["runs_per_second"]
    if dask:
        out["dask_vs_pool"] = out["dask2"]["runs_per_second"] / out["pool2"]["runs_per_second"]
        out["dask_default_vs_pool"] = (out["dask2_default"]["runs_per_second"]
                                       / out["pool2"]["runs_per_second"])
    # A Sobol analysis of 8 parameters with N = 256: N (2k + 2) = 4,608 runs.
    out["sobol_8x256_runs"] = 256 * (2 * 8 + 2)
    out["sobol_8x256_estimated_minutes"] = (out["sobol_8x256_runs"]
                                            / out["pool2"]["runs_per_second"] / 60)
    return out


def _target(name: str, value: float, op: str, limit: float, unit: str,
            later: bool = False) -> dict[str, Any]:
    ok = {"<": value < limit, "<=": value <= limit, ">=": value >= limit}[op]
    return {"name": name, "value": value, "op": op, "limit": limit, "unit": unit,
            "later": later, "pass": bool(ok)}


def _fmt(value: float, unit: str) -> str:
    if unit in ("KiB", "min"):
        return f"{value:.2f} {unit}"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "us":
        return f"{value:.3f} us"
    if unit == "GiB":
        return f"{value:.2f} GiB"
    return f"{value:.3f}"


def print_report(res: dict[str, Any]) -> None:
    """Print the measured figures and the targets as readable tables.

    Args:
        res: the result dict written to ``results/bench.json``.
    """
    m, ours, cnt, virus = res["machine"], res["ours"], res["ours"]["counts"], res["mesa"]
    cfg = res["config"]
    print(f"Benchmark {res['date']}  ({m['cpu']}, {m['usable_cores']} usable of "
          f"{m['logical_cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
          f"Mesa {m['mesa']}, numpy {m['numpy']})")
    load = m.get("load_average_1_5_15")
    print(f"Best of {res['config']['repeats']} repeats (time.perf_counter); seed "
          f"{res['config']['seed']}; load average at start "
          f"{', '.join(f'{x:.2f}' for x in load) if load else 'n/a'}.")
    if load and m["usable_cores"] and load[0] > m["usable_cores"]:
        print("WARNING: the machine was busy (load above the core count): wall times are "
              "inflated; compare the CPU-time figures.")
    print()
    types = ", ".join(f"{k} {v}" for k, v in cnt["agents_end_by_type"].items())
    rows = [
        (f"Our model: {cfg['children']:,} children, {cfg['months']} months, all outputs", ""),
        ("  agents (model.agents) start -> end", f"{cnt['agents_start']} -> {cnt['agents_end']}"),
        ("  agents at end by type", types),
        ("  mean agents over months", f"{cnt['agents_mean']:.0f}"),
        ("  agent-months / child-months", f"{cnt['agent_months']:,} / {cnt['child_months']:,}"),
        ("  construction", _fmt(ours["construct_s"], "s")),
        (f"  model.run() ({cfg['months']} steps incl. DataCollector)", _fmt(ours["run_s"], "s")),
        ("  outputs (summary, timeseries, children, events)", _fmt(ours["outputs_s"], "s")),
        ("  whole run (best total)", _fmt(ours["total_s"], "s")),
        ("  per agent-month, whole run", _fmt(ours["per_agent_month_s"] * 1e6, "us")),
        ("  per agent-month, run() only", _fmt(ours["per_agent_month_run_s"] * 1e6, "us")),
        ("  per agent-month, whole run, CPU time", _fmt(ours["per_agent_month_cpu_s"] * 1e6,
                                                         "us")),
        ("  per child-month, whole run", _fmt(ours["per_child_month_s"] * 1e6, "us")),
        (f"Mesa VirusOnNetwork: {virus['num_nodes']} nodes, avg_node_degree "
         f"{virus['avg_node_degree']:g}, {virus['steps']} steps", ""),
        ("  construction (once; " + ("mostly nx.spring_layout)" if virus["layout"]
                                     else "without layout)"), _fmt(virus["construct_s"], "s")),
        ("  stepping (incl. its DataCollector)", _fmt(virus["step_best_s"], "s")),
        ("  per agent-step", _fmt(virus["per_agent_step_s"] * 1e6, "us")),
        ("  per agent-step, CPU time", _fmt(virus["per_agent_step_cpu_s"] * 1e6, "us")),
        ("  final infected / susceptible / resistant",
         f"{virus['final_infected']} / {virus['final_susceptible']} / "
         f"{virus['final_resistant']}"),
        ("Ours/Mesa per agent-month: whole run / run() only / CPU",
         f"{res['ratio_ours_over_mesa']:.3f} / {res['ratio_ours_run_only_over_mesa']:.3f} / "
         f"{res['ratio_ours_over_mesa_cpu']:.3f}"),
        ("Construction, 10,000 children", _fmt(res["construct_10k"]["best_s"], "s")
         + f"  ({res['construct_10k']['agents']:,} agents)"),
    ]
    if res.get("large"):
        lg = res["large"]
        rows += [
            (f"Large: {lg['n_children']:,} children, {lg['months']} months (subprocess)", ""),
            ("  construction", _fmt(lg["construct_s"], "s")),
            ("  run / outputs / total", f"{lg['run_s']:.2f} s / {lg['outputs_s']:.2f} s / "
                                        f"{lg['total_s']:.2f} s"),
            ("  agents start -> end; agent-months",
             f"{lg['agents_start']:,} -> {lg['agents_end']:,}; {lg['agent_months']:,}"),
            ("  per agent-month, whole run", _fmt(lg["per_agent_month_s"] * 1e6, "us")),
            ("  per agent-month, run() only", _fmt(lg["per_agent_month_run_s"] * 1e6, "us")),
            ("  peak memory (ru_maxrss)", _fmt(lg["peak_rss_bytes"] / GIB, "GiB")
             if lg["peak_rss_bytes"] is not None else "n/a (no resource module)"),
        ]
    sw = res.get("sweeps")
    if sw:
        rows += [
            (f"Sweep of {sw['runs']} runs ({sw['children']:,} children, {sw['months']} months)", ""),
            ("  serial", f"{sw['serial']['seconds']:.1f} s ({sw['serial']['runs_per_second']:.2f} "
                         "runs/s)"),
            ("  local pool, 2 workers", f"{sw['pool2']['seconds']:.1f} s "
                                        f"({sw['pool2']['runs_per_second']:.2f} runs/s)"),
        ]
        if "dask2" in sw:
            rows.append(("  Dask LocalCluster, 2 workers, profiler off",
                         f"{sw['dask2']['seconds']:.1f} s "
                         f"({sw['dask2']['runs_per_second']:.2f} runs/s; "
                         f"{sw['dask_vs_pool']:.2f} of the pool)"))
        if "dask2_default" in sw:
            rows.append(("  Dask LocalCluster, 2 workers, default config",
                         f"{sw['dask2_default']['seconds']:.1f} s "
                         f"({sw['dask2_default']['runs_per_second']:.2f} runs/s; "
                         f"{sw['dask_default_vs_pool']:.2f} of the pool)"))
        rows += [
            ("  results identical across executors", str(sw["identical"])),
            ("  on disk per run-month (runs + series)", f"{sw['bytes_per_run_month']:.0f} bytes"),
            ("  Sobol 8 params, N=256 (4,608 runs), est.",
             f"{sw['sobol_8x256_estimated_minutes']:.1f} min on the 2-worker pool"),
        ]
    width = max(len(r[0]) for r in rows) + 2
    print("Measurements")
    print("-" * (width + 30))
    for label, value in rows:
        print(f"{label:<{width}}{value}")
    print()
    tw = max(len(t["name"]) for t in res["targets"]) + 2
    print(f"{'Target':<{tw}}{'measured':>14}  {'target':>12}  status")
    print("-" * (tw + 38))
    for t in res["targets"]:
        shown = t["value"] * 1e6 if t["unit"] == "us" else t["value"]
        limit = f"{t['op']} {_fmt(t['limit'], t['unit'])}"
        status = ("PASS" if t["pass"] else "FAIL") + (" (later)" if t["later"] else "")
        print(f"{t['name']:<{tw}}{_fmt(shown, t['unit']):>14}  {limit:>12}  {status}")
    if not res.get("large"):
        print("(100,000-child targets not measured; run with --large)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``results/bench.json``.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0, or 1 with ``--strict`` when a target fails.
    """
    ap = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true",
                    help="also build and run 100,000 children (in a subprocess; ~1 min)")
    ap.add_argument("--large-children", type=int, default=100_000, help=argparse.SUPPRESS)
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if a current target fails")
    ap.add_argument("--strict-later", action="store_true",
                    help="with --strict, also enforce the later, stricter targets")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of small runs (best kept)")
    ap.add_argument("--seed", type=int, default=1, help="run seed")
    ap.add_argument("--children", type=int, default=1000, help="children in the main run")
    ap.add_argument("--months", type=int, default=120, help="months in the main run")
    ap.add_argument("--degree", type=float, default=3.0,
                    help="VirusOnNetwork avg_node_degree (default 3, the example's default)")
    ap.add_argument("--mesa-steps", type=int, default=120,
                    help="VirusOnNetwork steps per repeat (normalised per agent-step)")
    ap.add_argument("--mesa-no-layout", action="store_true",
                    help="build VirusOnNetwork without its display layout (nx.spring_layout, "
                    "~1 min at 3,600 nodes); its stepping is unchanged")
    ap.add_argument("--sweeps", type=int, default=60, metavar="RUNS",
                    help="runs in the parallel-throughput sweeps (0 skips them)")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster sweeps")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._worker:
        print(json.dumps(large_worker(**json.loads(args._worker))))
        return 0

    res: dict[str, Any] = {
        "date": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {"repeats": args.repeats, "seed": args.seed, "children": args.children,
                   "months": args.months, "mesa_avg_node_degree": args.degree,
                   "mesa_steps": args.mesa_steps, "mesa_layout": not args.mesa_no_layout,
                   "large": args.large,
                   "agent_definition": "all Mesa agents in model.agents: children + families "
                   "+ community leaders + professionals (including those who have left)",
                   "agent_months_definition": "sum over months of len(model.agents) at the "
                   "end of each month"},
    }
    print("Counting agents (untimed warm-up run) ...", file=sys.stderr)
    counts = count_agent_months(args.children, args.months, args.seed)
    n_nodes = int(round(counts["agents_mean"]))
    print(f"Building Mesa VirusOnNetwork ({n_nodes} nodes; "
          + ("about a minute: nx.spring_layout" if not args.mesa_no_layout else "no layout")
          + ") ...", file=sys.stderr)
    virus = VirusBench(n_nodes, args.degree, args.mesa_steps, args.seed,
                       layout=not args.mesa_no_layout)
    print("Timing our model and Mesa's, alternately ...", file=sys.stderr)
    ours = time_side_by_side(args.children, args.months, args.seed, virus, args.repeats)
    ours["counts"] = counts
    am, cm = counts["agent_months"], counts["child_months"]
    ours["per_agent_month_s"] = ours["total_s"] / am
    ours["per_agent_month_run_s"] = ours["run_s"] / am
    ours["per_agent_month_cpu_s"] = ours["total_cpu_s"] / am
    ours["per_child_month_s"] = ours["total_s"] / cm
    ours["per_child_month_run_s"] = ours["run_s"] / cm
    res["ours"] = ours
    mesa_res = virus.result()
    mesa_res["nodes_from"] = "mean number of our agents over the months of the 1,000-child run"
    res["mesa"] = mesa_res
    ratio = ours["per_agent_month_s"] / mesa_res["per_agent_step_s"]
    res["ratio_ours_over_mesa"] = ratio
    res["ratio_ours_run_only_over_mesa"] = (ours["per_agent_month_run_s"]
                                            / mesa_res["per_agent_step_s"])
    res["ratio_ours_over_mesa_cpu"] = (ours["per_agent_month_cpu_s"]
                                       / mesa_res["per_agent_step_cpu_s"])
    del virus

    print("Timing construction of 10,000 children ...", file=sys.stderr)
    res["construct_10k"] = time_construction(10_000, args.seed, args.repeats)

    small, big = args.children, args.large_children
    targets = [
        _target(f"{small:,}-child run, wall time", ours["total_s"], "<", 1.0, "s"),
        _target(f"{small:,}-child run, wall time", ours["total_s"], "<", 0.3, "s",
                later=True),
        _target("construction, 10,000 children", res["construct_10k"]["best_s"], "<", 5.0, "s"),
        _target("ours/Mesa per agent-month", ratio, "<=", 0.5, "ratio"),
        _target("ours/Mesa per agent-month", ratio, "<=", 0.25, "ratio", later=True),
    ]
    res["large"] = None
    if args.large:
        print(f"Running {args.large_children:,} children in a subprocess ...", file=sys.stderr)
        lg = run_large(args.large_children, args.months, args.seed)
        lg["per_agent_month_s"] = lg["total_s"] / lg["agent_months"]
        lg["per_agent_month_run_s"] = lg["run_s"] / lg["agent_months"]
        lg["per_agent_month_ratio_vs_small"] = lg["per_agent_month_s"] / ours["per_agent_month_s"]
        lg["per_agent_month_run_ratio_vs_small"] = (lg["per_agent_month_run_s"]
                                                    / ours["per_agent_month_run_s"])
        res["large"] = lg
        targets += [
            _target(f"construction, {big:,} children", lg["construct_s"], "<", 30.0, "s"),
            _target(f"per agent-month, {big:,} vs {small:,}",
                    lg["per_agent_month_ratio_vs_small"], "<=", 1.5, "ratio"),
        ]
        if lg["peak_rss_bytes"] is not None:
            targets.append(_target(f"peak memory, {big:,} children", lg["peak_rss_bytes"] / GIB,
                                   "<", 4.0, "GiB"))
    res["sweeps"] = None
    if args.sweeps:
        print(f"Timing a {args.sweeps}-run sweep: serial, 2-worker pool"
              + ("" if args.no_dask else ", Dask LocalCluster (2 workers)") + " ...",
              file=sys.stderr)
        sw = time_sweeps(args.sweeps, args.children, args.months, dask=not args.no_dask)
        res["sweeps"] = sw
        targets += [
            _target("2 workers / 1, throughput", sw["speedup_pool2"], ">=", 1.8, "ratio",
                    later=True),
            _target("sweep output per run-month", sw["bytes_per_run_month"] / 1024, "<", 1.0,
                    "KiB", later=True),
            _target("Sobol 8 params N=256 (estimated)", sw["sobol_8x256_estimated_minutes"], "<",
                    15.0, "min", later=True),
        ]
        if "dask_vs_pool" in sw:
            targets.append(_target("Dask 2 workers (profiler off) / pool", sw["dask_vs_pool"],
                                   ">=", 0.9, "ratio", later=True))
    res["targets"] = targets

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print_report(res)
    print(f"\nWrote {args.out}")
    failed = [t for t in targets if not t["pass"] and (args.strict_later or not t["later"])]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
