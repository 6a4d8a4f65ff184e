"""Plots of many runs: monthly series with uncertainty bands and forest plots.

The runner writes results and then calls these helpers, which only read the tidy tables
they are given. Everything is drawn with matplotlib's non-interactive Agg backend (no
display needed), in the Okabe-Ito palette, which stays distinguishable with the common
forms of colour blindness (Okabe & Ito 2008, "Color Universal Design").
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000",
             "#F0E442")
"""Okabe-Ito colours, ordered so the first four are far apart (blue, orange, green,
reddish purple; vermillion after orange's neighbour; yellow last: faint on white)."""

MONTH_AXIS = "Month of simulation (months)"


def colour(i: int) -> str:
    """The colour of the ``i``-th scenario (cycles after eight)."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def monthly_bands(stats: pd.DataFrame, panels: Sequence[tuple[str, str, str]],
                  scenarios: Sequence[str], path: Path, title: str, note: str = "",
                  funded: pd.DataFrame | None = None) -> Path:
    """Small multiples: one panel per series, one line and band per scenario.

    Args:
        stats: one row per (scenario, variable, month) with columns ``mean``, ``low``
            and ``high`` (the band, e.g. the 2.5 and 97.5 percentiles across replicates).
        panels: (variable, label, unit) of each panel, in order.
        scenarios: scenario names in legend order (fixes each scenario's colour).
        path: PNG file to write.
        title: figure title.
        note: small text under the legend (what the line and band mean).
        funded: optional rows (scenario, month, share) with the share of replicates
            funded each month; drawn as an extra panel so the funding pattern behind the
            series is visible.

    Returns:
        The path written.
    """
    n_panels = len(panels) + (funded is not None) + 1  # +1: the legend panel
    ncols = 2
    nrows = int(np.ceil(n_panels / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 3.0 * nrows), squeeze=False,
                             layout="constrained")
    flat = list(axes.ravel())
    by_key = {k: g for k, g in stats.groupby(["variable", "scenario"], sort=False)}
    for ax, (var, label, unit) in zip(flat, panels, strict=False):
        for i, sc in enumerate(scenarios):
            g = by_key.get((var, sc))
            if g is None:
                continue
            g = g.sort_values("month")
            ax.fill_between(g["month"], g["low"], g["high"], color=colour(i), alpha=0.18,
                            linewidth=0)
            ax.plot(g["month"], g["mean"], color=colour(i), linewidth=1.6, label=sc)
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    used = len(panels)
    if funded is not None:
        ax = flat[used]
        for i, sc in enumerate(scenarios):
            g = funded[funded["scenario"] == sc].sort_values("month")
            ax.step(g["month"], g["share"], where="mid", color=colour(i), linewidth=1.4,
                    label=sc)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title("Programme funded", fontsize=10)
        ax.set_ylabel("share of replicates funded")
        ax.grid(alpha=0.3)
        used += 1
    for ax in flat[:used]:
        ax.set_xlabel(MONTH_AXIS, fontsize=8)
    legend_ax = flat[used]
    legend_ax.axis("off")
    handles = [plt.Line2D([], [], color=colour(i), linewidth=2.5) for i in range(len(scenarios))]
    legend_ax.legend(handles, list(scenarios), loc="upper left", frameon=False,
                     title="Scenario")
    if note:
        legend_ax.text(0.0, 0.35, textwrap.fill(note, 60), transform=legend_ax.transAxes,
                       fontsize=8, va="top")
    for ax in flat[used + 1:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def forest(diffs: pd.DataFrame, metrics: Sequence[tuple[str, str, str]],
           scenarios: Sequence[str], reference: str, path: Path, caption: str) -> Path:
    """Forest plot of paired differences from a reference scenario, one panel per metric.

    Args:
        diffs: one row per (scenario, metric) with ``diff_mean``, ``diff_ci_low``,
            ``diff_ci_high`` and ``likely`` (interval excludes zero).
        metrics: (metric, label, unit) of each panel.
        scenarios: every scenario in order; the first is the reference and gets no row,
            the others keep their colours from :func:`monthly_bands`.
        reference: name of the reference scenario (for the axis label).
        path: PNG file to write.
        caption: text printed under the panels (method and ethics note).

    Returns:
        The path written.
    """
    others = [s for s in scenarios if s != reference]
    # A metric with no paired value anywhere (e.g. empty in the reference) gets no panel.
    has_data = diffs.groupby("metric")["diff_mean"].apply(lambda v: bool(np.isfinite(v).any()))
    metrics = [m for m in metrics if has_data.get(m[0], False)]
    ncols = 3
    nrows = max(1, int(np.ceil(len(metrics) / ncols)))
    height = max(1.0, 0.45 * len(others) + 1.2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, height * nrows + 1.2), squeeze=False,
                             layout="constrained")
    flat = list(axes.ravel())
    y = np.arange(len(others))[::-1]
    for ax, (metric, label, unit) in zip(flat, metrics, strict=False):
        sub = diffs[diffs["metric"] == metric].set_index("scenario")
        for yi, sc in zip(y, others, strict=True):
            if sc not in sub.index or not np.isfinite(sub.at[sc, "diff_mean"]):
                ax.text(0.5, yi, "no data", ha="center", va="center", fontsize=8,
                        transform=ax.get_yaxis_transform())
                continue
            row = sub.loc[sc]
            c = colour(list(scenarios).index(sc))
            lo, hi = row["diff_ci_low"], row["diff_ci_high"]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [yi, yi], color=c, linewidth=2)
            ax.plot([row["diff_mean"]], [yi], "o", color=c, markersize=7,
                    markerfacecolor=c if bool(row["likely"]) else "white")
        ax.axvline(0.0, color="0.3", linewidth=1, linestyle="--")
        ax.set_yticks(y, others)
        ax.set_ylim(-0.7, len(others) - 0.3)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel(f"difference from {reference} ({unit})", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(axis="x", alpha=0.3)
    for ax in flat[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"Paired differences from {reference} (same seeds)", fontsize=12)
    fig.text(0.01, 0.0, textwrap.fill(caption, 170), fontsize=8, va="top")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
