"""The funder's report: one self-contained HTML page (and optionally a PDF) from a results folder.

``reintegration report RESULTS_DIR`` reads what ``compare``, ``whatif`` or ``sweep`` wrote
(the kind comes from ``manifest.json``, or from the files present) and renders
``templates/report.html.j2`` with Jinja2. Everything in the page is generated from the
results and from the model's own definitions (``model.parameters.SPECS``,
``model.outputs.SUMMARY_DEFINITIONS``); nothing is typed in by hand. Images are embedded
as base64 data URIs, so the single file can be forwarded by e-mail.

Every number shown from a result file sits in an element with ``data-metric``,
``data-scenario`` (or ``data-sample``/``data-param``), ``data-stat`` and ``data-value``
attributes; ``data-value`` holds the exact value from the file, so tests (and sceptical
readers) can check the page against the files.

A difference is called "likely" only when the 95% interval of the paired difference
(``comparison.csv``, column ``likely``) excludes zero. The report only reads results:
a missing or damaged file is a one-line :class:`~experiments.errors.UserError` that
names the file and the fix.

PDF output prints the HTML with headless Chromium (``--pdf``).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from model.outputs import SUMMARY_DEFINITIONS, SUSTAINABILITY_MONTHS
from model.parameters import ASSUMPTION, SPECS

from .errors import UserError
from .runner import COMPARISON_COLUMNS, KEY_METRICS, t_interval

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html.j2"

ETHICS = ("These are scenario explorations under stated assumptions with synthetic agents; "
          "they are not predictions about real children, and not a basis for decisions about "
          "an individual child.")

SENSITIVITY_COMMAND = "reintegration sensitivity experiments/morris-smoke.toml --method morris"

# metric -> (plain-language label, kind). The kind decides rounding and units (see fmt).
METRICS: dict[str, tuple[str, str]] = {
    "stable_reintegration_rate": ("Children stably reintegrated at the end (all children)",
                                  "share"),
    "stable_reintegration_rate_assisted": ("Children stably reintegrated at the end (children "
                                           "who were ever in care)", "share"),
    "premature_exits": ("Care ended before the child was ready because funding stopped "
                        "(times)", "count"),
    "worse_off_after_withdrawal_share": ("Children whose care ended early who are worse off "
                                         "than when they entered care", "share"),
    "handed_to_community": ("Children handed to community care committees when funding "
                            "stopped", "count"),
    "unmet_need_share": ("Children never given a place in care (unmet need)", "share"),
    "never_identified_share": ("Children never identified", "share"),
    "re_exploitation_per_100_child_years": ("Re-exploitation per 100 years that children "
                                            "spent back in the community", "rate"),
    "sustained_after_funding_end": (f"Children not re-exploited in the {SUSTAINABILITY_MONTHS}"
                                    " months after funding ended", "share"),
    "cost_per_stable_reintegration": ("Cost per child stably reintegrated after care "
                                      "(currency units)", "money"),
    "total_spend": ("Money spent over the whole period (currency units)", "money"),
    "staff_turnover_annual": ("Staff turnover: resignations per 100 staff a year", "per100"),
    "contracts_ended": ("Staff contracts ended because funding stopped", "count"),
    "mean_community_stigma_end": ("Community stigma at the end (0 none, 1 complete blame "
                                  "and shame)", "index"),
    "median_months_to_reintegration": ("Months from entering exploitation to stable "
                                       "reintegration (median)", "count"),
}
"""Metrics shown in the report, in order, with their labels; definitions are in
``model.outputs.SUMMARY_DEFINITIONS``."""

SWEEP_METRICS = ("stable_reintegration_rate", "premature_exits", "unmet_need_share",
                 "cost_per_stable_reintegration", "staff_turnover_annual",
                 "sustained_after_funding_end")
"""The metrics a sweep report tabulates (fewer than a comparison: one column each)."""

NUMERIC_COMPARISON = ("n", "mean", "sd", "ci_low", "ci_high", "p2_5", "p97_5", "diff_n",
                      "diff_mean", "diff_sd", "diff_ci_low", "diff_ci_high")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the last chunk of every complete PNG
MINUS = "\u2212"


# --- formatting ------------------------------------------------------------------------------
def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def fmt(value: Any, kind: str, signed: bool = False) -> str:
    """A number rounded for a funder, without its unit.

    Shares become whole percentages (0.613 -> "61"), money three significant figures
    ("24,200", "1.23 million"), counts and rates whole numbers from 10 up and one decimal
    below, ``per100`` a rate per 100 (0.241 -> "24"), ``index`` two decimals. NaN is
    "–". With ``signed``, positive values get "+" and negative ones a true minus sign.

    Args:
        value: the number.
        kind: one of share, money, count, rate, per100, index.
        signed: show the sign (for differences).
    """
    if not _finite(value):
        return "–"
    v = float(value)
    if kind in ("share", "per100"):
        v = 100.0 * v
    if kind == "money":
        r = float(f"{v:.3g}")
        text = (f"{abs(r) / 1e6:.3g} million" if abs(r) >= 1e6 else
                f"{abs(r):,.0f}" if abs(r) >= 100 else f"{abs(r):.3g}")
    elif kind == "index":
        r = round(v, 2)
        text = f"{abs(r):.2f}"
    elif kind in ("share", "per100") or abs(v) >= 9.95:
        r = float(round(v))
        text = f"{abs(r):,.0f}"
    else:
        r = round(v, 1)
        text = f"{abs(r):.1f}"
    if r == 0:
        return "0" if kind != "index" else "0.00"
    if r < 0:
        return MINUS + text
    return ("+" if signed else "") + text


def unit(kind: str, diff: bool = False) -> str:
    """The unit written after a number of this kind ("%" or " percentage points", ...)."""
    if kind == "share":
        return " percentage points" if diff else "%"
    return ""


def num(value: Any, kind: str, *, stat: str, signed: bool = False, **attrs: Any) -> Markup:
    """A number in a span carrying its exact value and where it came from.

    Args:
        value: the exact value from the result file.
        kind: formatting kind (see :func:`fmt`).
        stat: which statistic (``mean``, ``ci_low``, ``diff_mean``, ...).
        signed: format with a sign (differences).
        **attrs: more ``data-*`` attributes (``metric``, ``scenario``, ``sample``, ...).
    """
    exact = repr(float(value)) if _finite(value) else "nan"
    extra = "".join(f' data-{k.replace("_", "-")}="{escape(str(v))}"' for k, v in attrs.items())
    return Markup(f'<span class="num" data-stat="{escape(stat)}" data-kind="{kind}"'
                  f'{extra} data-value="{exact}">{escape(fmt(value, kind, signed))}</span>')


def interval(row: Any, kind: str, low: str = "ci_low", high: str = "ci_high", *,
             diff: bool = False, **attrs: Any) -> Markup:
    """"58–64%" (or "−4 to +13" for differences), or "" without an interval."""
    if not (_finite(row[low]) and _finite(row[high])) or row[low] == row[high]:
        return Markup("")  # no interval, or every run gave the same value
    a = num(row[low], kind, stat=low, signed=diff, **attrs)
    b = num(row[high], kind, stat=high, signed=diff, **attrs)
    if diff or float(row[low]) < 0:  # a dash between negative numbers would read as minus
        return Markup(f"{a} to {b}{'' if diff else escape(unit(kind))}")
    return Markup(f"{a}–{b}{escape(unit(kind))}")


def horizon_text(months: int) -> str:
    """'10 years' for whole years, else '40 months'."""
    if months % 12 == 0:
        years = months // 12
        return f"{years} year{'s' if years != 1 else ''}"
    return f"{months} months"


def seeds_text(seeds: Sequence[int]) -> str:
    """'0–19' for a run of consecutive seeds, else the list."""
    seeds = list(seeds)
    if not seeds:
        return "none recorded"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)} seeds; replicate i uses seed {seeds[0]} + i)"
    return ", ".join(str(s) for s in seeds)


def _join(items: Sequence[Markup | str]) -> Markup:
    items = [escape(i) for i in items]
    if len(items) <= 1:
        return Markup("").join(items)
    return Markup(", ").join(items[:-1]) + Markup(" and ") + items[-1]


# --- tables for the template ------------------------------------------------------------------
@dataclass
class Table:
    """A table for the template: header cells and rows of ((html, css class) cells, row class)."""

    header: list[str]
    rows: list[tuple[list[tuple[Markup, str]], str]] = field(default_factory=list)
    caption: str = ""
    note: Markup | str = ""
    css: str = ""

    def add(self, *cells: Any, row_class: str = "") -> None:
        """Append a row; a cell is a value or a (value, css class) pair."""
        row = []
        for c in cells:
            content, cls = c if isinstance(c, tuple) else (c, "")
            row.append((escape(content), cls))
        self.rows.append((row, row_class))


# --- reading results (every failure is one line naming the file and the fix) -------------------
@dataclass
class Folder:
    """A results folder being read: its path, manifest, kind and the fix for damage."""

    path: Path
    manifest: dict[str, Any]
    kind: str

    @property
    def fix(self) -> str:
        """What to do about a missing or damaged file."""
        what = {"compare": "rerun the comparison", "whatif": "rerun the what-if",
                "sweep": "rerun the sweep"}[self.kind]
        command = self.manifest.get("command")
        return f"{what} into a new folder" + (f" ({command})" if command else "")

    def file(self, name: str) -> Path:
        """The path of a file the report needs, or a UserError if it is missing."""
        p = self.path / name
        if not p.is_file():
            raise UserError(f"{p}: missing; the report needs it; {self.fix}")
        return p


def _detect_kind(path: Path, manifest: dict[str, Any]) -> str:
    kind = manifest.get("kind")
    if kind in ("compare", "whatif", "sweep"):
        return kind
    if kind is not None:
        raise UserError(f"{path / 'manifest.json'}: results of kind {kind!r}; the report reads "
                        "the folders of 'compare', 'whatif' and 'sweep'")
    if (path / "budget.csv").exists():
        return "whatif"
    if (path / "comparison.csv").exists():
        return "compare"
    if (path / "results.parquet").exists() or (path / "spec.toml").exists():
        return "sweep"
    raise UserError(f"{path}: not a results folder of compare, whatif or sweep (no "
                    "comparison.csv, budget.csv or results.parquet)")


def open_folder(path: Path) -> Folder:
    """Read ``manifest.json`` and decide what kind of results the folder holds."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such results folder; give the folder written by "
                        "'reintegration compare', 'whatif' or 'sweep'")
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise UserError(f"{mpath}: missing; every results folder has one; rerun the "
                        "comparison, what-if or sweep into a new folder")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{mpath}: not a text file (damaged); rerun the comparison, what-if or "
                        "sweep into a new folder") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{mpath}: not valid JSON (line {exc.lineno}: {exc.msg}); the file is "
                        "damaged; rerun the comparison, what-if or sweep into a new folder"
                        ) from None
    if not isinstance(manifest, dict):
        raise UserError(f"{mpath}: not a results manifest (expected a JSON object); rerun the "
                        "comparison, what-if or sweep into a new folder")
    folder = Folder(path, manifest, _detect_kind(path, manifest))
    for name in manifest.get("files", []) or []:
        if isinstance(name, str) and not name.endswith("/") and not (path / name).is_file():
            raise UserError(f"{path / name}: listed in manifest.json but missing; {folder.fix}")
    return folder


def read_csv(folder: Folder, name: str, required: Sequence[str],
             numeric: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV the report needs, checking its columns and numbers."""
    path = folder.file(name)
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError,
            OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: cannot be read ({reason}); the file is damaged; "
                        f"{folder.fix}") from None
    return check_table(path, df, required, numeric, folder.fix)


def check_table(path: Path, df: pd.DataFrame, required: Sequence[str], numeric: Sequence[str],
                fix: str) -> pd.DataFrame:
    """Check a table's columns, emptiness and numeric columns; return it with numbers.

    Args:
        path: the file the table came from (for messages).
        df: the table.
        required: columns it must have.
        numeric: columns that must hold only numbers (or be empty).
        fix: what the user should do if the table is damaged.
    """
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserError(f"{path}: damaged or not the expected table (missing columns: "
                        f"{', '.join(missing[:5])}); {fix}")
    if df.empty:
        raise UserError(f"{path}: has no rows (damaged or truncated); {fix}")
    df = df.copy()
    for c in numeric:
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() & df[c].notna()
        if bad.any():
            raise UserError(f"{path}: column {c} holds text where numbers belong (row "
                            f"{int(np.flatnonzero(bad.to_numpy())[0]) + 2}); the file is damaged; "
                            f"{fix}")
        df[c] = values.astype(float)
    return df


def read_parquet(folder: Folder, name: str, required: Sequence[str],
                 **kwargs: Any) -> pd.DataFrame:
    """Read a Parquet file the report needs (any read failure is one line)."""
    path = folder.file(name)
    try:
        df = pd.read_parquet(path, **kwargs)
    except Exception as exc:  # noqa: BLE001  (pyarrow raises many types for a damaged file)
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: cannot be read ({reason}); the file is damaged; "
                        f"{folder.fix}") from None
    return check_table(path, df, required, (), folder.fix)


def image(folder: Folder, name: str) -> str:
    """A PNG from the folder as a data URI (checked to be a PNG)."""
    path = folder.file(name)
    data = path.read_bytes()
    if not (data.startswith(PNG_SIGNATURE) and data.endswith(PNG_END)):
        raise UserError(f"{path}: not a PNG image (damaged or truncated); {folder.fix}")
    return png_uri(data)


def png_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return png_uri(buf.getvalue())


def read_comparison(folder: Folder, scenarios: list[str], runs: pd.DataFrame) -> pd.DataFrame:
    """``comparison.csv``, checked for completeness and against ``runs.csv``."""
    path = folder.path / "comparison.csv"
    table = read_csv(folder, "comparison.csv", list(COMPARISON_COLUMNS), NUMERIC_COMPARISON)
    likely = table["likely"].map(lambda v: {"True": True, "False": False}.get(str(v)))
    if likely.isna().any():
        row = int(np.flatnonzero(likely.isna().to_numpy())[0]) + 2
        raise UserError(f"{path}: column likely must be True or False (row {row}); the file "
                        f"is damaged or truncated; {folder.fix}")
    table["likely"] = likely.astype(bool)
    found = list(dict.fromkeys(table["scenario"].astype(str)))
    if sorted(found) != sorted(scenarios):
        raise UserError(f"{path}: scenarios {', '.join(found)} do not match manifest.json "
                        f"({', '.join(scenarios)}); {folder.fix}")
    metrics = set(table.loc[table["scenario"] == scenarios[0], "metric"])
    for sc in scenarios:
        have = table.loc[table["scenario"] == sc, "metric"]
        if set(have) != metrics or have.duplicated().any():
            raise UserError(f"{path}: incomplete (scenario {sc} lacks some metrics); the file "
                            f"is damaged or truncated; {folder.fix}")
    if "stable_reintegration_rate" not in metrics:
        raise UserError(f"{path}: has no stable_reintegration_rate rows; {folder.fix}")
    # The table must summarise exactly the runs in runs.csv.
    for metric in metrics:
        if metric not in runs.columns:
            raise UserError(f"{folder.path / 'runs.csv'}: lacks the column {metric} that "
                            f"comparison.csv summarises; {folder.fix}")
        for sc in scenarios:
            x = pd.to_numeric(runs.loc[runs["scenario"] == sc, metric], errors="coerce")
            x = x[np.isfinite(x)]
            row = table[(table["scenario"] == sc) & (table["metric"] == metric)].iloc[0]
            mean = float(x.mean()) if len(x) else math.nan
            same = (math.isnan(mean) and not _finite(row["mean"])) or (
                _finite(row["mean"]) and math.isclose(mean, row["mean"], rel_tol=1e-9,
                                                      abs_tol=1e-12))
            if not same or len(x) != row["n"]:
                raise UserError(f"{path}: does not match runs.csv ({metric}, {sc}); one of them "
                                f"was changed or comes from other runs; {folder.fix}")
    return table


def sensitivity_section(path: Path) -> dict[str, Any]:
    """The 'most sensitive assumptions' section, from a sensitivity analysis if one exists.

    Looks for ``learning_agenda.csv`` in the results folder (or its ``sensitivity/``
    subfolder), else ``sensitivity_indices.csv``. The table needs columns ``metric`` and
    ``parameter`` and one measure: ``importance`` (with ``importance_measure`` naming it,
    as ``reintegration sensitivity`` writes), ``share_of_variance``, ``ST`` or
    ``mu_star``; ``rank``, ``provenance`` and ``above_noise`` are used when present.
    """
    measures = {"importance": ("importance", "share"),
                "share_of_variance": ("share of the variation explained", "share"),
                "ST": ("total-order index (share of variance)", "share"),
                "mu_star": ("mean absolute elementary effect (mu*)", "index")}
    candidates = ("learning_agenda.csv", "sensitivity/learning_agenda.csv",
                  "sensitivity_indices.csv")
    for name in candidates:
        p = path / name
        if not p.is_file():
            continue
        fix = ("rerun the sensitivity analysis (" + SENSITIVITY_COMMAND + ") or remove the file")
        try:
            df = pd.read_csv(p)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError,
                OSError):
            raise UserError(f"{p}: cannot be read (damaged); {fix}") from None
        measure = next((m for m in measures if m in df.columns), None)
        if measure is None or not {"metric", "parameter"} <= set(df.columns) or df.empty:
            raise UserError(f"{p}: not a sensitivity table (needs columns metric, parameter and "
                            f"one of {', '.join(measures)}); {fix}")
        df = check_table(p, df, ["metric", "parameter"],
                         [measure, *(["rank"] if "rank" in df.columns else [])], fix)
        if "rank" not in df.columns:
            df["rank"] = df.groupby("metric")[measure].rank(ascending=False, method="first")
        label, kind = measures[measure]
        if measure == "importance" and "importance_measure" in df.columns:
            label = str(df["importance_measure"].dropna().iloc[0]) if df[
                "importance_measure"].notna().any() else label
        noise = (df["above_noise"].map(lambda v: str(v) == "True") if "above_noise" in df.columns
                 else pd.Series(True, index=df.index))
        df = df.assign(above=noise)
        table = Table(["Result", "Rank", "Assumption (parameter)", label[:1].upper() + label[1:],
                       "Where the value comes from"],
                      caption="The assumptions the results depend on most, by result (top 5)",
                      note="Marked 'within noise': the effect is not larger than the model's "
                           "run-to-run variation, so its rank means little.")
        position = [list(METRICS).index(str(x)) if str(x) in METRICS else len(METRICS)
                    for x in df["metric"]]  # the report's own order of results
        ordered = df.assign(_order=position)
        ordered = ordered.sort_values(["_order", "metric", "rank"], kind="stable")
        for metric, g in ordered.groupby("metric", sort=False):
            for i, r in enumerate(g.head(5).itertuples(index=False)):
                spec = SPECS.get(str(r.parameter))
                prov = getattr(r, "provenance", None)
                if not isinstance(prov, str) or not prov:
                    prov = spec.provenance if spec else ""
                desc = spec.description if spec else ""
                value = num(getattr(r, measure), kind, stat=measure, metric=metric,
                            parameter=r.parameter) + (unit(kind) if kind == "share" else "")
                if not r.above:
                    value += Markup(" <small>(within noise)</small>")
                first = METRICS.get(str(metric), (str(metric), ""))[0] if i == 0 else ""
                table.add(first, f"{int(r.rank)}",
                          Markup("<code>{}</code><br><small>{}</small>").format(r.parameter, desc),
                          value, prov)
        sentences = []
        for metric, g in ordered.groupby("metric", sort=False):
            label_m = METRICS.get(str(metric), (str(metric), ""))[0]
            top = g[g["above"]].head(3)
            if top.empty:
                sentences.append(Markup("{}: no assumption stood out from run-to-run "
                                        "noise.").format(label_m))
            else:
                sentences.append(Markup("{}: most sensitive to {}.").format(label_m, _join(
                    [Markup("<code>{}</code>").format(x) for x in top["parameter"]])))
        text = Markup(" ").join(sentences)
        return {"available": True, "table": table, "text": text, "source": name}
    return {"available": False, "table": None, "source": None,
            "text": Markup("No sensitivity analysis was run for these results, so this report "
                           "cannot say which assumptions the conclusions depend on most. To "
                           "find out, run <code>{}</code> and put its "
                           "<code>learning_agenda.csv</code> into this folder before building "
                           "the report.").format(SENSITIVITY_COMMAND)}


# --- shared sections ------------------------------------------------------------------------------
def parameter_table(columns: dict[str, dict[str, Any]], varied: dict[str, list[Any]] | None = None
                    ) -> tuple[Table, Table]:
    """The full parameter table with provenance, and the table of what differs from defaults.

    Args:
        columns: per column heading (a scenario), the full parameter values.
        varied: for a sweep, the values each swept parameter takes.
    """
    varied = varied or {}
    heads = list(columns)
    full = Table(["Parameter", "Unit", "Default", *heads, *(["Swept values"] if varied else []),
                  "Where the value comes from"], css="params",
                 caption="Every parameter of the model; values that differ from the default "
                         "are highlighted")
    changed = Table(["Parameter", "Default", *heads, *(["Swept values"] if varied else [])],
                    caption="What the scenarios change from the model's defaults")
    for name, spec in SPECS.items():
        values = [columns[h].get(name, spec.default) for h in heads]
        differs = [v != spec.default for v in values]
        swept: list[tuple[str, str]] = []
        if varied:
            swept = [(", ".join(_show(v) for v in varied[name]), "differs") if name in varied
                     else ("", "")]
        label = Markup("<code>{}</code><br><small>{}</small>").format(name, spec.description)
        cells = [(_show(v), "differs" if d else "") for v, d in zip(values, differs, strict=True)]
        flagged = any(differs) or name in varied
        full.add(label, spec.unit, _show(spec.default), *cells, *swept, spec.provenance,
                 row_class="changed" if flagged else "")
        if flagged:
            changed.add(label, _show(spec.default), *cells, *swept)
    return full, changed


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) >= 1000 else f"{v:.6g}"
    if isinstance(v, str):
        return v if v else "(none)"
    return str(v)


def reproduce_rows(folder: Folder, seeds: Sequence[int], replicates: Any) -> list[tuple[str, Any]]:
    """How to reproduce: command, version, commit, seeds, and how to rebuild this report."""
    m = folder.manifest
    commit = str(m.get("git_commit", "unknown"))
    rows: list[tuple[str, Any]] = [
        ("Command that made these results", Markup("<code>{}</code>").format(m.get("command", "?"))),
        ("Package and version", f"{m.get('package', 'reintegration-sim')} {m.get('version', '?')}"),
        ("Code version (git commit)", commit + (
            " (the code had uncommitted changes when these results were made)"
            if commit.endswith("+dirty") else "")),
        ("Seeds", seeds_text(seeds)),
        ("Replicates", str(replicates)),
        ("Made", f"{m.get('created', '?')} with Python {m.get('python', '?')}"),
    ]
    if m.get("executor"):
        rows.append(("Ran on", f"{m['executor']}" + (f", {m['elapsed_seconds']} s"
                                                     if m.get("elapsed_seconds") else "")))
    if m.get("interval_method"):
        rows.append(("Intervals", m["interval_method"]))
    rows.append(("Rebuild this report",
                 Markup("<code>reintegration report {}</code>").format(folder.path)))
    return rows


def limitations(n_children: Any, replicates: Any, months: Any, extra: Sequence[str] = ()) -> list[str]:
    """Limitations generated from the parameter definitions and the run's size."""
    assumed = sum(1 for s in SPECS.values() if s.provenance == ASSUMPTION)
    partly = sum(1 for s in SPECS.values() if ASSUMPTION in s.provenance and s.provenance != ASSUMPTION)
    return [
        f"All children, families, communities and workers are synthetic agents (a district of "
        f"{n_children} children at the start); no real child's data is used.",
        f"{assumed} of the model's {len(SPECS)} parameters are assumptions with no direct "
        f"empirical source, and {partly} more take their size from an assumption (see the "
        "parameter table). The conclusions hold only as far as these assumptions do.",
        f"Each scenario was run {replicates} times on the same seeds. The 95% intervals show "
        "run-to-run variation in the model, not uncertainty about the assumptions themselves; "
        "the sensitivity section addresses that.",
        "'Likely' means only that a difference is unlikely to be run-to-run chance in the model "
        "under its assumptions; it is not evidence about real programmes.",
        f"Nothing after month {months} is simulated: what happens to children later is unknown "
        f"to the model. Sustainability is measured only where funding ended at least "
        f"{SUSTAINABILITY_MONTHS} months before the end.",
        "Unless the scenario descriptions say otherwise, the parameters are not calibrated to "
        "observed data from a particular place.",
        *extra,
    ]


def definitions(metrics: Sequence[str]) -> list[tuple[str, str]]:
    """(label, exact definition) of each metric shown."""
    shown_as = {"share": " Shown as a percentage.",
                "per100": " Shown per 100 staff a year (the rate times 100)."}
    return [(METRICS[m][0], SUMMARY_DEFINITIONS[m].replace("`", "")
             + shown_as.get(METRICS[m][1], ""))
            for m in metrics if m in SUMMARY_DEFINITIONS and m in METRICS]


# --- compare and what-if ----------------------------------------------------------------------
def _display_names(folder: Folder, names: list[str], parameters: dict[str, dict[str, Any]],
                   titles: dict[str, str]) -> dict[str, str]:
    """Plain names: a what-if scheme by its grants, a scenario by its title's first part."""
    out: dict[str, str] = {}
    for name in names:
        p = parameters.get(name, {})
        if folder.kind == "whatif":
            g, long = p.get("grant_months", "?"), p.get("long_grant_months", "?")
            out[name] = {"fixed": f"one {g}-month grant", "long_term": f"one {long}-month grant",
                         "rolling": "rolling funding",
                         "short_cycles": f"{g}-month grants with gaps",
                         "none": "no funding"}.get(name, name.replace("_", " "))
        else:
            title = titles.get(name, "")
            out[name] = title.split(":")[0].strip() if title else name.replace("_", " ")
    if len(set(out.values())) < len(out):
        out = {n: n.replace("_", " ") for n in names}
    return out


class Comparison:
    """Look-ups into comparison.csv and number spans for one metric and scenario."""

    def __init__(self, table: pd.DataFrame, names: list[str], display: dict[str, str]):
        self.by = {(r["scenario"], r["metric"]): r for _, r in table.iterrows()}
        self.names = names
        self.ref = names[0]
        self.display = display
        self.metrics = [m for m in METRICS if (names[0], m) in self.by]

    def row(self, sc: str, metric: str) -> pd.Series:
        """The row of comparison.csv for a scenario and metric."""
        return self.by[(sc, metric)]

    def mean(self, sc: str, metric: str) -> Markup:
        """The mean with its unit ("61%")."""
        kind = METRICS[metric][1]
        v = self.row(sc, metric)["mean"]
        return num(v, kind, stat="mean", metric=metric, scenario=sc) + (
            unit(kind) if _finite(v) else "")

    def mean_ci(self, sc: str, metric: str, words: bool = False) -> Markup:
        """'61% (95% interval 58–64%)' or, shorter, '61% (58–64%)'."""
        row = self.row(sc, metric)
        ci = interval(row, METRICS[metric][1], metric=metric, scenario=sc)
        if not ci:
            return self.mean(sc, metric)
        return self.mean(sc, metric) + Markup(" ({}{})").format(
            "95% interval " if words else "", ci)

    def diff(self, sc: str, metric: str) -> Markup:
        """'+5 percentage points (95% interval −4 to +13)'."""
        row = self.row(sc, metric)
        kind = METRICS[metric][1]
        d = num(row["diff_mean"], kind, stat="diff_mean", signed=True, metric=metric, scenario=sc)
        ci = interval(row, kind, "diff_ci_low", "diff_ci_high", diff=True, metric=metric,
                      scenario=sc)
        text = d + unit(kind, diff=True)
        return text + (Markup(" (95% interval {})").format(ci) if ci else "")

    def likely(self, sc: str, metric: str) -> bool:
        """True when the paired 95% interval excludes zero (comparison.csv's ``likely``)."""
        return bool(self.row(sc, metric)["likely"])

    def verdict(self, sc: str, metric: str) -> Markup:
        """'likely' or 'not clear' badge with the exact flag from comparison.csv."""
        flag = self.likely(sc, metric)
        word = "likely" if flag else "not clear"
        return Markup('<span class="badge {}" data-metric="{}" data-scenario="{}" '
                      'data-stat="likely" data-value="{}">{}</span>').format(
            "likely" if flag else "unclear", metric, sc, flag, word)

    def each(self, metric: str, words: bool = False,
             when_missing: str = "not measured") -> Markup:
        """'12 (10–14) with A, 0 with B'."""
        parts = []
        for sc in self.names:
            if not _finite(self.row(sc, metric)["mean"]):
                parts.append(Markup("{} with {}").format(when_missing, self.display[sc]))
            else:
                parts.append(Markup("{} with {}").format(self.mean_ci(sc, metric, words),
                                                        self.display[sc]))
        return _join(parts)


def _findings(c: Comparison, horizon: str, money: dict[str, Any] | None) -> list[Markup]:
    """The headline findings, generated sentence by sentence."""
    out: list[Markup] = []
    m = "stable_reintegration_rate"
    ref = c.ref
    others = c.names[1:]
    if not others:
        out.append(Markup("{}: {} of all children stably reintegrated at {}.").format(
            c.display[ref], c.mean_ci(ref, m, words=True), horizon))
    for sc in others:
        head = Markup("<strong>{}</strong>: {} of all children stably reintegrated at {}, "
                      "against {} with {}.").format(
            c.display[sc], c.mean_ci(sc, m, words=True), horizon, c.mean_ci(ref, m),
            c.display[ref])
        if not _finite(c.row(sc, m)["diff_mean"]):
            tail = Markup("")
        elif c.likely(sc, m):
            tail = Markup(" The difference on matched runs, {}, is {}: its interval excludes "
                          "zero, so it is unlikely to be run-to-run chance.").format(
                c.diff(sc, m), c.verdict(sc, m))
        else:
            tail = Markup(" The difference on matched runs, {}, is {}: its interval includes "
                          "zero, so it could be run-to-run chance.").format(
                c.diff(sc, m), c.verdict(sc, m))
        out.append(head + tail)
    if "premature_exits" in c.metrics:
        text = Markup("<strong>Support ended before children were ready</strong> because "
                      "funding stopped while they were in care. Times this happened over {}, on "
                      "average: {}.").format(horizon, c.each("premature_exits"))
        if "worse_off_after_withdrawal_share" in c.metrics:
            text += Markup(" Of the children whose care ended early, the share left worse off "
                           "than when they entered care: {}.").format(
                c.each("worse_off_after_withdrawal_share", when_missing="no early endings"))
        out.append(text)
    if "unmet_need_share" in c.metrics:
        out.append(Markup("<strong>Unmet need</strong>: children never given a place in care, "
                          "{}.").format(c.each("unmet_need_share")))
    if "cost_per_stable_reintegration" in c.metrics:
        out.append(Markup("<strong>Cost per child stably reintegrated</strong> after care "
                          "(money spent divided by those children; currency units): {}.").format(
            c.each("cost_per_stable_reintegration", when_missing="no such child")))
    if "sustained_after_funding_end" in c.metrics:
        key = "sustained_after_funding_end"
        if any(_finite(c.row(sc, key)["mean"]) for sc in c.names):
            out.append(Markup("<strong>What remains after funding ends</strong>: of the children "
                              "back in their communities when funding ended for the last time, "
                              "the share not re-exploited in the next {} months: {}.").format(
                SUSTAINABILITY_MONTHS, c.each(key)) + Markup(
                " (Not measured where funding never ended, or ended less than {} months "
                "before the end of the simulation.)").format(SUSTAINABILITY_MONTHS))
        else:
            out.append(Markup("<strong>What remains after funding ends</strong> could not be "
                              "measured: in no scenario did funding end at least {} months "
                              "before the end of the simulation.").format(SUSTAINABILITY_MONTHS))
    if "staff_turnover_annual" in c.metrics:
        out.append(Markup("<strong>Staff turnover</strong> (resignations per 100 staff a year, "
                          "not counting contracts ended by funding): {}.").format(
            c.each("staff_turnover_annual", when_missing="no staff")))
    if money is not None:
        out.append(money["finding"])
    key = [k for k, _, _ in KEY_METRICS if k in c.metrics and k != m]
    blocks = []
    for sc in others:
        items = [Markup("<li>{}: {}</li>").format(METRICS[k][0], c.diff(sc, k))
                 for k in key if c.likely(sc, k)]
        if items:
            blocks.append(Markup("<li>{}:<ul>{}</ul></li>").format(c.display[sc],
                                                                  Markup("").join(items)))
    if others:
        if blocks:
            out.append(Markup("<strong>Other likely differences</strong> from {} (the 95% "
                              "interval of the difference on matched runs excludes zero; all "
                              "differences are in the tables below):<ul>{}</ul>").format(
                c.display[ref], Markup("").join(blocks)))
        else:
            out.append(Markup("No other difference from {} in the main results is clear enough "
                              "to be called likely.").format(c.display[ref]))
    return out


def _results_tables(c: Comparison) -> list[Table]:
    means = Table(["Result", *(c.display[s] for s in c.names)],
                  caption="Results by scenario: mean over replicates (95% interval)")
    for metric in c.metrics:
        means.add(METRICS[metric][0], *(c.mean_ci(sc, metric) for sc in c.names))
    tables = [means]
    if len(c.names) > 1:
        diffs = Table(["Result", *(c.display[s] for s in c.names[1:])],
                      caption=f"Differences from {c.display[c.ref]} on matched runs (same seeds):"
                              " mean difference (95% interval)",
                      note="'likely': the 95% interval of the paired difference excludes zero; "
                           "'not clear': it includes zero, so the difference could be "
                           "run-to-run chance. Shares differ in percentage points.")
        for metric in c.metrics:
            cells = []
            for sc in c.names[1:]:
                row = c.row(sc, metric)
                if _finite(row["diff_mean"]) and row["diff_mean"] == 0 and not (
                        row["diff_sd"] > 0):
                    cells.append(c.diff(sc, metric) + Markup(" (the same in every run)"))
                elif _finite(row["diff_mean"]):
                    cells.append(c.diff(sc, metric) + Markup(" ") + c.verdict(sc, metric))
                else:
                    cells.append(Markup("–"))
            diffs.add(METRICS[metric][0], *cells)
        tables.append(diffs)
    return tables


def _money(folder: Folder, c: Comparison, runs: pd.DataFrame) -> dict[str, Any]:
    """The what-if's money section: the rule, budget.csv and a chart of cumulative spend."""
    from .whatif import BUDGET_COLUMNS, EQUAL_BUDGET_RULE

    m = folder.manifest
    numeric = [k for k in BUDGET_COLUMNS if k != "scheme"]
    budget = read_csv(folder, "budget.csv", list(BUDGET_COLUMNS), numeric)
    budget["scheme"] = budget["scheme"].astype(str)
    path = folder.path / "budget.csv"
    if sorted(budget["scheme"]) != sorted(c.names):
        raise UserError(f"{path}: schemes do not match manifest.json; {folder.fix}")
    b = budget.set_index("scheme")
    for sc in c.names:
        spent = float(runs.loc[runs["scenario"] == sc, "total_spend"].mean())
        if not math.isclose(spent, b.at[sc, "spend_mean"], rel_tol=1e-9, abs_tol=1e-6):
            raise UserError(f"{path}: does not match runs.csv (spend of {sc}); {folder.fix}")
    total = float(m.get("total_budget", b["allotted"].max()))
    months = int(m.get("horizon_months", 0)) or None

    def money(sc: str, col: str) -> Markup:
        return num(b.at[sc, col], "money", stat=col, scheme=sc, metric="budget")

    table = Table(["Scheme", "Allotted in total", "Per funded month", "Months funded (range)",
                   "Spent: mean (range)", "Unspent", "… months without a grant",
                   "… vacant posts", "… other"],
                  caption="The money: allotted, spent and unspent (mean over replicates)",
                  note="Unspent money is stated, not hidden. 'Months without a grant': money set "
                       "aside for months in which there was no grant (gaps, grants not renewed). "
                       "'Vacant posts': salaries of funded posts left empty while staff were "
                       "being replaced. 'Other': posts rounded down to whole workers and "
                       "staff-support or family-support money not fully used.")
    for sc in c.names:
        table.add(c.display[sc], money(sc, "allotted"), money(sc, "monthly_budget"),
                  Markup("{} ({}–{}) of {}").format(
                      num(b.at[sc, "funded_months_mean"], "count", stat="funded_months_mean",
                          scheme=sc, metric="budget"),
                      num(b.at[sc, "funded_months_min"], "count", stat="funded_months_min",
                          scheme=sc, metric="budget"),
                      num(b.at[sc, "funded_months_max"], "count", stat="funded_months_max",
                          scheme=sc, metric="budget"), months or "?"),
                  Markup("{} ({}–{})").format(money(sc, "spend_mean"), money(sc, "spend_min"),
                                              money(sc, "spend_max")),
                  money(sc, "unspent_mean"), money(sc, "unspent_unfunded_months_mean"),
                  money(sc, "unspent_vacancies_mean"), money(sc, "unspent_other_mean"))
    funded = [sc for sc in c.names if b.at[sc, "allotted"] > 0]
    parts = []
    for sc in funded:
        parts.append(Markup("{} spent {} and left {} unspent ({} set aside for months without "
                            "a grant, {} for posts left vacant)").format(
            c.display[sc], money(sc, "spend_mean"), money(sc, "unspent_mean"),
            money(sc, "unspent_unfunded_months_mean"), money(sc, "unspent_vacancies_mean")))
    finding = Markup("<strong>The money</strong>: every funded scheme was allotted the same "
                     "total, {} over {}. On average, {}.").format(
        num(total, "money", stat="total_budget", metric="budget", scheme="all"),
        horizon_text(months) if months else "the horizon", _join(parts))
    shares = m.get("budget_shares", {}).get(funded[0], {}) if funded else {}
    split = ", ".join(f"{k.replace('_', ' ')} {100 * float(v):.0f}%" for k, v in shares.items())
    return {"rule": m.get("equal_budget_rule", EQUAL_BUDGET_RULE), "table": table,
            "finding": finding, "split": split,
            "chart": _spend_chart(folder, c, total)}


def _spend_chart(folder: Folder, c: Comparison, total: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from .plots import colour

    ts = read_parquet(folder, "timeseries.parquet", ["scenario", "replicate", "month", "value"],
                      filters=[("variable", "==", "spend")])
    ts = ts.sort_values(["scenario", "replicate", "month"])
    ts["cumulative"] = ts.groupby(["scenario", "replicate"])["value"].cumsum()
    fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
    for i, sc in enumerate(c.names):
        g = ts[ts["scenario"] == sc].groupby("month")["cumulative"]
        mean, lo, hi = g.mean(), g.quantile(0.025), g.quantile(0.975)
        ax.fill_between(mean.index, lo, hi, color=colour(i), alpha=0.2, linewidth=0)
        ax.plot(mean.index, mean, color=colour(i), linewidth=1.8, label=c.display[sc])
    ax.axhline(total, color="0.2", linestyle="--", linewidth=1, label="total allotted")
    ax.set_xlabel("Month of simulation")
    ax.set_ylabel("money spent so far (currency units)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v, "money")))
    ax.set_ylim(bottom=0, top=max(total * 1.08, ax.get_ylim()[1]))
    ax.set_title("Money spent so far: mean over replicates, band 2.5–97.5 percentiles")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _figure_uri(fig)


def compare_context(folder: Folder) -> dict[str, Any]:
    """Everything the template needs for a compare or what-if folder."""
    m = folder.manifest
    entries = m.get("scenarios")
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and "name" in e for e in entries):
        raise UserError(f"{folder.path / 'manifest.json'}: has no list of scenarios; the file is "
                        f"damaged; {folder.fix}")
    names = [str(e["name"]) for e in entries]
    parameters = m.get("parameters") or {}
    if not isinstance(parameters, dict) or set(parameters) != set(names):
        raise UserError(f"{folder.path / 'manifest.json'}: lacks the parameters of every "
                        f"scenario; the file is damaged; {folder.fix}")
    runs = read_csv(folder, "runs.csv", ["scenario", "replicate", "seed", "total_spend"],
                    ["replicate", "seed"])
    runs["scenario"] = runs["scenario"].astype(str)
    if sorted(set(runs["scenario"])) != sorted(names):
        raise UserError(f"{folder.path / 'runs.csv'}: scenarios do not match manifest.json; "
                        f"{folder.fix}")
    table = read_comparison(folder, names, runs)
    titles = {str(e["name"]): str(e.get("title", "")) for e in entries}
    display = _display_names(folder, names, parameters, titles)
    c = Comparison(table, names, display)
    ref_params = parameters[names[0]]
    months = int(ref_params.get("months", 0))
    horizon = horizon_text(months)
    replicates = m.get("replicates", int(runs.groupby("scenario").size().max()))
    seeds = m.get("seeds") or sorted(set(runs["seed"].astype(int)))

    money = _money(folder, c, runs) if folder.kind == "whatif" else None
    renamed = [f"{n} = {display[n]}" for n in names if display[n] != n]
    key = (" Names in this chart: " + "; ".join(renamed) + ".") if renamed else ""
    charts = []
    for name, title, caption in (
            ("series.png", "Month by month",
             "Lines: mean over replicates; bands: the middle 95% of single runs. The funding "
             "panel shows the share of runs funded each month."),
            ("differences.png", f"Differences from {display[names[0]]}",
             "Dots: mean paired difference (same seeds); lines: 95% interval; filled dots: the "
             "interval excludes zero ('likely').")):
        if (folder.path / name).exists() or name in (m.get("files") or []):
            charts.append({"title": title, "src": image(folder, name), "caption": caption + key})
    if money is not None:
        charts.insert(0, {"title": "Money spent so far", "src": money["chart"],
                          "caption": "Dashed line: the total allotted to every funded scheme. "
                                     "The gap between a line and the dashed line at the end is "
                                     "money left unspent."})

    scenarios = []
    for e in entries:
        scenarios.append({"name": e["name"], "display": display[str(e["name"])],
                          "title": e.get("title", ""),
                          "description": e.get("description") or _description(e.get("file")),
                          "changes": ", ".join(f"{k} = {_show(v)}" for k, v in
                                               (e.get("overrides") or {}).items()) or "none",
                          "file": e.get("file", "")})
    full, changed = parameter_table({display[n]: parameters[n] for n in names})
    if folder.kind == "whatif":
        title = (f"Funding what-if: {len(names)} funding schemes on the same total budget over "
                 f"{horizon}")
        extra = ["Money left unspent is not carried over or moved to other months in the model."]
    else:
        title = "Scenario comparison: " + ", ".join(display[n] for n in names)
        extra = []
    return {
        "kind": folder.kind, "title": title,
        "subtitle": (f"{len(names)} scenario{'s' if len(names) > 1 else ''} × {replicates} "
                     f"replicates on the same seeds · {horizon} · "
                     f"{ref_params.get('n_children', '?')} children at the start · results made "
                     f"{str(m.get('created', '?'))[:10]}"),
        "findings": _findings(c, horizon, money),
        "money": money,
        "tables": _results_tables(c),
        "charts": charts,
        "scenarios": scenarios, "changed_table": changed, "param_table": full,
        "definitions": definitions(c.metrics),
        "reproduce": reproduce_rows(folder, seeds, replicates),
        "limitations": limitations(ref_params.get("n_children", "?"), replicates, months, extra),
        "sweep": None,
    }


def _description(file: Any) -> str:
    """A scenario's description from its file, if the file can still be read."""
    from .scenarios import ScenarioError, load_scenario

    if not file:
        return ""
    try:
        return " ".join(load_scenario(str(file)).description.split())
    except (ScenarioError, OSError, ValueError):
        return "(description not available: the scenario file has moved or changed)"


# --- sweeps -----------------------------------------------------------------------------------------
def _bins(values: pd.Series, order: Any = None) -> tuple[pd.Series, list[Any]]:
    """Group labels: the values themselves when few, else four equal-count ranges.

    Few values keep the spec's grid ``order`` when given.
    """
    distinct = sorted(values.dropna().unique().tolist())
    if len(distinct) <= 12:
        if isinstance(order, list) and sorted(order, key=str) == sorted(distinct, key=str):
            return values, order
        return values, distinct
    cut = pd.qcut(values.astype(float), 4, duplicates="drop")
    labels = [f"{iv.left:.3g} to {iv.right:.3g}" for iv in cut.cat.categories]
    mapped = cut.cat.rename_categories(labels).astype(str)
    return mapped, labels


def sweep_context(folder: Folder) -> dict[str, Any]:
    """Everything the template needs for a sweep folder (a simpler report)."""
    m = folder.manifest
    if m.get("status") == "running":
        raise UserError(f"{folder.path}: the sweep has not finished; finish it with "
                        f"'reintegration sweep {m.get('spec_file', 'SPEC')} --out {folder.path} "
                        "--resume', then build the report")
    varied = [v for v in (m.get("varied") or []) if isinstance(v, str)]
    base = m.get("base_parameters") or {}
    if not varied or not isinstance(base, dict):
        raise UserError(f"{folder.path / 'manifest.json'}: lacks the swept parameters; the file "
                        f"is damaged; {folder.fix}")
    need = ["sample_id", "replicate", "seed", *varied]
    if (folder.path / "results.parquet").exists():
        res = read_parquet(folder, "results.parquet", need)
    else:
        res = read_csv(folder, "runs.csv", need, ["sample_id", "replicate", "seed"])
    metrics = [k for k in SWEEP_METRICS if k in res.columns and (
        k == "stable_reintegration_rate" or np.isfinite(pd.to_numeric(res[k], errors="coerce")).any())]
    if "stable_reintegration_rate" not in metrics:
        raise UserError(f"{folder.path}: the sweep results lack stable_reintegration_rate; "
                        f"{folder.fix}")
    n_tasks = m.get("n_tasks")
    if isinstance(n_tasks, int) and len(res) != n_tasks:
        raise UserError(f"{folder.path}: results hold {len(res)} of {n_tasks} runs (damaged or "
                        f"unfinished); {folder.fix}, or finish it with --resume")
    replicates = m.get("replicates", int(res.groupby("sample_id").size().max()))
    months = int(base.get("months", 0))
    horizon = horizon_text(months)

    def cell(x: pd.Series, metric: str, **attrs: Any) -> Markup:
        kind = METRICS[metric][1]
        n, mean, _, lo, hi = t_interval(x.to_numpy(dtype=float))
        text = num(mean, kind, stat="mean", metric=metric, **attrs) + (
            unit(kind) if _finite(mean) else "")
        if _finite(lo):
            text += Markup(" ({}–{}{})").format(num(lo, kind, stat="ci_low", metric=metric, **attrs),
                                               num(hi, kind, stat="ci_high", metric=metric, **attrs),
                                               unit(kind))
        return text

    spec = m.get("spec") if isinstance(m.get("spec"), dict) else {}
    grid = spec.get("grid") if isinstance(spec.get("grid"), dict) else {}
    tables = []
    chart_data = []
    for param in varied:
        groups, values = _bins(res[param], grid.get(param))
        t = Table([f"{param}", *(METRICS[k][0] for k in metrics)],
                  caption=f"By {param} ({SPECS[param].description if param in SPECS else ''}): "
                          "mean over all runs with this value (95% interval); the other swept "
                          "parameters vary within each row")
        points = []
        for v in values:
            sub = res[groups == v]
            label = _show(v)
            t.add(Markup("<strong>{}</strong>").format(label),
                  *(cell(sub[k], k, param=param, param_value=label) for k in metrics))
            _, mean, _, lo, hi = t_interval(sub["stable_reintegration_rate"].to_numpy(dtype=float))
            points.append((label, mean, lo, hi))
        tables.append(t)
        chart_data.append((param, points))
    samples = sorted(res["sample_id"].unique().tolist())
    per_sample = None
    if len(samples) <= 60:
        per_sample = Table(["Sample", *varied, *(METRICS[k][0] for k in metrics)],
                           caption="Each combination: mean over its replicates (95% interval)")
        for s in samples:
            sub = res[res["sample_id"] == s]
            per_sample.add(str(int(s)), *(_show(sub[p].iloc[0]) for p in varied),
                           *(cell(sub[k], k, sample=int(s)) for k in metrics))
    means = res.groupby("sample_id")["stable_reintegration_rate"].mean()
    lo_s, hi_s = means.idxmin(), means.idxmax()

    def combo(s: Any) -> str:
        row = res[res["sample_id"] == s].iloc[0]
        return ", ".join(f"{p} = {_show(row[p])}" for p in varied)

    findings = [Markup("Across the {} combinations, the share of all children stably "
                       "reintegrated at {} ranged from {} ({}) to {} ({}).").format(
        len(samples), horizon,
        cell(res.loc[res["sample_id"] == lo_s, "stable_reintegration_rate"],
             "stable_reintegration_rate", sample=int(lo_s)), combo(lo_s),
        cell(res.loc[res["sample_id"] == hi_s, "stable_reintegration_rate"],
             "stable_reintegration_rate", sample=int(hi_s)), combo(hi_s))]
    for param, points in chart_data:
        finite = [p for p in points if _finite(p[1])]
        if len(finite) > 1:
            best = max(finite, key=lambda p: p[1])
            worst = min(finite, key=lambda p: p[1])
            findings.append(Markup("By {}: highest with {} ({}%), lowest with {} ({}%), "
                                   "averaged over the other swept parameters.").format(
                param, best[0], fmt(best[1], "share"), worst[0], fmt(worst[1], "share")))
    columns = {"base scenario": base}
    full, changed = parameter_table(columns, {p: sorted(res[p].dropna().unique().tolist())
                                              for p in varied})
    seeds = m.get("seeds") or sorted(set(res["seed"].astype(int)))
    return {
        "kind": "sweep", "title": f"Parameter sweep: {m.get('name', folder.path.name)}",
        "subtitle": (f"{len(samples)} combinations × {replicates} replicates on the same seeds · "
                     f"{horizon} · {base.get('n_children', '?')} children at the start · results "
                     f"made {str(m.get('created', '?'))[:10]}"),
        "findings": findings, "money": None, "tables": tables + ([per_sample] if per_sample else []),
        "charts": [{"title": "Stable reintegration by swept parameter",
                    "src": _sweep_chart(chart_data),
                    "caption": "Dots: mean over all runs with the value; lines: 95% interval."}],
        "scenarios": [{"name": m.get("name", ""), "display": m.get("name", ""),
                       "title": f"Sweep over {', '.join(varied)} from '{m.get('base', '')}'",
                       "description": " ".join(str(m.get("description", "")).split()),
                       "changes": ", ".join(varied), "file": m.get("spec_file", "")}],
        "changed_table": changed, "param_table": full,
        "definitions": definitions(metrics),
        "reproduce": reproduce_rows(folder, seeds, replicates),
        "limitations": limitations(base.get("n_children", "?"), replicates, months),
        "sweep": True,
    }


def _sweep_chart(chart_data: list[tuple[str, list[tuple[str, float, float, float]]]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import colour

    n = max(1, len(chart_data))
    fig, axes = plt.subplots(1, n, figsize=(min(4.0 * n, 12), 3.2), squeeze=False,
                             layout="constrained")
    for i, (ax, (param, points)) in enumerate(zip(axes[0], chart_data, strict=False)):
        x = np.arange(len(points))
        mean = np.array([100 * p[1] for p in points], float)
        lo = np.array([100 * p[2] for p in points], float)
        hi = np.array([100 * p[3] for p in points], float)
        err = np.vstack([np.where(np.isfinite(lo), mean - lo, 0),
                         np.where(np.isfinite(hi), hi - mean, 0)])
        ax.errorbar(x, mean, yerr=err, fmt="o", color=colour(i), capsize=4)
        ax.set_xticks(x, [p[0] for p in points], rotation=20, fontsize=8)
        ax.set_title(param, fontsize=10)
        ax.set_ylabel("% stably reintegrated")
        ax.grid(alpha=0.3)
    return _figure_uri(fig)


# --- rendering --------------------------------------------------------------------------------------
def render(context: dict[str, Any]) -> str:
    """Render the Jinja2 template with a context from the builders above."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(TEMPLATE).render(**context)


def chromium() -> str | None:
    """The Chromium (or Chrome) executable on this machine, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html: Path, pdf: Path, timeout: float = 180.0) -> Path:
    """Print an HTML file to PDF with headless Chromium.

    Raises:
        UserError: no Chromium, or printing failed (one line with the reason).
    """
    exe = chromium()
    if exe is None:
        raise UserError("--pdf needs Chromium, which is not installed; install it (Debian: "
                        "apt-get install chromium) or open the HTML report and print it")
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
               "--disable-background-networking", "--disable-component-update",
               "--no-first-run", f"--user-data-dir={profile}", f"--print-to-pdf={pdf}",
               html.resolve().as_uri()]
        if pdf.exists():
            pdf.unlink()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  check=False, env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired:
            raise UserError(f"--pdf: Chromium did not finish within {timeout:.0f} s; open "
                            f"{html} and print it instead") from None
    if not pdf.is_file() or pdf.stat().st_size == 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise UserError(f"--pdf: Chromium did not write {pdf} ({last})")
    return pdf


def build(results_dir: Path) -> str:
    """The report's HTML for a results folder (reads only; writes nothing)."""
    folder = open_folder(Path(results_dir))
    context = sweep_context(folder) if folder.kind == "sweep" else compare_context(folder)
    context.update(ethics_full=ETHICS,
                   sensitivity=sensitivity_section(folder.path),
                   results_dir=str(folder.path), kind_label={
                       "compare": "scenario comparison", "whatif": "funding what-if",
                       "sweep": "parameter sweep"}[folder.kind],
                   generated_by=f"reintegration report {folder.path}")
    return render(context)


def report(results_dir: Path, out: str | Path | None = None, pdf: bool = False) -> Path:
    """Write the self-contained HTML report of a results folder (and a PDF if asked).

    Args:
        results_dir: a folder written by ``compare``, ``whatif`` or ``sweep``.
        out: the HTML file to write (default ``RESULTS_DIR/report.html``).
        pdf: also print it to PDF (same name, ``.pdf``) with headless Chromium.

    Returns:
        The HTML file written.
    """
    started = time.perf_counter()
    results_dir = Path(results_dir)
    html = build(results_dir)
    target = Path(out) if out is not None else results_dir / "report.html"
    if target.is_dir():
        raise UserError(f"--out {target}: is a folder; give a file name such as report.html")
    if target.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {target}: give a file name ending in .html")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--out {target}: cannot write ({exc.strerror})") from None
    written = [str(target)]
    if pdf:
        written.append(str(print_pdf(target, target.with_suffix(".pdf"))))
    print(f"Wrote {' and '.join(written)} in {time.perf_counter() - started:.1f} s")
    print(ETHICS)
    return target


__all__ = ["report", "build", "fmt", "print_pdf", "chromium", "ETHICS"]
