"""Scenario files and the command line: every shipped scenario loads and runs; a corpus
of broken files each fails with one clear line; `run` writes its documented outputs."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from experiments.cli import main
from experiments.scenarios import ScenarioError, load_scenario, scenario_names
from model import SPECS, ReintegrationModel

REQUIRED = ("baseline", "short_cycles", "long_term", "rolling", "no_funding", "high_stigma",
            "community_first", "staff_support", "boys_included", "generic_staff",
            "specialist_staff")


def test_all_required_scenarios_are_shipped():
    missing = set(REQUIRED) - set(scenario_names())
    assert not missing, f"missing scenario files: {sorted(missing)}"


@pytest.mark.parametrize("name", scenario_names())
def test_every_shipped_scenario_loads_documents_itself_and_runs(name):
    sc = load_scenario(name)
    assert sc.title and len(sc.description.split()) >= 15, "title and a real description"
    if name != "baseline":
        assert sc.overrides, f"{name} changes nothing from its parent"
    model = ReintegrationModel(rng=1, **sc.params.replace(n_children=60).to_dict())
    model.run(6)
    assert model.month == 6
    assert len(model.timeseries()) == 6


def test_scenarios_change_what_they_say():
    assert load_scenario("rolling").params.funding_scheme == "rolling"
    assert load_scenario("no_funding").params.funding_scheme == "none"
    assert load_scenario("long_term").params.long_grant_months == 60
    sc = load_scenario("short_cycles").params
    assert (sc.grant_months, sc.gap_months) == (12, 3) and sc.renewal_probability < 1
    assert load_scenario("high_stigma").params.initial_stigma > SPECS["initial_stigma"].default
    assert load_scenario("boys_included").params.boys_service_access == 1.0
    assert load_scenario("generic_staff").params.specialist_share == 0.0
    assert load_scenario("specialist_staff").params.specialist_share == 1.0
    base = load_scenario("baseline").params.budget_shares()
    cf = load_scenario("community_first").params.budget_shares()
    assert cf["family"] + cf["community"] > base["family"] + base["community"] + 0.1
    ss = load_scenario("staff_support").params.budget_shares()
    assert ss["staff_support"] > base["staff_support"]


BROKEN = {
    "unknown_key": ('title = "x"\n[params]\ninitial_stigm = 0.5\n', ["initial_stigm",
                                                                    "initial_stigma"]),
    "wrong_type": ('title = "x"\n[params]\ninitial_stigma = "high"\n',
                   ["initial_stigma", "number"]),
    "bool_for_number": ('title = "x"\n[params]\nn_children = true\n', ["n_children"]),
    "out_of_range": ('title = "x"\n[params]\ninitial_stigma = 1.5\n',
                     ["initial_stigma", "out of range", "0.0 to 1.0"]),
    "bad_choice": ('title = "x"\n[params]\nfunding_scheme = "rollin"\n',
                   ["funding_scheme", "rolling"]),
    "bad_extends": ('title = "x"\nextends = "baseline_typo"\n[params]\n',
                    ["extends", "baseline_typo", "baseline"]),
    "param_at_top": ('title = "x"\ninitial_stigma = 0.5\n', ["initial_stigma", "[params]"]),
    "unknown_top_key": ('title = "x"\ndescripton = "y"\n', ["descripton", "description"]),
    "syntax": ('title = "x\n[params\n', ["not valid TOML"]),
    "empty": ("", ["empty"]),
    "whitespace_only": ("   \n\n", ["empty"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_scenario_files_fail_with_one_clear_line(tmp_path, case):
    text, needles = BROKEN[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(str(path))
    msg = str(err.value)
    assert "\n" not in msg, "one line"
    assert str(path) in msg or case == "bad_extends", "names the file"
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_binary_junk_fails_clearly(tmp_path):
    path = tmp_path / "junk.toml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ScenarioError, match="not a text file"):
        load_scenario(str(path))


def test_cycle_in_extends_is_named(tmp_path):
    (tmp_path / "a.toml").write_text('title = "a"\nextends = "b"\n[params]\n')
    (tmp_path / "b.toml").write_text('title = "b"\nextends = "a"\n[params]\n')
    with pytest.raises(ScenarioError, match="cycle") as err:
        load_scenario(str(tmp_path / "a.toml"))
    assert "a -> b -> a" in str(err.value)


def test_extends_chain_applies_in_order(tmp_path):
    (tmp_path / "mid.toml").write_text(
        'title = "m"\nextends = "rolling"\n[params]\ninitial_stigma = 0.3\n')
    (tmp_path / "leaf.toml").write_text(
        'title = "l"\nextends = "mid"\n[params]\ninitial_stigma = 0.2\n')
    sc = load_scenario(str(tmp_path / "leaf.toml"))
    assert sc.params.funding_scheme == "rolling"
    assert sc.params.initial_stigma == 0.2
    assert sc.chain == ("baseline", "rolling", "mid")


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(str(tmp_path / "nope.toml"))
    with pytest.raises(ScenarioError, match="did you mean 'rolling'"):
        load_scenario("rollin")


def test_cli_user_errors_are_one_line_exit_2(tmp_path, capsys):
    cases = [
        ["run", "baselin"],
        ["run", "baseline", "--set", "initial_stigm=0.3"],
        ["run", "baseline", "--set", "initial_stigma=3"],
        ["run", "baseline", "--set", "initial_stigma"],
        ["check", str(tmp_path / "missing.toml")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, (argv, err)
        assert "Traceback" not in err


def test_cli_run_writes_documented_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "rolling", "--seed", "3", "--months", "24", "--set", "n_children=80",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "stable_reintegration_rate" in printed and "not a prediction" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("version", "git_commit", "parameters", "seed", "created"):
        assert key in manifest
    assert manifest["seed"] == 3 and manifest["parameters"]["n_children"] == 80
    summary = json.loads((out / "summary.json").read_text())
    assert "stable_reintegration_rate" in summary
    ts = pd.read_csv(out / "timeseries.csv")
    assert len(ts) == 24 and "n_in_care" in ts
    children = pd.read_csv(out / "children.csv")
    assert {"child_id", "caseworker_changes", "final_stage"} <= set(children.columns)
    events = pd.read_csv(out / "events.csv")
    assert list(events.columns) == ["month", "child_id", "from_stage", "to_stage", "cause"]
    # A folder holding results is never overwritten.
    assert main(["run", "rolling", "--out", str(out)]) == 2
    assert "already holds results" in capsys.readouterr().err


def test_cli_check_scenarios_and_params(capsys):
    assert main(["check", "scenarios/community_first.toml"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["scenarios"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in REQUIRED)
    assert main(["params"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in SPECS)


def test_console_script_is_installed():
    exe = __import__("pathlib").Path(sys.executable).parent / "reintegration"
    assert exe.exists(), "the 'reintegration' console command is installed with the package"
    res = subprocess.run([str(exe), "scenarios"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "rolling" in res.stdout
