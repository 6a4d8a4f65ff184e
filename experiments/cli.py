"""The ``reintegration`` command line.

Every subcommand reports a user's mistake as one line on stderr (exit code 2), never a
traceback. Results are scenario explorations under stated assumptions, not predictions.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from model.parameters import SPECS, ParameterError, unknown_message

from .errors import USER_ERRORS, UserError

DISCLAIMER = ("Scenario exploration with synthetic agents under stated assumptions: not a "
              "prediction about real children, not a basis for decisions about any child.")


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """Parse ``--set NAME=VALUE`` items, validating each against the parameter set."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set {item}: expected NAME=VALUE, e.g. --set initial_stigma=0.8")
        name, value = (s.strip() for s in item.split("=", 1))
        if name not in SPECS:
            raise ParameterError("--set " + unknown_message(name))
        try:
            out[name] = SPECS[name].check(value)
        except ParameterError as exc:
            raise ParameterError(f"--set {exc}") from None
    return out


def format_value(v: Any) -> str:
    """A number rounded for reading."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"
    return str(v)


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    """Print an aligned plain-text table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


# --- subcommands -------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """Run one scenario once and write its outputs."""
    from model import run

    from .manifest import manifest, new_output_dir, write_json
    from .scenarios import load_scenario

    scenario = load_scenario(args.scenario)
    overrides = parse_sets(args.set)
    params = scenario.params.replace(**overrides)
    if args.months is not None:
        params = params.replace(months=args.months)
    out = new_output_dir(f"run-{scenario.name}", args.out)
    result = run(params, seed=args.seed)
    write_json(out / "manifest.json", manifest(
        "reintegration " + shlex.join(sys.argv[1:]), scenario=scenario.name,
        scenario_file=str(scenario.path), seed=args.seed, parameters=params.to_dict(),
        funding_grants=[list(g) for g in result.funding_grants]))
    write_json(out / "summary.json", result.summary)
    result.timeseries.to_csv(out / "timeseries.csv", index=False)
    result.children.to_csv(out / "children.csv", index=False)
    result.events.to_csv(out / "events.csv", index=False)
    print(f"{scenario.title} (seed {args.seed}, {params.months} months)")
    print_table([(k, format_value(v)) for k, v in result.summary.items()], ("metric", "value"))
    print(f"\nWrote {out}/: manifest.json summary.json timeseries.csv children.csv events.csv")
    print(DISCLAIMER)
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    """List the shipped scenarios with their titles."""
    from .scenarios import list_scenarios

    print_table([(s.name, s.title) for s in list_scenarios()], ("scenario", "title"))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a scenario file."""
    from .scenarios import load_scenario

    s = load_scenario(args.file)
    changed = ", ".join(f"{k}={v}" for k, v in s.overrides.items()) or "no overrides"
    chain = f" (extends {' -> '.join(s.chain)})" if s.chain else ""
    print(f"OK: {s.path}: {s.title}{chain}; {changed}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    """Print the parameter table."""
    rows = []
    for s in SPECS.values():
        allowed = (f"{s.bounds[0]}–{s.bounds[1]}" if s.bounds else
                   "/".join(s.choices) if s.choices else "text" if s.type is str else "true/false")
        if args.group and s.group != args.group:
            continue
        rows.append((s.name, repr(s.default) if s.type is str else str(s.default), s.unit,
                     allowed, s.provenance if args.full else s.provenance[:60]))
    print_table(rows, ("name", "default", "unit", "allowed", "provenance"))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare scenarios on common seeds."""
    from .runner import compare

    compare(args.scenarios, replicates=args.replicates, seed=args.seed, jobs=args.jobs,
            out=args.out, months=args.months, overrides=parse_sets(args.set))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep spec (resumable, parallel, optionally on Dask)."""
    from .runner import sweep

    if args.scheduler and args.jobs:
        print("note: --jobs is ignored with --scheduler (the cluster's workers run the tasks)",
              file=sys.stderr)
    sweep(Path(args.spec), jobs=args.jobs, out=args.out, resume=args.resume,
          scheduler=args.scheduler)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Start the workshop dashboard in a browser-facing server."""
    from .dashboard import serve

    serve(host=args.host, port=args.port)
    return 0


def parse_split(text: str | None) -> dict[str, float] | None:
    """Parse ``casework=0.5,family=0.2,...`` into budget weights (validated)."""
    if not text:
        return None
    from model.parameters import BUDGET_LINES

    out: dict[str, float] = {}
    for item in text.split(","):
        if "=" not in item:
            raise UserError(f"--split {text}: expected LINE=SHARE pairs separated by commas, "
                            "e.g. casework=0.6,family=0.2,community=0.2")
        line, value = (x.strip() for x in item.split("=", 1))
        if line not in BUDGET_LINES:
            raise UserError(f"--split: unknown budget line {line!r}; use {', '.join(BUDGET_LINES)}")
        try:
            out[line] = SPECS[f"budget_{line}"].check(value)
        except ParameterError as exc:
            raise UserError(f"--split {line}: {exc}") from None
    return out


def cmd_whatif(args: argparse.Namespace) -> int:
    """Funding schemes on an equal total budget."""
    from .whatif import whatif

    whatif(budget=args.budget, months=args.months, schemes=args.schemes,
           split=parse_split(args.split), replicates=args.replicates, seed=args.seed,
           jobs=args.jobs, out=args.out, base=args.base)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Turn a results folder into a self-contained HTML (and PDF) report."""
    from .report import report

    report(Path(args.results_dir), out=args.out, pdf=args.pdf)
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """Global sensitivity analysis (Morris or Sobol, SALib)."""
    from .sensitivity import sensitivity

    sensitivity(Path(args.spec), method=args.method, jobs=args.jobs, out=args.out,
                resume=args.resume, scheduler=args.scheduler)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit uncertain parameters to observed figures (ABC-SMC)."""
    from .calibration import calibrate

    calibrate(Path(args.targets), jobs=args.jobs, out=args.out, scheduler=args.scheduler)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    p = argparse.ArgumentParser(
        prog="reintegration",
        description="Simulate the recovery and reintegration of children who have survived "
                    "sexual exploitation and trafficking. " + DISCLAIMER)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run one scenario once and write its outputs")
    r.add_argument("scenario", help="scenario name (see 'reintegration scenarios') or .toml path")
    r.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    r.add_argument("--months", type=int, help="horizon in months (default: the scenario's)")
    r.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override one parameter (repeatable)")
    r.add_argument("--out", help="output folder (default: a new folder under results/)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("scenarios", help="list the shipped scenarios")
    s.set_defaults(func=cmd_scenarios)

    c = sub.add_parser("check", help="validate a scenario file")
    c.add_argument("file")
    c.set_defaults(func=cmd_check)

    pa = sub.add_parser("params", help="print the parameter table")
    pa.add_argument("--group", help="only this group (e.g. funding, stigma)")
    pa.add_argument("--full", action="store_true", help="full provenance text")
    pa.set_defaults(func=cmd_params)

    cp = sub.add_parser("compare", help="compare scenarios on common seeds")
    cp.add_argument("scenarios", nargs="+", help="scenario names or files; the first is the "
                    "reference for paired differences")
    cp.add_argument("--replicates", type=int, default=10)
    cp.add_argument("--seed", type=int, default=0, help="first seed; replicate i uses seed+i")
    cp.add_argument("--jobs", type=int, default=None, help="worker processes (default: cores)")
    cp.add_argument("--months", type=int)
    cp.add_argument("--set", action="append", metavar="NAME=VALUE",
                    help="override one parameter in every scenario (repeatable)")
    cp.add_argument("--out")
    cp.set_defaults(func=cmd_compare)

    sw = sub.add_parser("sweep", help="run a sweep spec (.toml)")
    sw.add_argument("spec")
    sw.add_argument("--jobs", type=int, default=None)
    sw.add_argument("--out")
    sw.add_argument("--resume", action="store_true", help="finish an interrupted sweep in --out")
    sw.add_argument("--scheduler", help="Dask scheduler address (or set DASK_SCHEDULER_ADDRESS)")
    sw.set_defaults(func=cmd_sweep)

    w = sub.add_parser("whatif", help="funding schemes on an equal total budget")
    w.add_argument("--budget", type=float, required=True, help="total budget over the horizon")
    w.add_argument("--months", type=int, required=True, help="horizon in months")
    w.add_argument("--schemes", nargs="+", required=True, metavar="SCHEME",
                   help="funding schemes: fixed short_cycles long_term rolling none")
    w.add_argument("--split", help="budget split, e.g. casework=0.6,family=0.2,community=0.1,"
                   "staff_support=0.05,monitoring=0.05")
    w.add_argument("--replicates", type=int, default=20)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--jobs", type=int, default=None)
    w.add_argument("--base", default="baseline", help="scenario to start from")
    w.add_argument("--out")
    w.set_defaults(func=cmd_whatif)

    rp = sub.add_parser("report", help="HTML (and PDF) report of a results folder")
    rp.add_argument("results_dir")
    rp.add_argument("--out", help="HTML file (default: RESULTS_DIR/report.html)")
    rp.add_argument("--pdf", action="store_true", help="also print to PDF with Chromium")
    rp.set_defaults(func=cmd_report)

    se = sub.add_parser("sensitivity", help="Morris or Sobol sensitivity analysis")
    se.add_argument("spec")
    se.add_argument("--method", choices=("morris", "sobol"), default="morris")
    se.add_argument("--jobs", type=int, default=None)
    se.add_argument("--out")
    se.add_argument("--resume", action="store_true")
    se.add_argument("--scheduler")
    se.set_defaults(func=cmd_sensitivity)

    ca = sub.add_parser("calibrate", help="fit parameters to observed figures (ABC-SMC)")
    ca.add_argument("targets")
    ca.add_argument("--jobs", type=int, default=None)
    ca.add_argument("--out")
    ca.add_argument("--scheduler")
    ca.set_defaults(func=cmd_calibrate)

    d = sub.add_parser("dashboard", help="start the workshop dashboard (browser)")
    d.add_argument("--port", type=int, default=8765)
    d.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only)")
    d.set_defaults(func=cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``reintegration`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command in ("sweep", "sensitivity"):
            print("interrupted: finished runs are kept on disk; rerun the same command with "
                  "--resume to finish", file=sys.stderr)
        else:
            print("interrupted: nothing was finished; rerun the command", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
