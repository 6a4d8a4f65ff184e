"""Sensitivity analysis: known answers in a toy set-up, noise reporting, resume, spec errors.

The toy set-up has no programme funding at all (``funding_scheme = "none"``), so the
number of unassisted recoveries can depend on ``unassisted_recovery_rate`` but not on
``salary``, ``caseload_standard`` or ``grant_months``: with no programme there is no
one to pay, no caseload and no grant. With common random numbers the runs of two
design points that differ only in those three are identical, so their indices must be
(numerically) zero and the rate must rank first by a wide margin.

Tiny runs (100 children, 36 months); the whole file takes about a minute on two cores.
"""

from __future__ import annotations

import json
from concurrent.futures import Executor, Future
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli import main
from experiments.errors import UserError
from experiments.sensitivity import load_sensitivity_spec, sensitivity

REPO = Path(__file__).resolve().parent.parent
DOMINANT = "unassisted_recovery_rate"
IRRELEVANT = ("salary", "caseload_standard", "grant_months")

TOY = f"""
name = "toy"
base = "no_funding"
seed = 3
replicates = 2
months = 36
parameters = ["{DOMINANT}", "salary", "caseload_standard", "grant_months"]
outcomes = ["unassisted_recoveries", "mean_wellbeing_end"]
trajectories = 6
N = 16

[params]
n_children = 100

[outputs]
flush_seconds = 0.05
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("spec") / "toy.toml", TOY)


@pytest.fixture(scope="module")
def morris_out(toy: Path, tmp_path_factory) -> Path:
    return sensitivity(toy, method="morris", jobs=1, out=tmp_path_factory.mktemp("m") / "out",
                       resume=False, scheduler=None)


@pytest.fixture(scope="module")
def sobol_out(toy: Path, tmp_path_factory) -> Path:
    return sensitivity(toy, method="sobol", jobs=2, out=tmp_path_factory.mktemp("s") / "out",
                       resume=False, scheduler=None)


def indices(out: Path, metric: str = "unassisted_recoveries") -> pd.DataFrame:
    table = pd.read_csv(out / "indices.csv")
    return table[table["metric"] == metric].set_index("parameter")


# --- known answers ---------------------------------------------------------------------------
def test_morris_ranks_the_dominant_parameter_first(morris_out: Path):
    idx = indices(morris_out)
    assert idx["mu_star"].idxmax() == DOMINANT
    top = idx.at[DOMINANT, "mu_star"]
    # Margin: the rate moves recoveries by several children over its range; the
    # parameters that cannot matter here move them by less than 1% of that (exactly
    # zero with common random numbers).
    assert top > 5.0
    assert idx.loc[list(IRRELEVANT), "mu_star"].max() <= 0.01 * top
    assert idx.at[DOMINANT, "above_noise"]
    assert not idx.loc[list(IRRELEVANT), "above_noise"].any()
    assert top > idx.at[DOMINANT, "noise_floor"] + idx.at[DOMINANT, "mu_star_conf"]


def test_sobol_ranks_the_dominant_parameter_first(sobol_out: Path):
    idx = indices(sobol_out)
    assert idx["ST"].idxmax() == DOMINANT
    # Margin: the rate explains most of the variance (ST well above one half even with
    # N = 16); the others explain none of it.
    assert idx.at[DOMINANT, "ST"] > 0.6
    assert idx.loc[list(IRRELEVANT), "ST"].abs().max() < 0.02
    assert idx.loc[list(IRRELEVANT), "S1"].abs().max() < 0.02
    assert idx.at[DOMINANT, "above_noise"]


def test_noise_is_reported_beside_the_indices(morris_out: Path, sobol_out: Path):
    for out in (morris_out, sobol_out):
        noise = pd.read_csv(out / "noise.csv").set_index("metric")
        assert set(noise.index) == {"unassisted_recoveries", "mean_wellbeing_end"}
        row = noise.loc["unassisted_recoveries"]
        assert row["replicates"] == 2 and row["analysed"]
        assert 0.0 <= row["noise_share"] < 0.2  # the rate's effect dwarfs the noise here
        assert row["replicate_sd"] > 0 and row["noise_floor"] >= 0
        # Wellbeing at the horizon barely moves with these parameters: noise is a large
        # part of its variation, and the report says so.
        assert noise.at["mean_wellbeing_end", "noise_share"] > row["noise_share"]


def test_outputs_and_learning_agenda(morris_out: Path):
    for name in ("indices.csv", "noise.csv", "learning_agenda.csv", "learning_agenda.md",
                 "design.csv", "runs.csv", "results.parquet", "spec.toml", "manifest.json",
                 "indices-unassisted_recoveries.png", "indices-mean_wellbeing_end.png"):
        assert (morris_out / name).stat().st_size > 0, name
    agenda = pd.read_csv(morris_out / "learning_agenda.csv")
    assert list(agenda.columns[:7]) == ["metric", "rank", "parameter", "importance",
                                        "importance_measure", "provenance", "description"]
    first = agenda[(agenda["metric"] == "unassisted_recoveries") & (agenda["rank"] == 1)]
    assert first["parameter"].tolist() == [DOMINANT]
    assert "Judging effectiveness" in first["provenance"].iloc[0]
    text = (morris_out / "learning_agenda.md").read_text()
    assert "not a prediction about real children" in text
    assert "worth buying" in text and DOMINANT in text
    info = json.loads((morris_out / "manifest.json").read_text())
    assert info["method"] == "morris" and info["status"] == "complete"
    assert info["n_tasks"] == 2 * 6 * (4 + 1)
    runs = pd.read_csv(morris_out / "runs.csv")
    # Common random numbers: every design point ran on the same two seeds.
    assert runs.groupby("sample_id")["seed"].apply(tuple).nunique() == 1


# --- resume ----------------------------------------------------------------------------------
class StopAfter(Executor):
    """Runs submissions in this process, then fails as if interrupted after ``n`` of them.

    (A submission may carry several runs: see ``runner._drive``.)
    """

    def __init__(self, n: int):
        self.left = n

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_resume_after_interruption_gives_identical_indices(toy: Path, morris_out: Path,
                                                           tmp_path: Path):
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        sensitivity(toy, method="morris", jobs=1, out=out, resume=False, scheduler=None,
                    executor=StopAfter(6))
    assert not (out / "indices.csv").exists()
    done = pd.read_parquet(out / "parts" / "runs")
    n_tasks = json.loads((morris_out / "manifest.json").read_text())["n_tasks"]
    assert 0 < len(done) < n_tasks
    # Finish on a process pool: results must not depend on the executor either.
    sensitivity(toy, method="morris", jobs=2, out=out, resume=True, scheduler=None)
    for name in ("indices.csv", "noise.csv", "learning_agenda.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / name), pd.read_csv(morris_out / name))
    info = json.loads((out / "manifest.json").read_text())
    assert info["runs_this_time"] == info["n_tasks"] - len(done)


def test_resume_refuses_another_method_or_missing_folder(toy: Path, morris_out: Path,
                                                         tmp_path: Path):
    with pytest.raises(UserError, match="used --method morris"):
        sensitivity(toy, method="sobol", jobs=1, out=morris_out, resume=True, scheduler=None)
    with pytest.raises(UserError, match="no analysis to resume"):
        sensitivity(toy, method="morris", jobs=1, out=tmp_path / "none", resume=True,
                    scheduler=None)
    with pytest.raises(UserError, match="add --resume"):
        sensitivity(toy, method="morris", jobs=1, out=morris_out, resume=False, scheduler=None)


# --- spec errors -----------------------------------------------------------------------------
BAD_SPECS = [
    ('parameters = ["unassisted_recovery_rte", "salary"]',
     "unknown parameter 'unassisted_recovery_rte'; did you mean unassisted_recovery_rate"),
    ('parameters = ["salary", "recovery_rate"]\n[ranges]\nbase_turnover = [0.0, 0.9]',
     "ranges.base_turnover: [0.0, 0.9] is outside the allowed range 0.0 to 0.5"),
    ('parameters = ["salary", "recovery_rate"]\n[ranges]\nrecovery_rate = [0.2, 0.1]',
     "ranges.recovery_rate: low must be below high"),
    ('parameters = ["funding_scheme", "salary"]', "cannot be a factor"),
    ('parameters = ["salary", "recovery_rate"]\noutcomes = ["stable_reintegration"]',
     "unknown summary metric 'stable_reintegration'; did you mean stable_reintegration_rate"),
    ('parameters = ["salary", "recovery_rate"]\nN = 100', "N: 100 is not a power of two"),
    ('parameters = ["salary", "recovery_rate"]\nreplicates = 1', "replicates: give 2 or more"),
    ('parameters = ["salary", "recovery_rate"]\ntrajectory = 4', "did you mean 'trajectories'"),
    ('parameters = ["salary", "recovery_rate"]\n[params]\nsalary = 900.0',
     "also fixed in [params]"),
    ('parameters = ["salary"]', "at least two factors"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_SPECS)
def test_bad_specs_fail_with_one_clear_line(tmp_path: Path, text: str, expected: str):
    path = write(tmp_path / "bad.toml", text + "\n")
    with pytest.raises(UserError) as err:
        load_sensitivity_spec(path)
    message = str(err.value)
    assert expected in message
    assert message.startswith(str(path)) and "\n" not in message


def test_cli_reports_a_bad_spec_as_one_line(tmp_path: Path, capsys):
    path = write(tmp_path / "bad.toml", '[ranges]\nbase_turnover = [0.0, 0.9]\n')
    assert main(["sensitivity", str(path), "--method", "sobol", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "allowed range 0.0 to 0.5" in err
    assert "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["morris-smoke.toml", "sobol-full.toml", "sobol-8.toml"])
def test_shipped_specs_are_valid(name: str):
    spec = load_sensitivity_spec(REPO / "experiments" / name)
    assert len(spec.factors) >= 6 and spec.replicates >= 2
    if name.startswith("sobol"):
        assert spec.base_params.n_children == 1000 and spec.n_base == 256
        assert spec.n_points("sobol") == 256 * (len(spec.factors) + 2)
    if name == "sobol-8.toml":  # the size the scale issue times: 5,120 runs
        assert len(spec.factors) == 8 and spec.n_points("sobol") * spec.replicates == 5120
