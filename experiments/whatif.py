"""Funding what-ifs: funding schemes compared on an equal total budget, on common seeds.

A funder asks: with the same money, should we give one grant, one long grant, grants with
gaps, or rolling funding? :func:`whatif` answers by running one scenario per scheme
through :func:`experiments.runner.compare` (replicate ``i`` of every scheme uses seed
``seed + i``, so schemes differ because of the scheme, not the noise) and then accounting
for the money.

The equal-total-budget rule (:data:`EQUAL_BUDGET_RULE`): every scheme is allotted the
same TOTAL over the horizon of H months, and spends it at a constant monthly rate over
its *nominal funded months*::

    monthly_budget = TOTAL / nominal funded months
    fixed         min(grant_months, H)        one grant from month 0, then nothing
    long_term     min(long_grant_months, H)   one long grant from month 0
    rolling       H                           renewed before each grant ends
    short_cycles  H                           grants with gaps (see below)
    none          (no budget: 0 a month)      a reference for what services add

For ``short_cycles`` the funder sets aside the same monthly rate as rolling funding; the
months of gaps (and of grants not renewed) are money that is allotted but not spent. It
is reported as unspent, not hidden and not moved to other months.

Besides the comparison's files (``runs.csv``, ``comparison.csv``, ``timeseries.parquet``,
``series.png``, ``differences.png``), the output folder holds:

- ``budget.csv``: per scheme, the total allotted, the monthly budget, months funded and
  the total spent (mean, min and max over replicates), and the unspent money split by
  reason (see :data:`BUDGET_COLUMNS`);
- ``budget_runs.csv``: the same accounting for every run;
- ``scenarios/``: the scenario file of each scheme (data: it ``extends`` the base
  scenario and sets the scheme, horizon, monthly budget and budget split);
- ``manifest.json`` with ``kind = "whatif"`` and the rule text.
"""

from __future__ import annotations

import difflib
import json
import math
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.parameters import BUDGET_LINES, FUNDING_SCHEMES, SPECS, ParameterError, Params

from .errors import UserError
from .manifest import new_output_dir, write_json
from .runner import compare
from .scenarios import SCENARIO_DIR, Scenario, load_scenario

EQUAL_BUDGET_RULE = (
    "Every funding scheme is allotted the same total budget over the horizon and spends it "
    "at a constant monthly rate over its nominal funded months: monthly budget = total / "
    "nominal funded months, where the nominal funded months are the grant length for one "
    "grant (fixed), the long grant's length for long_term (both capped at the horizon), and "
    "the whole horizon for rolling funding and for short cycles. Under short cycles the "
    "funder sets aside the same monthly rate as rolling funding; the money for months "
    "without a grant (gaps and grants not renewed) is not spent and is reported as unspent. "
    "The 'none' scheme has no budget."
)
"""The rule, as written into manifest.json and the report."""

SCHEME_LABELS = {
    "fixed": "one grant, then nothing",
    "long_term": "one long grant",
    "rolling": "rolling funding (renewed before it ends)",
    "short_cycles": "short grants with gaps",
    "none": "no programme funding",
}
"""Plain-language name of each funding scheme."""

BUDGET_COLUMNS: dict[str, str] = {
    "scheme": "Funding scheme.",
    "allotted": "Total budget allotted over the horizon (the same for every funded scheme).",
    "monthly_budget": "Budget per funded month (allotted / nominal_months).",
    "nominal_months": "Months the allotment is spread over (see the equal-total-budget rule).",
    "funded_months_mean": "Months actually funded, mean over replicates.",
    "funded_months_min": "Months actually funded, fewest in any replicate.",
    "funded_months_max": "Months actually funded, most in any replicate.",
    "spend_mean": "Money spent over the horizon, mean over replicates.",
    "spend_min": "Money spent, lowest replicate.",
    "spend_max": "Money spent, highest replicate.",
    "unspent_mean": "allotted - spend, mean over replicates.",
    "unspent_unfunded_months_mean": "Unspent because months were not funded (gaps, grants "
                                    "not renewed): monthly_budget x (nominal_months - "
                                    "funded months); mean over replicates.",
    "unspent_vacancies_mean": "Unspent because funded posts were vacant (staff left or not "
                              "yet replaced): salary x vacant post-months; mean.",
    "unspent_other_mean": "The rest of the unspent money in funded months: posts rounded "
                          "down to whole workers, staff-support and family-support money "
                          "not fully used; mean.",
    "spend_share_mean": "spend / allotted, mean over replicates (empty for no budget).",
}
"""Columns of ``budget.csv`` and what they mean (also written to manifest.json)."""

RUN_BUDGET_COLUMNS = ("scheme", "replicate", "seed", "allotted", "monthly_budget",
                      "nominal_months", "funded_months", "spend", "unspent",
                      "unspent_unfunded_months", "unspent_vacancies", "unspent_other")
"""Columns of ``budget_runs.csv``: the accounting of each run (names as above)."""

SPEND_TOLERANCE = 1e-6
"""Currency units of floating-point slack allowed when checking spend <= allotted."""


def nominal_months(scheme: str, params: Params, horizon: int) -> int:
    """Months over which a scheme's allotment is spread (the equal-total-budget rule).

    Args:
        scheme: a funding scheme (``model.parameters.FUNDING_SCHEMES``).
        params: the scheme's parameters (``grant_months``, ``long_grant_months``).
        horizon: the horizon H in months.

    Returns:
        ``min(grant_months, H)`` for fixed, ``min(long_grant_months, H)`` for long_term,
        H for rolling and short_cycles, 0 for none.
    """
    if scheme == "fixed":
        return min(params.grant_months, horizon)
    if scheme == "long_term":
        return min(params.long_grant_months, horizon)
    if scheme in ("rolling", "short_cycles"):
        return horizon
    return 0


def _check_schemes(schemes: list[str]) -> list[str]:
    if not schemes:
        raise UserError(f"--schemes: name at least one funding scheme ({', '.join(FUNDING_SCHEMES)})")
    for s in schemes:
        if s not in FUNDING_SCHEMES:
            near = difflib.get_close_matches(s, FUNDING_SCHEMES, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise UserError(f"--schemes: {s!r} is not a funding scheme{hint}; use "
                            f"{', '.join(FUNDING_SCHEMES)}")
        if schemes.count(s) > 1:
            raise UserError(f"--schemes: {s!r} is named twice; name each scheme once")
    return list(schemes)


def _check_split(split: dict[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for line, value in (split or {}).items():
        if line not in BUDGET_LINES:
            raise UserError(f"--split: unknown budget line {line!r}; use {', '.join(BUDGET_LINES)}")
        try:
            out[f"budget_{line}"] = SPECS[f"budget_{line}"].check(value)
        except ParameterError as exc:
            raise UserError(f"--split {line}: {exc}") from None
    return out


def _extends_value(base: Scenario, schemes: list[str]) -> str:
    """How a scheme file names its base: the shipped name when that is unambiguous.

    A shipped scenario is named (portable); any other base, or one whose name is also a
    scheme file's name in the same folder (``extends`` would find the sibling), by its
    absolute path.
    """
    assert base.path is not None
    shipped = base.path.resolve().parent == SCENARIO_DIR.resolve()
    if shipped and base.name not in schemes:
        return base.name
    return str(base.path.resolve())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a TOML basic string: JSON's escapes are valid TOML


def _describe(scheme: str, p: Params, horizon: int, nominal: int, monthly: float,
              budget: float, shares: dict[str, float]) -> str:
    money = f"{monthly:,.2f} a month"
    if scheme == "fixed":
        text = (f"One grant of {p.grant_months} months from the start, then no more money: "
                f"the total of {budget:,.2f} is spread over {nominal} funded months ({money}).")
    elif scheme == "long_term":
        text = (f"One long grant of {p.long_grant_months} months from the start: the total of "
                f"{budget:,.2f} is spread over {nominal} funded months ({money}).")
    elif scheme == "rolling":
        text = (f"Grants of {p.grant_months} months renewed before they end, so every one of "
                f"the {horizon} months is funded: the total of {budget:,.2f} at {money}.")
    elif scheme == "short_cycles":
        text = (f"Grants of {p.grant_months} months with {p.gap_months}-month gaps between "
                f"them, each renewed with probability {p.renewal_probability:g}. The funder "
                f"sets aside the same {money} as rolling funding for all {horizon} months; "
                "money for months without a grant is not spent and is reported as unspent.")
    else:
        text = "No programme funding: no budget at all; a reference for what services add."
    if scheme != "none":
        split = ", ".join(f"{line.replace('_', ' ')} {100 * s:.0f}%" for line, s in shares.items())
        text += f" Budget split: {split}."
    return text


def _scheme_params(base: Scenario, schemes: list[str], budget: float, months: int,
                   weights: dict[str, float]) -> dict[str, tuple[Params, int, float]]:
    """Each scheme's parameters, nominal months and monthly budget (validated)."""
    out: dict[str, tuple[Params, int, float]] = {}
    for scheme in schemes:
        try:
            p = base.params.replace(funding_scheme=scheme, months=months, **weights)
        except ParameterError as exc:
            raise UserError(f"--split/--months: {exc}") from None
        nominal = nominal_months(scheme, p, months)
        monthly = budget / nominal if nominal else 0.0
        limit = SPECS["monthly_budget"].bounds[1]
        if monthly > limit:
            raise UserError(f"--budget {budget:g}: {scheme} would get {monthly:.3g} a month, "
                            f"above the model's limit of {limit:g}; give a smaller total")
        out[scheme] = (p.replace(monthly_budget=monthly), nominal, monthly)
    return out


def _write_scenarios(folder: Path, base: Scenario, schemes: dict[str, tuple[Params, int, float]],
                     budget: float, months: int, weights: dict[str, float]) -> list[Path]:
    """One scenario file per scheme (data: ``extends`` the base, sets the changes)."""
    extends = _extends_value(base, list(schemes))
    files = []
    for scheme, (p, nominal, monthly) in schemes.items():
        params: dict[str, Any] = {"funding_scheme": scheme, "months": months,
                                  "monthly_budget": monthly, **weights}
        title = f"{SCHEME_LABELS[scheme].capitalize()}, equal total budget"
        description = _describe(scheme, p, months, nominal, monthly, budget, p.budget_shares())
        lines = [f"title = {_toml_value(title)}",
                 f"description = {_toml_value(description)}",
                 f"extends = {_toml_value(extends)}", "", "[params]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in params.items()]
        path = folder / f"{scheme}.toml"
        path.write_text("# Written by 'reintegration whatif' (equal total budget).\n"
                        + "\n".join(lines) + "\n")
        loaded = load_scenario(str(path))
        if loaded.params != p:  # the file must say exactly what will be run
            raise RuntimeError(f"{path}: scenario file does not reproduce the scheme's parameters")
        files.append(path)
    return files


def budget_accounting(runs: pd.DataFrame, series: pd.DataFrame, allotted: dict[str, float],
                      nominal: dict[str, int]) -> pd.DataFrame:
    """The money of every run: allotted, spent and unspent, with the reasons.

    Args:
        runs: ``runs.csv`` of the comparison (one row per run, with every parameter).
        series: the long monthly series (``timeseries.parquet``) of the same runs; only
            the ``funded`` and ``vacancies`` variables are used.
        allotted: total allotted per scheme.
        nominal: nominal funded months per scheme.

    Returns:
        One row per run with the columns in :data:`RUN_BUDGET_COLUMNS`; ``spend +
        unspent == allotted`` and the three reasons sum to ``unspent``.
    """
    wanted = series[series["variable"].isin(["funded", "vacancies"])]
    per_run = wanted.pivot_table(index="run_id", columns="variable", values="value",
                                 aggfunc="sum")
    rows = []
    for r in runs.itertuples(index=False):
        scheme = str(r.scenario)
        funded = float(per_run.at[r.run_id, "funded"])
        vacancies = float(per_run.at[r.run_id, "vacancies"])
        monthly = float(r.monthly_budget) if nominal[scheme] else 0.0
        spend = float(r.total_spend)
        unspent = allotted[scheme] - spend
        unfunded = monthly * (nominal[scheme] - funded)
        vacant = float(r.salary) * vacancies if nominal[scheme] else 0.0
        rows.append({"scheme": scheme, "replicate": int(r.replicate), "seed": int(r.seed),
                     "allotted": allotted[scheme], "monthly_budget": monthly,
                     "nominal_months": nominal[scheme], "funded_months": int(round(funded)),
                     "spend": spend, "unspent": unspent, "unspent_unfunded_months": unfunded,
                     "unspent_vacancies": vacant,
                     "unspent_other": unspent - unfunded - vacant})
    return pd.DataFrame(rows, columns=list(RUN_BUDGET_COLUMNS))


def budget_table(per_run: pd.DataFrame, schemes: list[str]) -> pd.DataFrame:
    """Per scheme: the columns of :data:`BUDGET_COLUMNS` from :func:`budget_accounting`."""
    rows = []
    for scheme in schemes:
        g = per_run[per_run["scheme"] == scheme]
        allotted = float(g["allotted"].iloc[0])
        rows.append({
            "scheme": scheme, "allotted": allotted,
            "monthly_budget": float(g["monthly_budget"].iloc[0]),
            "nominal_months": int(g["nominal_months"].iloc[0]),
            "funded_months_mean": float(g["funded_months"].mean()),
            "funded_months_min": int(g["funded_months"].min()),
            "funded_months_max": int(g["funded_months"].max()),
            "spend_mean": float(g["spend"].mean()), "spend_min": float(g["spend"].min()),
            "spend_max": float(g["spend"].max()), "unspent_mean": float(g["unspent"].mean()),
            "unspent_unfunded_months_mean": float(g["unspent_unfunded_months"].mean()),
            "unspent_vacancies_mean": float(g["unspent_vacancies"].mean()),
            "unspent_other_mean": float(g["unspent_other"].mean()),
            "spend_share_mean": float((g["spend"] / allotted).mean()) if allotted else math.nan,
        })
    return pd.DataFrame(rows, columns=list(BUDGET_COLUMNS))


def check_budget(per_run: pd.DataFrame, budget: float) -> None:
    """Raise RuntimeError if the equal-total-budget rule is broken (a bug, not user error).

    Checks: every funded scheme is allotted exactly ``budget``; monthly budget x nominal
    months gives it back (to rounding); no run spends more than its allotment; spend plus
    unspent is the allotment; the reasons add up to the unspent money.
    """
    funded = per_run[per_run["nominal_months"] > 0]
    if not (funded["allotted"] == budget).all():
        raise RuntimeError("equal-total-budget rule broken: allotments differ between schemes")
    back = funded["monthly_budget"] * funded["nominal_months"]
    if not np.allclose(back, budget, rtol=1e-12, atol=0.0):
        raise RuntimeError("equal-total-budget rule broken: monthly budget x months != total")
    if (per_run["spend"] > per_run["allotted"] + SPEND_TOLERANCE).any():
        worst = per_run.loc[(per_run["spend"] - per_run["allotted"]).idxmax()]
        raise RuntimeError(f"{worst['scheme']} replicate {worst['replicate']} spent "
                           f"{worst['spend']:.2f}, more than its allotment {worst['allotted']:.2f}")
    reasons = per_run[["unspent_unfunded_months", "unspent_vacancies", "unspent_other"]].sum(axis=1)
    if not np.allclose(reasons, per_run["unspent"], rtol=0.0, atol=SPEND_TOLERANCE):
        raise RuntimeError("budget accounting: the reasons do not add up to the unspent money")


def _command(budget: float, months: int, schemes: list[str], split: dict[str, float] | None,
             replicates: int, seed: int, jobs: int | None, out: Path, base: str) -> str:
    parts = ["reintegration", "whatif", "--budget", f"{budget:.15g}", "--months", str(months),
             "--schemes", *schemes]
    if split:
        parts += ["--split", ",".join(f"{k}={v:g}" for k, v in split.items())]
    parts += ["--replicates", str(replicates), "--seed", str(seed), "--base", base,
              "--out", str(out)]
    if jobs is not None:
        parts += ["--jobs", str(jobs)]
    return shlex.join(parts)


def whatif(budget: float, months: int, schemes: list[str], split: dict[str, float] | None,
           replicates: int, seed: int, jobs: int | None, out: str | Path | None,
           base: str = "baseline") -> Path:
    """Run funding schemes on an equal total budget and common seeds; account for the money.

    Args:
        budget: the total budget over the horizon (currency units), the same for every
            funded scheme (see :data:`EQUAL_BUDGET_RULE`).
        months: the horizon H in months.
        schemes: funding schemes to compare; the first is the reference for paired
            differences.
        split: budget weights by line (casework, family, community, staff_support,
            monitoring); lines not given keep the base scenario's weights. Weights are
            relative and normalised to shares.
        replicates: runs per scheme; replicate ``i`` uses seed ``seed + i``.
        seed: first seed.
        jobs: worker processes (None: one per core; 1: serial).
        out: output folder (new or empty; None: a new folder under results/).
        base: scenario to start from (name or .toml path).

    Returns:
        The output folder (see the module docstring for its files).
    """
    if not (isinstance(budget, int | float) and math.isfinite(budget) and budget > 0):
        raise UserError(f"--budget {budget}: give a positive total, e.g. --budget 3600000")
    try:
        months = SPECS["months"].check(months)
    except ParameterError as exc:
        raise UserError(f"--months: {exc}") from None
    schemes = _check_schemes(list(schemes))
    weights = _check_split(split)
    if replicates < 1:
        raise UserError(f"--replicates {replicates}: need at least 1 (20 or more to separate "
                        "schemes)")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs {jobs}: need at least 1 worker process")
    base_scenario = load_scenario(base)
    if base_scenario.path is None:
        raise UserError(f"--base {base}: the base scenario must be a file")
    budget = float(budget)
    by_scheme = _scheme_params(base_scenario, schemes, budget, months, weights)
    out_dir = new_output_dir("whatif", out)
    command = _command(budget, months, schemes, split, replicates, seed, jobs, out_dir, base)

    with tempfile.TemporaryDirectory(prefix="whatif-scenarios-") as tmp:
        files = _write_scenarios(Path(tmp), base_scenario, by_scheme, budget, months, weights)
        compare([str(f) for f in files], replicates=replicates, seed=seed, jobs=jobs,
                out=out_dir)
        kept = out_dir / "scenarios"
        kept.mkdir()
        for f in files:
            shutil.copy2(f, kept / f.name)

    runs = pd.read_csv(out_dir / "runs.csv")
    series = pd.read_parquet(out_dir / "timeseries.parquet",
                             filters=[("variable", "in", ["funded", "vacancies"])])
    allotted = {s: (budget if by_scheme[s][1] else 0.0) for s in schemes}
    nominal = {s: by_scheme[s][1] for s in schemes}
    per_run = budget_accounting(runs, series, allotted, nominal)
    check_budget(per_run, budget)
    table = budget_table(per_run, schemes)
    table.to_csv(out_dir / "budget.csv", index=False)
    per_run.to_csv(out_dir / "budget_runs.csv", index=False)

    _rewrite_manifest(out_dir, command, budget, months, schemes, split, weights, base_scenario,
                      by_scheme)
    funded = [s for s in schemes if by_scheme[s][1]]
    _print_budget(table, budget, months, replicates,
                  by_scheme[funded[0]][0].budget_shares() if funded else {})
    return out_dir


def _rewrite_manifest(out_dir: Path, command: str, budget: float, months: int,
                      schemes: list[str], split: dict[str, float] | None,
                      weights: dict[str, float], base: Scenario,
                      by_scheme: dict[str, tuple[Params, int, float]]) -> None:
    """Turn the comparison's manifest into the what-if's (kind, rule, money, files)."""
    path = out_dir / "manifest.json"
    info = json.loads(path.read_text())
    scen_dir = out_dir / "scenarios"
    for entry in info.get("scenarios", []):
        scheme = entry["name"]
        p, nominal, monthly = by_scheme[scheme]
        entry["file"] = str(scen_dir / f"{scheme}.toml")
        entry["description"] = _describe(scheme, p, months, nominal, monthly, budget,
                                         p.budget_shares())
    files = [f for f in info.get("files", []) if f != "manifest.json"]
    info.update(
        kind="whatif", command=command, compare_command=info.get("command"),
        equal_budget_rule=EQUAL_BUDGET_RULE, total_budget=budget, horizon_months=months,
        schemes=schemes, split=split or {}, budget_weights={k: v for k, v in weights.items()},
        budget_shares={s: by_scheme[s][0].budget_shares() for s in schemes},
        base={"name": base.name, "title": base.title, "file": str(base.path)},
        nominal_months={s: by_scheme[s][1] for s in schemes},
        monthly_budget={s: by_scheme[s][2] for s in schemes},
        budget_columns=BUDGET_COLUMNS, budget_runs_columns=list(RUN_BUDGET_COLUMNS),
        files=[*files, "budget.csv", "budget_runs.csv", "scenarios/", "manifest.json"])
    write_json(path, info)


def _print_budget(table: pd.DataFrame, budget: float, months: int, replicates: int,
                  shares: dict[str, float]) -> None:
    from .cli import DISCLAIMER, print_table

    def money(v: float) -> str:
        return f"{v:,.0f}"

    print(f"\nMoney, equal total budget {money(budget)} over {months} months "
          f"(mean over {replicates} replicates; spend range in brackets)\n")
    rows = []
    for r in table.itertuples(index=False):
        rows.append((r.scheme, money(r.allotted), money(r.monthly_budget),
                     f"{r.funded_months_mean:.1f} of {months}",
                     f"{money(r.spend_mean)} ({money(r.spend_min)}–{money(r.spend_max)})",
                     money(r.unspent_mean), money(r.unspent_unfunded_months_mean),
                     money(r.unspent_vacancies_mean), money(r.unspent_other_mean)))
    print_table(rows, ("scheme", "allotted", "per month", "months funded", "spent",
                       "unspent", "...no grant", "...vacant posts", "...other"))
    if shares:
        print("\nBudget split used (weights normalised to shares): " + ", ".join(
            f"{line.replace('_', ' ')} {100 * s:.0f}%" for line, s in shares.items()))
    print("\nUnspent money is stated, not hidden: '...no grant' is money set aside for "
          "months without a grant (gaps, grants not renewed); '...vacant posts' is salary "
          "of posts left empty; '...other' is posts rounded to whole workers and support "
          "money not fully used. Wrote budget.csv, budget_runs.csv and scenarios/.")
    print(DISCLAIMER)
