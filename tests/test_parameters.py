"""Parameter validation: names, ranges, types, cross-field rules, and every bound runs."""

from __future__ import annotations

import math

import pytest

from model import DEFAULTS, SPECS, ParameterError, Params, ReintegrationModel, run
from model.parameters import BUDGET_LINES, FUNDING_SCHEMES

# Tiny runs for the bound sweep: enough to go through every process a few times.
TINY = {"n_children": 30, "months": 12}


# --- unknown names -----------------------------------------------------------------------
@pytest.mark.parametrize("wrong, nearest", [
    ("initial_stigm", "initial_stigma"),
    ("n_childen", "n_children"),
    ("fundng_scheme", "funding_scheme"),
    ("base_turnovr", "base_turnover"),
])
def test_unknown_name_rejected_with_nearest_valid_names(wrong, nearest):
    with pytest.raises(ParameterError) as err:
        Params.from_dict({wrong: 1})
    msg = str(err.value)
    assert repr(wrong) in msg, msg
    assert nearest in msg, f"nearest valid name {nearest!r} missing from: {msg}"
    assert "\n" not in msg, "messages are one line"


def test_unknown_name_rejected_by_model_and_run():
    with pytest.raises(ParameterError, match="initial_stigma"):
        ReintegrationModel(rng=1, initial_stigmaa=0.5)
    with pytest.raises(ParameterError, match="n_children"):
        run({"n_childrn": 10}, seed=1)


def test_unknown_name_without_near_match_still_rejected():
    with pytest.raises(ParameterError, match="unknown parameter 'zzzqqq'"):
        Params.from_dict({"zzzqqq": 1})


def test_origin_is_named_in_message():
    with pytest.raises(ParameterError, match=r"^scenario\.toml: "):
        Params.from_dict({"initial_stigma": 2.0}, origin="scenario.toml")


# --- ranges --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n, s in SPECS.items() if s.bounds is not None])
def test_out_of_range_rejected_naming_parameter_and_range(name):
    spec = SPECS[name]
    lo, hi = spec.bounds
    step = 1 if spec.type is int else max(1e-6, 0.01 * (hi - lo))
    for bad in (lo - step, hi + step):
        with pytest.raises(ParameterError) as err:
            Params(**{name: bad})
        msg = str(err.value)
        assert msg.startswith(f"{name}:"), msg
        assert "out of range" in msg, msg
        assert f"{lo} to {hi}" in msg, f"allowed range missing from: {msg}"


def test_defaults_are_inside_bounds_and_plausible_ranges_inside_bounds():
    for name, spec in SPECS.items():
        if spec.bounds is None:
            continue
        lo, hi = spec.bounds
        assert lo <= spec.default <= hi, name
        if spec.plausible is not None:
            plo, phi = spec.plausible
            assert lo <= plo <= phi <= hi, f"{name}: plausible {spec.plausible} outside {lo}-{hi}"


def test_every_parameter_documented():
    for name, spec in SPECS.items():
        assert spec.unit and spec.description and spec.provenance, name
    assert Params().to_dict() == DEFAULTS


# --- types -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, fragment", [
    ("months", "ten", "expected a whole number"),
    ("months", 2.5, "expected a whole number"),
    ("months", True, "expected a number"),
    ("initial_stigma", "high", "expected a number"),
    ("initial_stigma", None, "expected a number"),
    ("initial_stigma", float("nan"), "expected a finite number"),
    ("initial_stigma", float("inf"), "expected a finite number"),
    ("exit_strategy", "maybe", "expected true or false"),
    ("exit_strategy", 2, "expected true or false"),
    ("funding_scheme", 3, "expected text"),
    ("network_file", 5, "expected text"),
])
def test_wrong_types_rejected(name, value, fragment):
    with pytest.raises(ParameterError) as err:
        Params(**{name: value})
    msg = str(err.value)
    assert msg.startswith(f"{name}:") and fragment in msg, msg


def test_unknown_funding_scheme_suggests_nearest():
    with pytest.raises(ParameterError) as err:
        Params(funding_scheme="rollin")
    msg = str(err.value)
    assert "'rolling'" in msg and all(s in msg for s in FUNDING_SCHEMES), msg


def test_text_values_are_coerced_for_files_and_command_line():
    p = Params(months="24", initial_stigma="0.5", exit_strategy="yes", grant_months=18.0)
    assert (p.months, p.initial_stigma, p.exit_strategy, p.grant_months) == (24, 0.5, True, 18)
    assert isinstance(p.months, int) and isinstance(p.initial_stigma, float)
    assert Params(exit_strategy="false").exit_strategy is False


def test_params_are_frozen_and_replace_validates():
    p = Params()
    with pytest.raises(AttributeError):
        p.months = 5  # type: ignore[misc]
    assert p.replace(months=24).months == 24 and p.months == 120
    with pytest.raises(ParameterError, match="months"):
        p.replace(months=0)
    with pytest.raises(ParameterError, match="unknown parameter"):
        p.replace(monthz=24)


# --- cross-field rules --------------------------------------------------------------------
def test_budget_weights_all_zero_rejected():
    zero = {f"budget_{line}": 0.0 for line in BUDGET_LINES}
    with pytest.raises(ParameterError, match="budget"):
        Params(**zero)
    with pytest.raises(ParameterError, match="budget"):
        ReintegrationModel(rng=1, **TINY, **zero)


def test_budget_shares_normalised():
    p = Params(**{**{f"budget_{line}": 0.0 for line in BUDGET_LINES}, "budget_family": 0.25})
    shares = p.budget_shares()
    assert math.isclose(sum(shares.values()), 1.0)
    assert shares["family"] == 1.0 and shares["casework"] == 0.0
    shares = Params().budget_shares()
    assert math.isclose(sum(shares.values()), 1.0)
    assert shares["casework"] > shares["family"] > 0


def test_parameter_error_is_a_value_error():
    assert issubclass(ParameterError, ValueError)


# --- every bound runs ----------------------------------------------------------------------
# Parameters whose upper bound only sets the size of the run are tested at a feasible value
# instead of the bound itself (the validation of the bound is tested above):
# - n_children: 1_000_000 children is a size limit, not a behaviour; 2_000 exercises the
#   same code paths in well under a second.
# - monthly_budget: 1e9 a month funds ~775,000 professionals (600,000 caseworkers at the
#   default salary), minutes and gigabytes for no new behaviour; 1e6 (775 staff) is used.
# months (600), n_communities (1000) and households_per_child (20) are feasible with 30
# children and are tested at their real bounds.
FEASIBLE_UPPER = {"n_children": 2_000, "monthly_budget": 1e6}


def _bound_cases():
    cases = []
    for name, spec in SPECS.items():
        if spec.bounds is not None:
            lo, hi = spec.bounds
            cases.append(pytest.param(name, lo, id=f"{name}=lo"))
            cases.append(pytest.param(name, FEASIBLE_UPPER.get(name, hi), id=f"{name}=hi"))
        elif spec.choices is not None:
            cases += [pytest.param(name, c, id=f"{name}={c}") for c in spec.choices]
        elif spec.type is bool:
            cases += [pytest.param(name, v, id=f"{name}={v}") for v in (True, False)]
    return cases


@pytest.mark.parametrize("name, value", _bound_cases())
def test_every_bound_runs(name, value):
    kw = {**TINY, name: value}
    model = ReintegrationModel(rng=7, **kw).run()
    assert model.month == kw["months"]
    s = model.summary()
    n = s["children_total"]
    assert n == len(model.children) >= kw["n_children"]
    for key in ("stable_reintegration_rate", "unmet_need_share"):
        v = s[key]
        assert math.isnan(v) if n == 0 else 0.0 <= v <= 1.0, (key, v)
    ts = model.timeseries()
    assert len(ts) == kw["months"]


@pytest.mark.parametrize("exit_strategy", [True, False])
@pytest.mark.parametrize("scheme", FUNDING_SCHEMES)
def test_every_scheme_with_and_without_exit_strategy_runs(scheme, exit_strategy):
    r = run({**TINY, "months": 30, "funding_scheme": scheme, "exit_strategy": exit_strategy,
             "grant_months": 6, "gap_months": 2}, seed=3)
    assert len(r.timeseries) == 30
    if scheme == "none":
        assert r.timeseries["funded"].sum() == 0 and r.summary["total_spend"] == 0
    else:
        assert r.timeseries["funded"].sum() > 0 and r.summary["total_spend"] > 0
    if not exit_strategy:
        assert r.summary["handed_to_community"] == 0
