"""Funding what-ifs on an equal total budget, and the funder's HTML/PDF report.

Runs are tiny (60-80 synthetic children, 36-48 months, 3 replicates, serial) so the file
stays fast; the checks are about bookkeeping and faithfulness to the result files, not
about the science.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from experiments.errors import UserError
from experiments.report import chromium, fmt, report
from experiments.runner import compare, sweep
from experiments.scenarios import load_scenario
from experiments.whatif import EQUAL_BUDGET_RULE, SPEND_TOLERANCE, whatif

REPO = Path(__file__).resolve().parents[1]
BUDGET = 600_000.0
MONTHS = 48
SCHEMES = ["short_cycles", "rolling", "fixed", "none"]
SPLIT = {"family": 0.25, "community": 0.15}
REPLICATES = 3
NO_CHROMIUM = "Chromium is not installed (apt-get install chromium); cannot open the report"


# --- fixtures: one what-if, one comparison, one sweep (module-wide, built once) ----------------
@pytest.fixture(scope="module")
def whatif_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("whatif")
    base = root / "small_base.toml"
    base.write_text('title = "Small district"\nextends = "baseline"\n\n[params]\n'
                    "n_children = 80\n")
    return whatif(budget=BUDGET, months=MONTHS, schemes=SCHEMES, split=SPLIT,
                  replicates=REPLICATES, seed=3, jobs=1, out=root / "out", base=str(base))


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "out"
    return compare(["short_cycles", "rolling"], replicates=REPLICATES, seed=0, jobs=1, out=out,
                   months=36, overrides={"n_children": 60})


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    spec = root / "tiny.toml"
    spec.write_text('name = "tiny"\ndescription = "Tiny sweep for the report tests."\n'
                    'base = "baseline"\nreplicates = 3\nseed = 1\nmonths = 36\n\n'
                    "[params]\nn_children = 60\n\n"
                    '[grid]\nfunding_scheme = ["short_cycles", "rolling"]\n')
    return sweep(spec, jobs=1, out=root / "out", resume=False, scheduler=None)


@pytest.fixture(scope="module")
def whatif_report(whatif_dir: Path) -> Path:
    return report(whatif_dir)


# --- the equal-total-budget rule ---------------------------------------------------------------
def test_allotted_totals_are_equal_and_follow_the_rule(whatif_dir: Path) -> None:
    budget = pd.read_csv(whatif_dir / "budget.csv").set_index("scheme")
    funded = [s for s in SCHEMES if s != "none"]
    assert (budget.loc[funded, "allotted"] == BUDGET).all()  # exactly, not approximately
    assert budget.at["none", "allotted"] == 0.0 and budget.at["none", "monthly_budget"] == 0.0
    nominal = {"short_cycles": MONTHS, "rolling": MONTHS, "fixed": 12}  # baseline grant: 12
    for s in funded:
        assert budget.at[s, "nominal_months"] == nominal[s]
        assert math.isclose(budget.at[s, "monthly_budget"] * nominal[s], BUDGET, rel_tol=1e-12)
    assert budget.at["short_cycles", "monthly_budget"] == budget.at["rolling", "monthly_budget"]
    manifest = json.loads((whatif_dir / "manifest.json").read_text())
    assert manifest["kind"] == "whatif"
    assert manifest["equal_budget_rule"] == EQUAL_BUDGET_RULE
    assert manifest["total_budget"] == BUDGET


def test_spend_never_exceeds_allotted_and_the_books_balance(whatif_dir: Path) -> None:
    runs = pd.read_csv(whatif_dir / "budget_runs.csv")
    assert len(runs) == len(SCHEMES) * REPLICATES
    assert (runs["spend"] <= runs["allotted"] + SPEND_TOLERANCE).all()
    np.testing.assert_allclose(runs["spend"] + runs["unspent"], runs["allotted"], rtol=0, atol=1e-6)
    reasons = runs[["unspent_unfunded_months", "unspent_vacancies", "unspent_other"]].sum(axis=1)
    np.testing.assert_allclose(reasons, runs["unspent"], rtol=0, atol=1e-6)
    assert (runs["unspent_vacancies"] >= 0).all() and (runs["unspent_other"] >= -1e-6).all()
    # Spend agrees with the model's own monthly series, summed independently.
    ts = pd.read_parquet(whatif_dir / "timeseries.parquet")
    monthly = ts[ts["variable"] == "spend"].groupby(["scenario", "replicate"])["value"].sum()
    for r in runs.itertuples():
        assert math.isclose(monthly[(r.scheme, r.replicate)], r.spend, rel_tol=1e-9, abs_tol=1e-6)
    # Money for months without a grant is stated: short cycles leave gaps, rolling none.
    by = runs.set_index(["scheme", "replicate"])
    for rep in range(REPLICATES):
        sc = by.loc[("short_cycles", rep)]
        assert sc["funded_months"] < MONTHS
        assert math.isclose(sc["unspent_unfunded_months"],
                            sc["monthly_budget"] * (MONTHS - sc["funded_months"]), rel_tol=1e-12)
        assert by.loc[("rolling", rep), "funded_months"] == MONTHS
        assert by.loc[("rolling", rep), "unspent_unfunded_months"] == 0
        assert by.loc[("fixed", rep), "funded_months"] == 12


def test_schemes_share_seeds_and_files_reproduce_the_runs(whatif_dir: Path) -> None:
    runs = pd.read_csv(whatif_dir / "runs.csv")
    seeds = {s: runs.loc[runs["scenario"] == s, "seed"].tolist() for s in SCHEMES}
    assert all(v == [3, 4, 5] for v in seeds.values())
    assert (runs["budget_family"] == SPLIT["family"]).all()
    assert (runs["budget_community"] == SPLIT["community"]).all()
    assert (runs["n_children"] == 80).all()  # from the base scenario given by path
    for s in SCHEMES:
        sc = load_scenario(str(whatif_dir / "scenarios" / f"{s}.toml"))
        row = runs[runs["scenario"] == s].iloc[0]
        assert sc.params.funding_scheme == s
        assert sc.params.monthly_budget == row["monthly_budget"]


@pytest.mark.parametrize("kwargs, message", [
    ({"schemes": ["rollin"]}, "did you mean 'rolling'"),
    ({"schemes": ["rolling", "rolling"]}, "named twice"),
    ({"schemes": []}, "at least one"),
    ({"split": {"families": 0.3}}, "unknown budget line"),
    ({"split": {"family": 1.5}}, "out of range"),
    ({"budget": 0.0}, "positive total"),
    ({"budget": float("nan")}, "positive total"),
    ({"months": 0}, "--months"),
    ({"replicates": 0}, "--replicates"),
    ({"base": "no_such_scenario"}, "unknown scenario"),
])
def test_whatif_rejects_bad_requests_before_running(tmp_path: Path, kwargs: dict, message: str
                                                    ) -> None:
    args = {"budget": BUDGET, "months": 24, "schemes": ["rolling"], "split": None,
            "replicates": 1, "seed": 0, "jobs": 1, "out": tmp_path / "out", "base": "baseline",
            **kwargs}
    with pytest.raises(Exception, match=message) as info:
        whatif(**args)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


# --- the report: faithful to the files ----------------------------------------------------------
class Numbers(HTMLParser):
    """Collects every element carrying data-stat, with its attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str]] = []
        self._open: dict[str, str] | None = None
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(a.get("src", ""))
        for k in ("src", "href"):
            if a.get(k, "").startswith(("http:", "https:", "//")):
                self.external.append(a[k])
        if tag == "link" or (tag == "script" and a.get("src")):
            self.external.append(tag)
        if "data-stat" in a:
            self._open = {**a, "text": ""}

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == "span":
            self.found.append(self._open)
            self._open = None


def parse(html: Path) -> Numbers:
    p = Numbers()
    p.feed(html.read_text(encoding="utf-8"))
    return p


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("folder", ["whatif_dir", "compare_dir"])
def test_report_numbers_equal_the_comparison_file(folder: str, request: pytest.FixtureRequest,
                                                  tmp_path: Path) -> None:
    results = request.getfixturevalue(folder)
    html = report(results, out=tmp_path / "report.html")
    table = pd.read_csv(results / "comparison.csv")
    by = table.set_index(["scenario", "metric"])
    numbers = [n for n in parse(html).found if "data-scenario" in n and "data-metric" in n
               and n["data-metric"] != "budget"]
    assert len(numbers) > 50
    seen = set()
    for n in numbers:
        key = (n["data-scenario"], n["data-metric"])
        stat = n["data-stat"]
        if stat == "likely":
            assert n["data-value"] == str(bool(by.loc[key, "likely"]))
            assert n["text"] == ("likely" if by.loc[key, "likely"] else "not clear")
            continue
        exact = float(by.loc[key, stat])
        assert same(float(n["data-value"]), exact), (key, stat)
        assert n["text"] == fmt(exact, n["data-kind"], signed=stat.startswith("diff")), (key, stat)
        seen.add((key, stat))
    scenarios = table["scenario"].unique()
    for sc in scenarios:  # every scenario's headline result is shown with its interval
        for stat in ("mean", "ci_low", "ci_high"):
            assert ((sc, "stable_reintegration_rate"), stat) in seen
    for sc in scenarios[1:]:
        assert ((sc, "stable_reintegration_rate"), "diff_mean") in seen


def test_report_money_equals_budget_file(whatif_dir: Path, whatif_report: Path) -> None:
    budget = pd.read_csv(whatif_dir / "budget.csv").set_index("scheme")
    money = [n for n in parse(whatif_report).found if n.get("data-metric") == "budget"]
    assert money
    for n in money:
        if n["data-scheme"] == "all":
            assert float(n["data-value"]) == BUDGET
            continue
        exact = float(budget.at[n["data-scheme"], n["data-stat"]])
        assert same(float(n["data-value"]), exact)
        assert n["text"] == fmt(exact, n["data-kind"])


def test_report_is_self_contained_and_says_what_it_must(whatif_report: Path) -> None:
    parsed = parse(whatif_report)
    assert parsed.images and all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert not parsed.external
    text = whatif_report.read_text(encoding="utf-8")
    for phrase in ("not predictions about real children", "not a basis for decisions about an "
                   "individual child", "Support ended before children were ready", "Unmet need",
                   "Cost per child stably reintegrated", "What remains after funding ends",
                   "Staff turnover", "unspent", "No sensitivity analysis was run",
                   "reintegration sensitivity", "How to reproduce", "Limitations",
                   "Where the value comes from", "same total"):
        assert phrase in text, phrase
    manifest = json.loads((whatif_report.parent / "manifest.json").read_text())
    assert manifest["git_commit"] in text and manifest["command"].split()[0] in text


def test_sensitivity_table_is_shown_when_present(compare_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "with_sensitivity"
    shutil.copytree(compare_dir, folder)
    pd.DataFrame({"metric": ["stable_reintegration_rate"] * 2, "rank": [1, 2],
                  "parameter": ["initial_stigma", "salary"],
                  "share_of_variance": [0.42, 0.11], "provenance": ["test source", ""]}
                 ).to_csv(folder / "learning_agenda.csv", index=False)
    text = report(folder).read_text(encoding="utf-8")
    assert "No sensitivity analysis was run" not in text
    assert "initial_stigma" in text and "test source" in text
    assert 'data-stat="share_of_variance"' in text
    # The format 'reintegration sensitivity' writes: importance with its measure, noise flag.
    pd.DataFrame({"metric": ["unmet_need_share"] * 2, "rank": [1, 2],
                  "parameter": ["identification_rate", "recovery_rate"],
                  "importance": [0.66, 0.07], "importance_measure": ["share of summed mu*"] * 2,
                  "provenance": ["assumption", "a study"], "description": ["", ""],
                  "above_noise": [True, False]}).to_csv(folder / "learning_agenda.csv", index=False)
    text = report(folder).read_text(encoding="utf-8")
    assert "Share of summed mu*" in text and "(within noise)" in text
    assert "most sensitive to <code>identification_rate</code>." in text
    (folder / "learning_agenda.csv").write_text("metric,parameter\nstable_reintegration_rate\n")
    with pytest.raises(UserError, match="learning_agenda.csv: .*sensitivity"):
        report(folder)


def test_sweep_report_summarises_each_swept_value(sweep_dir: Path, tmp_path: Path) -> None:
    html = report(sweep_dir, out=tmp_path / "sweep.html")
    results = pd.read_parquet(sweep_dir / "results.parquet")
    cells = [n for n in parse(html).found if n.get("data-param") == "funding_scheme"]
    assert {n["data-param-value"] for n in cells} == {"short_cycles", "rolling"}
    for n in cells:
        x = results.loc[results["funding_scheme"] == n["data-param-value"], n["data-metric"]]
        if n["data-stat"] == "mean":
            assert math.isclose(float(n["data-value"]), x.dropna().mean(), rel_tol=1e-12)
    assert "Parameter sweep: tiny" in html.read_text(encoding="utf-8")


# --- the report: damaged folders fail with one clear line ----------------------------------------
def _delete(p: Path) -> None:
    p.unlink()


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _garbage(p: Path) -> None:
    p.write_bytes(bytes(range(256)) * 20)


def _bad_json(p: Path) -> None:
    p.write_text('{"kind": "compare", "scenarios": [')


@pytest.mark.parametrize("folder, name, damage, expected", [
    ("compare_dir", "runs.csv", _delete, r"runs.csv: (listed in manifest.json but )?missing"),
    ("compare_dir", "comparison.csv", _truncate, "comparison.csv"),
    ("compare_dir", "comparison.csv", _garbage, "comparison.csv"),
    ("compare_dir", "manifest.json", _bad_json, "manifest.json: not valid JSON"),
    ("compare_dir", "manifest.json", _delete, "manifest.json: missing"),
    ("compare_dir", "series.png", _truncate, "series.png"),
    ("whatif_dir", "budget.csv", _delete, r"budget.csv: (listed in manifest.json but )?missing"),
    ("whatif_dir", "budget.csv", _truncate, "budget.csv"),
    ("whatif_dir", "timeseries.parquet", _garbage, "timeseries.parquet"),
    ("sweep_dir", "results.parquet", _garbage, "results.parquet"),
])
def test_damaged_folder_fails_with_one_clear_line(folder: str, name: str, damage, expected: str,
                                                  request: pytest.FixtureRequest, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "results"
    shutil.copytree(request.getfixturevalue(folder), copy)
    (copy / "report.html").unlink(missing_ok=True)  # from another test's report
    damage(copy / name)
    with pytest.raises(UserError, match=expected) as info:
        report(copy)
    message = str(info.value)
    assert "\n" not in message and "rerun" in message
    # Through the command line: exit code 2, one line on stderr, no traceback.
    capsys.readouterr()  # drop the progress output of building the fixture
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (copy / "report.html").exists()


def test_rows_of_comparison_must_match_runs(compare_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "edited"
    shutil.copytree(compare_dir, copy)
    table = pd.read_csv(copy / "comparison.csv")
    table.loc[table["metric"] == "stable_reintegration_rate", "mean"] += 0.1
    table.to_csv(copy / "comparison.csv", index=False)
    with pytest.raises(UserError, match="does not match runs.csv"):
        report(copy)


# --- the report in a browser ------------------------------------------------------------------------
def _chromium_flags(profile: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            f"--user-data-dir={profile}"]


@pytest.mark.skipif(chromium() is None, reason=NO_CHROMIUM)
def test_report_opens_in_headless_chromium(whatif_report: Path, tmp_path: Path) -> None:
    exe = chromium()
    url = whatif_report.resolve().as_uri()
    dom = subprocess.run([exe, *_chromium_flags(tmp_path / "p1"), "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    assert "Funding what-if" in dom and 'data-metric="stable_reintegration_rate"' in dom
    shot = tmp_path / "report.png"
    subprocess.run([exe, *_chromium_flags(tmp_path / "p2"), "--window-size=1200,2400",
                    f"--screenshot={shot}", url], capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG")
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 2400)
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 100  # not a blank page
    keep = REPO / "results" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "report.png")


@pytest.mark.skipif(chromium() is None, reason=NO_CHROMIUM)
def test_pdf_is_printed(compare_dir: Path, tmp_path: Path) -> None:
    html = report(compare_dir, out=tmp_path / "funder.html", pdf=True)
    pdf = html.with_suffix(".pdf")
    assert pdf.is_file() and pdf.stat().st_size > 10_000
    assert pdf.read_bytes().startswith(b"%PDF")


def test_rounding_for_funders() -> None:
    assert fmt(0.613, "share") == "61"
    assert fmt(-0.0449, "share", signed=True) == "\u22124"
    assert fmt(0.004, "share", signed=True) == "0"
    assert fmt(24222.0, "money") == "24,200"
    assert fmt(1234567.0, "money") == "1.23 million"
    assert fmt(8.44, "count") == "8.4" and fmt(62.33, "count") == "62"
    assert fmt(0.241, "per100") == "24"
    assert fmt(float("nan"), "share") == "–"
