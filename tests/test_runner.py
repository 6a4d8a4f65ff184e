"""Comparisons and sweeps: files, pairing, spec errors, resume after kill -9, executors.

Specs are tiny (50-80 children, 24-36 months) so the whole file runs in well under
three minutes on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.errors import UserError
from experiments.runner import COMPARISON_COLUMNS, compare, load_spec, sweep
from model.parameters import SPECS

REPO = Path(__file__).resolve().parent.parent
SMALL = {"n_children": 60}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def read_results(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "results.parquet")


def read_series(out: Path) -> pd.DataFrame:
    ts = pd.read_parquet(out / "parts" / "timeseries")
    return ts.sort_values(["task_id", "variable", "month"], ignore_index=True)


# --- compare -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    """baseline vs an identical copy vs rolling, 3 replicates on seeds 7, 8, 9."""
    tmp = tmp_path_factory.mktemp("compare")
    copy = write(tmp / "baseline_copy.toml",
                 'title = "Same as baseline"\nextends = "baseline"\n')
    return compare(["baseline", str(copy), "rolling"], replicates=3, seed=7, jobs=2,
                   out=tmp / "out", months=30, overrides=SMALL)


def test_compare_writes_documented_files(compared: Path, capsys):
    for name in ("runs.csv", "comparison.csv", "timeseries.parquet", "series.png",
                 "differences.png", "manifest.json"):
        assert (compared / name).stat().st_size > 0, name
    runs = pd.read_csv(compared / "runs.csv")
    assert list(runs.columns[:5]) == ["run_id", "scenario", "replicate", "seed", "param_hash"]
    assert set(SPECS) <= set(runs.columns)
    assert {"stable_reintegration_rate", "premature_exits", "unmet_need_share"} <= set(runs.columns)
    assert len(runs) == 9 and runs["run_id"].is_unique
    assert (runs["months"] == 30).all() and (runs["n_children"] == 60).all()

    table = pd.read_csv(compared / "comparison.csv")
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert set(table["scenario"]) == {"baseline", "baseline_copy", "rolling"}
    assert (table["reference"] == "baseline").all()
    ok = table.dropna(subset=["ci_low"])
    assert (ok["ci_low"] <= ok["mean"]).all() and (ok["mean"] <= ok["ci_high"]).all()

    ts = pd.read_parquet(compared / "timeseries.parquet")
    assert list(ts.columns) == ["run_id", "scenario", "replicate", "seed", "month", "variable",
                                "value"]
    assert ts.groupby("run_id")["month"].nunique().eq(30).all()
    assert {"n_reintegrated", "n_in_care", "mean_stigma"} <= set(ts["variable"])

    meta = json.loads((compared / "manifest.json").read_text())
    assert meta["seeds"] == [7, 8, 9] and meta["replicates"] == 3
    assert set(meta["parameters"]) == {"baseline", "baseline_copy", "rolling"}


def test_compare_uses_common_seeds_and_pairs_on_them(compared: Path):
    runs = pd.read_csv(compared / "runs.csv")
    seeds = runs.pivot(index="replicate", columns="scenario", values="seed")
    assert (seeds.to_numpy() == np.array([[7], [8], [9]])).all()
    table = pd.read_csv(compared / "comparison.csv").set_index(["scenario", "metric"])
    # An identical scenario on the same seeds gives exactly the same runs: zero difference.
    copy = table.loc["baseline_copy"]
    has = copy["diff_n"] > 0
    assert has.sum() > 10
    assert (copy.loc[has, "diff_mean"] == 0).all() and (copy.loc[has, "diff_sd"] == 0).all()
    assert not copy["likely"].any()
    # The paired difference is the mean of replicate-by-replicate differences.
    wide = runs.pivot(index="replicate", columns="scenario", values="premature_exits")
    expected = (wide["rolling"] - wide["baseline"]).mean()
    assert table.loc[("rolling", "premature_exits"), "diff_mean"] == pytest.approx(expected)
    assert table.loc[("rolling", "premature_exits"), "likely"]  # no gaps, no premature exits


def test_compare_user_errors(tmp_path):
    with pytest.raises(UserError, match="named twice"):
        compare(["baseline", "baseline"], 2, 0, 1, tmp_path / "a")
    with pytest.raises(UserError, match="--replicates"):
        compare(["baseline"], 0, 0, 1, tmp_path / "b")
    with pytest.raises(UserError, match="--jobs"):
        compare(["baseline"], 2, 0, 0, tmp_path / "c")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.csv").write_text("1")
    with pytest.raises(UserError, match="never overwritten"):
        compare(["baseline"], 1, 0, 1, tmp_path / "full", months=12, overrides=SMALL)


# --- sweep specs -------------------------------------------------------------------------
GOOD = """
name = "tiny"
base = "baseline"
replicates = 2
seed = 3
months = 24

[params]
n_children = 50

[grid]
funding_scheme = ["short_cycles", "rolling"]
initial_stigma = [0.4, 0.8]

[outputs]
timeseries = true
flush_seconds = 0.2
"""

BAD_SPECS = {
    "unknown key": ('replicate = 3\n', "unknown key; did you mean 'replicates'"),
    "unknown parameter": ('[grid]\ninitial_stigmaa = [0.1, 0.2]\n', "unknown parameter"),
    "grid value out of range": ('[grid]\ninitial_stigma = [0.2, 1.5]\n', "out of range"),
    "range outside bounds": ('samples = 4\n[ranges]\ninitial_stigma = [0.2, 1.5]\n',
                             "outside the allowed range 0.0 to 1.0"),
    "range reversed": ('samples = 4\n[ranges]\ninitial_stigma = [0.8, 0.2]\n',
                       "low must be below high"),
    "ranges without samples": ('[ranges]\ninitial_stigma = [0.2, 0.8]\n', "samples = N"),
    "choice in ranges": ('samples = 2\n[ranges]\nfunding_scheme = [0, 1]\n', "[grid]"),
    "unknown sampler": ('sampler = "sobol"\nsamples = 2\n[ranges]\ninitial_stigma = [0.2, 0.8]\n',
                        "not one of latin"),
    "unknown output": ('[outputs]\nchildren = true\n', "outputs.children: unknown key"),
    "bad base": ('base = "basline"\n', "did you mean 'baseline'"),
    "not toml": ('replicates = = 3\n', "not valid TOML"),
    "wrong type": ('replicates = "many"\n', "expected a whole number"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_sweep_spec_errors_are_one_line(tmp_path, case):
    text, expected = BAD_SPECS[case]
    spec = write(tmp_path / "bad.toml", text)
    with pytest.raises(UserError) as info:
        sweep(spec, jobs=1, out=tmp_path / "out", resume=False, scheduler=None)
    message = str(info.value)
    assert "\n" not in message
    assert str(spec) in message
    assert expected in message
    assert not (tmp_path / "out").exists()  # nothing written for a bad spec


def test_latin_hypercube_ranges_are_seeded_stratified_and_typed(tmp_path):
    spec = write(tmp_path / "lhs.toml", GOOD.replace("[outputs]", """
[ranges]
stigma_influence_rate = [0.02, 0.3]
min_months_in_care = [3, 12]

[outputs]""") .replace("replicates = 2", "replicates = 2\nsamples = 5"))
    a, b = load_spec(spec), load_spec(spec)
    assert a.samples == b.samples and a.sample_hashes == b.sample_hashes
    assert len(a.samples) == 4 * 5 and a.n_tasks == 40
    assert a.varied == ("funding_scheme", "initial_stigma", "stigma_influence_rate",
                        "min_months_in_care")
    rates = sorted(s["stigma_influence_rate"] for s in a.samples[:5])
    strata = [int((r - 0.02) / (0.3 - 0.02) * 5) for r in rates]
    assert strata == [0, 1, 2, 3, 4]  # one point in each fifth of the range
    assert all(isinstance(s["min_months_in_care"], int) and 3 <= s["min_months_in_care"] <= 12
               for s in a.samples)


# --- sweep runs --------------------------------------------------------------------------
def test_existing_output_folder_is_refused_without_resume(tmp_path):
    spec = write(tmp_path / "tiny.toml", GOOD)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="never overwritten"):
        sweep(spec, jobs=1, out=out, resume=False, scheduler=None)
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(UserError, match="no sweep to resume"):
        sweep(spec, jobs=1, out=out, resume=True, scheduler=None)


def test_serial_process_pool_and_dask_give_identical_results(tmp_path):
    from distributed import Client, LocalCluster

    spec = write(tmp_path / "tiny.toml", GOOD)
    serial = sweep(spec, jobs=1, out=tmp_path / "serial", resume=False, scheduler=None)
    pool = sweep(spec, jobs=2, out=tmp_path / "pool", resume=False, scheduler=None)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask = sweep(spec, jobs=None, out=tmp_path / "dask", resume=False, scheduler=None,
                     executor=client.get_executor())

    reference = read_results(serial)
    assert len(reference) == 8 and list(reference["task_id"]) == list(range(8))
    assert list(reference["seed"]) == [3, 4] * 4
    assert reference.groupby("sample_id")["param_hash"].nunique().eq(1).all()
    assert reference["param_hash"].nunique() == 4
    for other in (pool, dask):
        pd.testing.assert_frame_equal(read_results(other), reference)
        pd.testing.assert_frame_equal(read_series(other), read_series(serial))
        assert (other / "runs.csv").read_bytes() == (serial / "runs.csv").read_bytes()

    # Resuming a finished sweep runs nothing and changes nothing.
    before = (serial / "runs.csv").read_bytes()
    sweep(spec, jobs=1, out=serial, resume=True, scheduler=None)
    assert (serial / "runs.csv").read_bytes() == before
    # Resuming with a different spec is refused.
    changed = write(tmp_path / "tiny.toml", GOOD.replace("seed = 3", "seed = 4"))
    with pytest.raises(UserError, match=r"differs from the spec .*changed: seed"):
        sweep(changed, jobs=1, out=serial, resume=True, scheduler=None)


def test_resume_after_kill_9_gives_the_uninterrupted_results(tmp_path):
    spec = write(tmp_path / "kill.toml", GOOD.replace("replicates = 2", "replicates = 20")
                 .replace("months = 24", "months = 36"))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "experiments.cli", "sweep", str(spec), "--out", str(out),
           "--jobs", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        parts = out / "parts" / "runs"
        while not (parts.exists() and any(parts.glob("part-*.parquet"))):
            assert proc.poll() is None, "the sweep ended before writing a part"
            assert time.monotonic() < deadline, "no part written within 120 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes, at once
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "results.parquet").exists()
    done = pd.concat([pd.read_parquet(p) for p in parts.glob("part-*.parquet")])
    assert 0 < len(done) < 80, "the kill should land in the middle of the sweep"

    resumed = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(done)} already done" in resumed.stdout

    reference = sweep(spec, jobs=1, out=tmp_path / "uninterrupted", resume=False,
                      scheduler=None)
    pd.testing.assert_frame_equal(read_results(out), read_results(reference))
    assert (out / "runs.csv").read_bytes() == (reference / "runs.csv").read_bytes()
    pd.testing.assert_frame_equal(read_series(out), read_series(reference))


@pytest.mark.parametrize("profile", [True, False])
def test_connect_dask_notes_workers_that_run_the_profiler(profile, capsys):
    import dask
    from distributed import LocalCluster

    from experiments.runner import connect_dask

    with dask.config.set({"distributed.worker.profile.enabled": profile}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    with cluster:
        client = connect_dask(cluster.scheduler_address)
        client.close()
    note = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False" in capsys.readouterr().err
    assert note == profile
