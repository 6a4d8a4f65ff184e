"""The workshop dashboard's runs, controls and figures, without any web framework.

Everything the dashboard shows is built here from the model's own entry points
(``ReintegrationModel``, ``load_scenario``) and its single parameter set (``SPECS``), so
that it can be tested and timed without a browser: :class:`Run` is one seeded model with
a fixed network layout and the figures that follow it; :class:`Comparison` is one or two
runs stepped in lockstep on the same seed; :func:`control_spec` turns a parameter's
declaration into a slider or selector.

Figures are matplotlib figures created once per reset and updated in place each month
(new data on existing artists), then rendered to PNG; the funding schedule is known at
the start of a run, so grant ends and gaps are drawn once on every chart.

Colours are the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which
stays distinguishable with the common forms of colour-vision deficiency; yellow is left
out because it washes out on projectors.
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
import textwrap
import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import networkx as nx
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from experiments.scenarios import Scenario, load_scenario, scenario_names
from model.agents import CASEWORKER, COMMUNITY_WORKER, COUNSELLOR, IN_CARE, STAGES
from model.outputs import TIMESERIES
from model.parameters import SPECS, Params, ParamSpec
from model.reintegration import ReintegrationModel

DISCLAIMER = ("This is a scenario exploration with synthetic agents under stated "
              "assumptions: not a prediction about real children, and not a basis for "
              "decisions about an individual child.")

# --- palette --------------------------------------------------------------------------
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9",
    "bluish_green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
    "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "grey": "#999999",
}
STAGE_COLOURS = {
    "exploited": OKABE_ITO["vermillion"],
    "identified": OKABE_ITO["orange"],
    "in_care": OKABE_ITO["blue"],
    "reintegrating": OKABE_ITO["sky_blue"],
    "reintegrated": OKABE_ITO["bluish_green"],
    "re_exploited": OKABE_ITO["reddish_purple"],
}
STAGE_PALETTE = np.array([STAGE_COLOURS[s] for s in STAGES])
GAP_COLOUR = "#BBBBBB"
FONT_SIZE = 16  # points at FIG_DPI: large enough to read from the back of a room
FIG_DPI = 80

# --- controls -------------------------------------------------------------------------
CONTROL_GROUPS: dict[str, tuple[str, ...]] = {
    "Community": ("initial_stigma", "leader_training_rate"),
    "Funding": ("funding_scheme", "grant_months", "gap_months", "renewal_probability",
                "monthly_budget", "exit_strategy"),
    "Budget split (relative weights)": ("budget_casework", "budget_family",
                                        "budget_community", "budget_staff_support",
                                        "budget_monitoring"),
    "Staff": ("base_turnover", "coordination"),
}
"""The parameters a workshop varies most, grouped as on screen. Everything about each
control (range, default, label, help text) comes from ``SPECS``."""

CONTROLLED: tuple[str, ...] = tuple(n for names in CONTROL_GROUPS.values() for n in names)


@dataclass(frozen=True)
class ControlSpec:
    """How one parameter is shown as a control.

    Attributes:
        name: the parameter name (also the control's CSS class suffix).
        kind: ``"float"``, ``"int"`` (sliders), ``"choice"`` (selector) or ``"bool"``.
        label: short label: the parameter name in words and its unit.
        help: the parameter's description.
        default: ``SPECS[name].default``.
        min, max, step: slider range and step (None for choice and bool).
        choices: allowed values of a choice.
        decimals: decimals to show a float value with.
    """

    name: str
    kind: str
    label: str
    help: str
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    decimals: int = 0

    def format(self, value: Any) -> str:
        """The value as shown on screen (without the unit)."""
        if self.kind == "float":
            return f"{value:,.{self.decimals}f}"
        if self.kind == "int":
            return f"{int(value):,d}"
        if self.kind == "bool":
            return "yes" if value else "no"
        return str(value)


def _nice_step(span: float) -> float:
    """About a hundredth of ``span``, rounded down to 1, 2 or 5 times a power of ten."""
    raw = span / 100.0
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (5.0, 2.0, 1.0):
        if mult * power <= raw:
            return mult * power
    return power


def slider_range(spec: ParamSpec) -> tuple[float, float]:
    """Slider end points for a numeric parameter.

    The allowed bounds when they are not much wider than the plausible range (at most four
    times as wide); otherwise from the lower bound to twice the plausible maximum, so that a
    slider over, say, 1-600 months stays usable around the plausible 6-36.
    """
    lo, hi = spec.bounds
    if spec.plausible is None:
        return lo, hi
    p_lo, p_hi = spec.plausible
    if (hi - lo) <= 4 * max(p_hi - p_lo, 1e-12):
        return lo, hi
    return lo, min(hi, 2 * p_hi)


def control_spec(name: str) -> ControlSpec:
    """The control for parameter ``name``, generated from its declaration in ``SPECS``."""
    spec = SPECS[name]
    words = name.replace("_", " ")
    words = words[0].upper() + words[1:]
    if spec.choices:
        return ControlSpec(name, "choice", words, spec.description, spec.default,
                           choices=spec.choices)
    if spec.type is bool:
        return ControlSpec(name, "bool", words, spec.description, spec.default)
    lo, hi = slider_range(spec)
    label = f"{words} ({spec.unit})"
    if spec.type is int:
        step = max(1, int(_nice_step(hi - lo))) if hi - lo > 200 else 1
        return ControlSpec(name, "int", label, spec.description, spec.default, lo, hi, step)
    step = _nice_step(hi - lo)
    decimals = max(0, -math.floor(math.log10(step)))
    return ControlSpec(name, "float", label, spec.description, spec.default, float(lo),
                       float(hi), step, decimals=decimals)


CONTROLS: dict[str, ControlSpec] = {name: control_spec(name) for name in CONTROLLED}


def funded_posts(params: Params) -> dict[str, int]:
    """Posts the full monthly budget pays for, by role (staff numbers follow from budget).

    Uses the model's own ``ReintegrationModel.posts`` on a funded stand-in, so the
    dashboard never restates how the budget is split into posts.
    """
    state = SimpleNamespace(params=params, budget=params.monthly_budget, funded=True,
                            shares=params.budget_shares())
    posts = ReintegrationModel.posts(state)  # type: ignore[arg-type]
    return {"caseworkers": posts[CASEWORKER], "counsellors": posts[COUNSELLOR],
            "community workers": posts[COMMUNITY_WORKER]}


# --- network layout -------------------------------------------------------------------
MAX_CACHED_LAYOUTS = 4
"""Network layouts kept for reuse (a layout is the slowest part of a reset)."""
MAX_SHOWN_PER_COMMUNITY = 300
"""Households drawn per community; larger communities are drawn as a seeded sample (the
model still runs on all of them). Keeps the layout under a second and the picture legible."""


class NetworkLayout:
    """Fixed positions for households, leaders, children and staff.

    Communities sit on a circle, each laid out by networkx's seeded ``spring_layout`` of its
    own households and leaders; the programme's office (caseworkers, counsellors) is in the
    middle; community workers stand next to their community; each child is placed by its
    family's household. Positions of children and staff who join later are drawn from a
    display-only random stream seeded from the run seed, so the picture is reproducible
    and the model's random streams are untouched.

    The household and leader positions depend only on the network and the seed
    (:meth:`key_of`), so they are computed once and shared (:meth:`fresh`) by every run
    on the same network: after a slider move, or by the second scenario of a pair, whose
    network is the same because each process has its own random stream.

    Args:
        model: a freshly built model.
        seed: the run seed.
    """

    def __init__(self, model: ReintegrationModel, seed: int) -> None:
        net = model.network
        self.key = self.key_of(model, seed)
        self.seed = seed
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDA5B]))
        n_com = net.n_communities
        h = net.n_households
        self.n_households = h
        self.rural = net.rural.copy()
        sizes = np.array([len(x) for x in net.households_by_community], float)
        radius = 1.0 if n_com > 1 else 0.0
        angle = 2 * np.pi * np.arange(n_com) / max(n_com, 1) + np.pi / 2
        self.centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        scale = 0.9 * np.sin(np.pi / max(n_com, 2)) * np.sqrt(sizes / max(sizes.max(), 1))
        self.scale = scale if n_com > 1 else np.array([1.0])
        self.pos = np.full((net.n_adults, 2), np.nan)
        shown = []
        leaders_by_com = [np.flatnonzero(net.community[h:] == c) + h for c in range(n_com)]
        for c in range(n_com):
            members = net.households_by_community[c]
            if len(members) > MAX_SHOWN_PER_COMMUNITY:
                members = np.sort(self.rng.choice(members, MAX_SHOWN_PER_COMMUNITY,
                                                  replace=False))
            nodes = np.concatenate([members, leaders_by_com[c]]).astype(np.int64)
            shown.append(nodes)
            if len(nodes) == 0:
                continue
            keep = np.zeros(net.n_adults, bool)
            keep[nodes] = True
            mask = keep[net.src] & keep[net.dst] & (net.src < net.dst)
            g = nx.Graph()
            g.add_nodes_from(nodes.tolist())
            g.add_edges_from(zip(net.src[mask].tolist(), net.dst[mask].tolist(), strict=True))
            local = nx.spring_layout(g, seed=int(self.rng.integers(2**31)), iterations=40)
            xy = np.array([local[n] for n in nodes.tolist()])
            xy = xy - np.median(xy, axis=0)
            # Scale by a high percentile, not the maximum, and pull stragglers (isolated
            # households that spring_layout pushes far out) back to the community's edge.
            r = np.hypot(xy[:, 0], xy[:, 1])
            extent = float(np.percentile(r, 90)) or 1.0
            xy = xy / extent * np.minimum(1.0, 1.1 * extent / np.maximum(r, 1e-12))[:, None]
            self.pos[nodes] = self.centres[c] + xy * self.scale[c]
        self.shown_adults = np.concatenate(shown) if shown else np.empty(0, np.int64)
        self.shown_households = self.shown_adults[self.shown_adults < h]
        self.shown_leaders = self.shown_adults[self.shown_adults >= h] - h
        ok = ~np.isnan(self.pos[net.src, 0]) & ~np.isnan(self.pos[net.dst, 0])
        ok &= net.src < net.dst
        self.edges = np.stack([self.pos[net.src[ok]], self.pos[net.dst[ok]]], axis=1)
        self._start_run()

    @staticmethod
    def key_of(model: ReintegrationModel, seed: int) -> str:
        """What the positions depend on: the network's ties and communities, and the seed."""
        net = model.network
        digest = hashlib.sha1(str(seed).encode())
        for array in (net.src, net.dst, net.community, net.rural):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def _start_run(self) -> None:
        self.rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xDA5B, 1]))
        self.child_pos = np.empty((0, 2))
        self.staff_pos = np.empty((0, 2))

    def fresh(self) -> NetworkLayout:
        """A copy for a new run: the same fixed positions, no children or staff placed yet."""
        other = copy.copy(self)
        other._start_run()
        return other

    def children(self, household: np.ndarray) -> np.ndarray:
        """Positions of all children so far (new ones placed by their family's household)."""
        n_old, n = len(self.child_pos), len(household)
        if n > n_old:
            base = self.pos[household[n_old:]]
            r = 0.035 * np.sqrt(self.rng.random(n - n_old))
            a = 2 * np.pi * self.rng.random(n - n_old)
            new = base + np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
            self.child_pos = np.concatenate([self.child_pos, new])
        return self.child_pos[:n]

    def staff(self, role: np.ndarray, community: np.ndarray) -> np.ndarray:
        """Positions of all professionals so far: office in the middle, community workers out."""
        n_old, n = len(self.staff_pos), len(role)
        if n > n_old:
            new = np.empty((n - n_old, 2))
            for k, (r, c) in enumerate(zip(role[n_old:].tolist(), community[n_old:].tolist(),
                                           strict=True)):
                if r == COMMUNITY_WORKER and c >= 0:
                    centre = self.centres[c] * (1 - 0.55 * self.scale[c]) if len(
                        self.centres) > 1 else self.centres[c]
                    new[k] = centre + self.rng.normal(0, 0.04, 2)
                else:
                    # Sunflower spiral: an even, compact office whatever the head count.
                    i = n_old + k + 1
                    rad = 0.045 * math.sqrt(i)
                    new[k] = (rad * math.cos(i * 2.39996), rad * math.sin(i * 2.39996))
            self.staff_pos = np.concatenate([self.staff_pos, new])
        return self.staff_pos[:n]


# --- figures --------------------------------------------------------------------------
CHARTS: dict[str, str] = {
    "network": "The social network now",
    "stages": "Children by stage",
    "attitudes": "Community stigma and family acceptance",
    "staff": "Staff employed, vacancies and caseload",
    "funding": "Funding: budget and spend",
    "harm": "Premature exits and children worse off",
}
"""Chart keys (also CSS class suffixes) and their titles, in display order."""


def _series(name: str, color: str, style: str = "-",
            label: str | None = None) -> tuple[str, str, str, str]:
    text = label if label is not None else TIMESERIES[name][0]
    return name, textwrap.fill(text, 30), color, style


CHART_SERIES: dict[str, tuple[str, list[tuple[str, str, str, str]]]] = {
    "stages": ("children", [_series(f"n_{s}", STAGE_COLOURS[s], label=s.replace("_", " "))
                            for s in STAGES]),
    "attitudes": ("share (0-1 scale)", [
        _series("mean_stigma", OKABE_ITO["vermillion"]),
        _series("mean_acceptance", OKABE_ITO["bluish_green"])]),
    "staff": ("workers", [
        _series("staff_employed", OKABE_ITO["blue"]),
        _series("vacancies", OKABE_ITO["orange"], "--")]),
    "funding": ("currency per month", [
        _series("budget", OKABE_ITO["blue"]),
        _series("spend", OKABE_ITO["sky_blue"], "--")]),
    "harm": ("children", [
        _series("premature_exits", OKABE_ITO["vermillion"]),
        _series("worse_off_than_intake", OKABE_ITO["reddish_purple"], "--")]),
}
"""Per time chart: the y-axis label (unit) and the series drawn (from ``TIMESERIES``)."""

RIGHT_AXIS = {"staff": ("caseload_per_caseworker", "children per caseworker",
                        OKABE_ITO["reddish_purple"])}
"""Series drawn on a second y-axis because their unit differs."""


def _style_axes(ax, title: str, ylabel: str, horizon: int) -> None:
    ax.set_title(title, fontsize=FONT_SIZE + 2, loc="left", fontweight="bold")
    ax.set_xlabel("months since start", fontsize=FONT_SIZE)
    ax.set_ylabel(ylabel, fontsize=FONT_SIZE)
    ax.set_xlim(0, horizon)
    ax.set_ylim(0, 1)
    ax.tick_params(labelsize=FONT_SIZE - 1)
    ax.grid(True, color="#DDDDDD", linewidth=0.8)
    ax.spines[["top", "right"]].set_visible(False)


def funding_gaps(funded: np.ndarray) -> list[tuple[int, int]]:
    """Unfunded stretches as (first month, first month after), in elapsed months.

    Month ``m`` of the schedule is simulated by step ``m + 1``, so it spans ``m`` to
    ``m + 1`` on the charts' time axis (months since start).
    """
    gaps, start = [], None
    for m, f in enumerate(funded.tolist()):
        if not f and start is None:
            start = m
        elif f and start is not None:
            gaps.append((start, m))
            start = None
    if start is not None:
        gaps.append((start, len(funded)))
    return gaps


def _mark_funding(ax, funded: np.ndarray) -> list:
    """Shade funding gaps and draw a dashed line at every grant end (the whole horizon).

    Returns the artists drawn, so that a new schedule can replace them.
    """
    marks = [ax.axvspan(a, b, color=GAP_COLOUR, alpha=0.45, linewidth=0, zorder=0)
             for a, b in funding_gaps(funded)]
    ends = [m for m in range(1, len(funded)) if funded[m - 1] and not funded[m]]
    marks += [ax.axvline(end, color=OKABE_ITO["black"], linestyle=(0, (4, 3)), linewidth=1.4,
                         zorder=1) for end in ends]
    return marks


def _funding_legend_handles() -> list:
    return [Patch(color=GAP_COLOUR, alpha=0.45, label="funding gap"),
            Line2D([], [], color="black", linestyle=(0, (4, 3)), label="grant ends")]


def _nice_ceiling(x: float) -> float:
    """The smallest of 1, 1.5, 2, 3, 5, 7.5 times a power of ten that is at least ``x``."""
    if x <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    for mult in (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0):
        if mult * power >= x:
            return mult * power
    return 10.0 * power


def _grow_ylim(ax, top: float, floor: float) -> bool:
    """Raise the y-limit in nice steps when the data near it; True if it changed."""
    hi = ax.get_ylim()[1]
    want = max(floor, top * 1.15) if np.isfinite(top) else floor
    if want <= hi and hi >= floor:
        return False
    ax.set_ylim(0, _nice_ceiling(want))
    return True


class BlitCanvas:
    """A figure rendered to PNG by redrawing only what moves (matplotlib blitting).

    The static part (axes, ticks, labels, funding marks, legends outside the data) is
    drawn once and kept as a bitmap; each month only the ``dynamic`` artists are drawn
    over a copy of it. A change of axis limits calls :meth:`invalidate`, which redraws
    the static part once.

    Args:
        fig: the figure.
        dynamic: the artists that change, in drawing order.
    """

    def __init__(self, fig: Figure, dynamic: list) -> None:
        self.fig = fig
        self.canvas = FigureCanvasAgg(fig)
        self.dynamic = dynamic
        for artist in dynamic:
            artist.set_animated(True)
        self._background = None

    def invalidate(self) -> None:
        """Redraw the static part at the next render."""
        self._background = None

    def png(self) -> bytes:
        """The figure now, as PNG bytes."""
        if self._background is None:
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        else:
            self.canvas.restore_region(self._background)
        renderer = self.canvas.get_renderer()
        for artist in self.dynamic:
            artist.draw(renderer)
        w, h = self.canvas.get_width_height()
        image = PIL.Image.frombuffer("RGBA", (w, h), self.canvas.buffer_rgba(), "raw",
                                    "RGBA", 0, 1).convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format="png", compress_level=1)  # speed over a few kilobytes
        return buf.getvalue()


class Figures:
    """The six figures of one place on the page, kept from one run to the next.

    Building a figure and drawing its static part (axes, ticks, labels, legends) costs
    far more than a month's update, so a reset keeps the figures and redoes only what
    changed: the funding marks (when the schedule changed), the y-limits, and the network
    picture (when the network changed).

    Args:
        horizon: months on the time axis.
    """

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.canvases: dict[str, BlitCanvas] = {}
        self.charts: dict[str, Any] = {}
        self.network: tuple = ()
        self._marks: list = []
        self._schedule: bytes | None = None
        self._layout_key: str | None = None
        self._timeline_marks: list = []
        self._timeline_schedule: bytes | None = None
        self.timeline = None
        self._build_charts()

    def attach(self, model: ReintegrationModel, layout: NetworkLayout) -> None:
        """Point the figures at a new run at month 0."""
        funded = model.schedule.funded
        if funded.tobytes() != self._schedule:
            for artist in self._marks:
                artist.remove()
            self._marks = [m for ax, *_ in self.charts.values() for m in _mark_funding(ax, funded)]
            self._schedule = funded.tobytes()
            for key in CHART_SERIES:
                self.canvases[key].invalidate()
        initial = {"stages": _nice_ceiling(max(10, len(model.children)) * 1.15),
                   "attitudes": 1.0,
                   "funding": _nice_ceiling(max(5.0, model.params.monthly_budget) * 1.15)}
        for key, (ax, right, lines, now) in self.charts.items():
            for _, line, _ in lines:
                line.set_data([], [])
            now.set_xdata([0, 0])
            changed = ax.get_ylim() != (0, initial.get(key, 5.0))
            if right is not None and right.get_ylim() != (0, 5.0):
                right.set_ylim(0, 5.0)
                changed = True
            if changed:
                ax.set_ylim(0, initial.get(key, 5.0))
                self.canvases[key].invalidate()
        rebuilt = layout.key != self._layout_key
        if rebuilt:
            self._build_network(layout)
            self._layout_key = layout.key
        if rebuilt or funded.tobytes() != self._timeline_schedule:
            # The network picture carries a funding timeline, so that it too shows grant
            # ends and gaps, with the current month marked.
            for artist in self._timeline_marks:
                artist.remove()
            self._timeline_marks = _mark_funding(self.timeline, funded)
            self._timeline_schedule = funded.tobytes()
            self.canvases["network"].invalidate()
        self.network[-1].set_xdata([0, 0])

    def _build_charts(self) -> None:
        for key, (ylabel, series) in CHART_SERIES.items():
            # Sized to be shown about 600 pixels wide at 1:1 (see _build_network).
            fig = Figure(figsize=(7.5, 5.0), dpi=FIG_DPI, layout="constrained")
            ax = fig.add_subplot()
            _style_axes(ax, CHARTS[key], ylabel, self.horizon)
            lines = []
            for name, label, colour, style in series:
                (line,) = ax.plot([], [], style, color=colour, linewidth=3, label=label)
                lines.append((name, line, ax))
            right = None
            if key in RIGHT_AXIS:
                name, unit, colour = RIGHT_AXIS[key]
                right = ax.twinx()
                right.set_ylabel(unit, fontsize=FONT_SIZE, color=colour)
                right.tick_params(labelsize=FONT_SIZE - 1, colors=colour)
                right.spines[["top"]].set_visible(False)
                right.set_ylim(0, 5.0)
                (line,) = right.plot([], [], ":", color=colour, linewidth=3,
                                     label=TIMESERIES[name][0])
                lines.append((name, line, right))
            handles = [ln for _, ln, _ in lines]
            now = ax.axvline(0, color="#555555", linewidth=1.2)
            # Legend outside the data, so it is drawn once with the static part (text is
            # the slowest thing matplotlib draws).
            fig.legend(handles=handles + _funding_legend_handles(), loc="outside lower center",
                       ncols=4 if key == "stages" else 2, fontsize=FONT_SIZE - 2,
                       frameon=False, labelspacing=0.3, columnspacing=1.0,
                       handlelength=1.8, handletextpad=0.4)
            self.canvases[key] = BlitCanvas(fig, [now, *handles])
            self.charts[key] = (ax, right, lines, now)

    def _build_network(self, lay: NetworkLayout) -> None:
        # Sized to be shown about 600 pixels wide (half a projected page) at 1:1, so the
        # type keeps its size; fixed positions (no layout engine): network, legends, scale.
        fig = Figure(figsize=(7.5, 9.2), dpi=FIG_DPI)
        timeline = fig.add_axes((0.2, 0.905, 0.76, 0.028))
        timeline.set_xlim(0, self.horizon)
        timeline.set_yticks([])
        timeline.tick_params(labelsize=FONT_SIZE - 4, length=3, pad=1)
        timeline.set_ylabel("funding", fontsize=FONT_SIZE - 3, rotation=0, ha="right",
                            va="center")
        timeline.set_xlabel("months since start", fontsize=FONT_SIZE - 4, labelpad=1)
        now = timeline.axvline(0, color=OKABE_ITO["vermillion"], linewidth=3)
        self.timeline = timeline
        self._timeline_marks = []
        self._timeline_schedule = None
        ax = fig.add_axes((0.0, 0.3, 1.0, 0.56))
        ax.set_aspect("equal")
        ax.axis("off")
        ax.add_collection(LineCollection(lay.edges, colors="#CCCCCC", linewidths=0.4,
                                         zorder=0))
        hh = lay.shown_households
        fam = ax.scatter(lay.pos[hh, 0], lay.pos[hh, 1], s=16, marker="s",
                         c=np.zeros(len(hh)), cmap="Greys", vmin=0, vmax=1,
                         edgecolors="#777777", linewidths=0.3, zorder=1)
        cax = fig.add_axes((0.2, 0.075, 0.6, 0.02))
        cb = fig.colorbar(fam, cax=cax, orientation="horizontal")
        cb.set_label("squares: households, shaded by family acceptance",
                     fontsize=FONT_SIZE - 2)
        cb.ax.tick_params(labelsize=FONT_SIZE - 3)
        care_lines = LineCollection([], colors=OKABE_ITO["blue"], linewidths=0.7, alpha=0.35,
                                    zorder=2)
        ax.add_collection(care_lines)
        kids = ax.scatter(np.empty(0), np.empty(0), s=34, edgecolors="white",
                          linewidths=0.4, zorder=3)
        ld = lay.shown_leaders + lay.n_households
        leaders = ax.scatter(lay.pos[ld, 0], lay.pos[ld, 1], s=150, marker="D",
                             edgecolors="black", linewidths=1.6, zorder=4)
        staff = ax.scatter(np.empty(0), np.empty(0), s=110, marker="^",
                           c=OKABE_ITO["black"], edgecolors="white", linewidths=0.8, zorder=5)
        many = len(lay.centres) > 1
        for c, (x, y) in enumerate(lay.centres.tolist()):
            kind = "rural" if lay.rural[c] else "urban"
            if many:
                # Further out beside the clusters than above them: text is wide.
                r = 1.0 + 1.1 * lay.scale[c] + 0.14 + 0.2 * abs(x)
                x, y = x * r, y * r
            else:
                y += 1.12
            ax.text(x, y, f"{c + 1} {kind}", ha="center", va="center",
                    fontsize=FONT_SIZE - 2, color="#444444")
        lim = 1.0 + 0.45 + 1.1 * float(lay.scale.max()) if many else 1.25
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        stage_handles = [Line2D([], [], marker="o", linestyle="", markersize=11,
                                markerfacecolor=STAGE_COLOURS[s], markeredgecolor="white",
                                label=s.replace("_", " ")) for s in STAGES]
        other_handles = [
            Line2D([], [], marker="D", linestyle="", markersize=10, markerfacecolor="white",
                   markeredgecolor="black", markeredgewidth=1.6, label="leader"),
            Line2D([], [], marker="D", linestyle="", markersize=10, markerfacecolor="black",
                   markeredgecolor="black", label="trained leader"),
            Line2D([], [], marker="^", linestyle="", markersize=12, markerfacecolor="black",
                   markeredgecolor="black", label="professional (office: centre)"),
            Line2D([], [], color=OKABE_ITO["blue"], linewidth=2, label="caseworker–child"),
        ]
        kw = {"fontsize": FONT_SIZE - 1, "frameon": False, "columnspacing": 1.0,
              "handletextpad": 0.3, "title_fontsize": FONT_SIZE - 1}
        fig.legend(handles=stage_handles, loc="upper center", bbox_to_anchor=(0.5, 0.305),
                   ncols=3, title="Children (dots), by stage", **kw)
        fig.legend(handles=other_handles, loc="upper center", bbox_to_anchor=(0.5, 0.19),
                   ncols=2, **kw)
        fig.text(0.01, 0.993, CHARTS["network"], fontsize=FONT_SIZE + 2, fontweight="bold",
                 va="top")
        self.canvases["network"] = BlitCanvas(fig, [fam, care_lines, kids, leaders, staff, now])
        self.network = (fam, kids, leaders, staff, care_lines, now)


class Run:
    """One seeded model of one scenario, with its network layout and figures.

    Args:
        scenario: the loaded scenario (title and description are shown).
        params: the parameters to run (the scenario's, with the dashboard's overrides).
        seed: the run seed.
        figures: figures of an earlier run in the same place, to reuse.
        layouts: network layouts already computed, by :meth:`NetworkLayout.key_of`
            (read and added to).
    """

    def __init__(self, scenario: Scenario, params: Params, seed: int,
                 figures: Figures | None = None,
                 layouts: dict[str, NetworkLayout] | None = None) -> None:
        self.scenario = scenario
        self.params = params
        self.seed = seed
        self.model = ReintegrationModel(rng=seed, **params.to_dict())
        layouts = {} if layouts is None else layouts
        key = NetworkLayout.key_of(self.model, seed)
        if key not in layouts:
            while len(layouts) >= MAX_CACHED_LAYOUTS:
                layouts.pop(next(iter(layouts)))
            layouts[key] = NetworkLayout(self.model, seed)
        self.layout = layouts[key].fresh()
        if figures is None or figures.horizon != self.model.horizon:
            figures = Figures(self.model.horizon)
        figures.attach(self.model, self.layout)
        self.figures = figures
        self.images: dict[str, bytes] = {}
        self.render()

    # --- state ------------------------------------------------------------------------
    @property
    def month(self) -> int:
        """Months simulated so far."""
        return self.model.month

    @property
    def horizon(self) -> int:
        """Last month of the run."""
        return self.model.horizon

    @property
    def finished(self) -> bool:
        """True once the horizon is reached."""
        return not self.model.running

    def stat(self, name: str) -> float:
        """This month's value of a ``TIMESERIES`` column (0 before the first step)."""
        series = self.model.datacollector.model_vars.get(name, [])
        return series[-1] if series else 0

    def funding_status(self) -> str:
        """Plain words on this month's funding and the next grant end."""
        if self.month == 0:
            funded_next = bool(self.model.schedule.funded[:1].any())
            return "Not started: " + ("funded from month 1" if funded_next else "no funding")
        funded = self.model.schedule.funded
        if not funded.any():
            return "No programme funding in this scenario"
        if not self.model.funded:
            if not funded[self.month:].any():
                return "FUNDING ENDED: no money from now on; contracts have ended"
            return "FUNDING GAP: no money this month; contracts have ended"
        upcoming = [e for e in self.model.schedule.ends() if e >= self.month]
        return (f"Funded; this grant ends at month {upcoming[0]}" if upcoming
                else "Funded to the end of the run")

    def step(self) -> None:
        """Advance one month (no-op after the horizon)."""
        if self.model.running:
            self.model.step()

    def readout(self) -> dict[str, str]:
        """The controlled parameters of this run's model, formatted with their units."""
        p, out = self.model.params, {}
        for name in CONTROLLED:
            control = CONTROLS[name]
            text = control.format(getattr(p, name))
            out[name] = f"{text} {SPECS[name].unit}" if control.kind in ("float", "int") else text
        return out

    # --- figures ----------------------------------------------------------------------
    def _update_network(self) -> None:
        m, lay = self.model, self.layout
        fam, kids, leaders, staff, care_lines, now = self.figures.network
        now.set_xdata([m.month, m.month])
        ch = m.children
        fam.set_array(m.families.acceptance[lay.shown_households])
        pos = lay.children(ch.household)
        shown = ~np.isnan(pos[:, 0])
        kids.set_offsets(pos[shown])
        kids.set_facecolors(STAGE_PALETTE[ch.stage[shown]])
        trained = (m.leaders.trained[lay.shown_leaders] if len(m.leaders)
                   else np.zeros(0, bool))
        leaders.set_facecolors(np.where(trained, OKABE_ITO["black"], "white"))
        st = m.staff
        spos = lay.staff(st.role, st.community)
        active = ~st.left
        staff.set_offsets(spos[active] if active.any() else np.empty((0, 2)))
        in_care = np.flatnonzero((ch.stage == IN_CARE) & (ch.caseworker >= 0) & shown)
        care_lines.set_segments(np.stack([pos[in_care], spos[ch.caseworker[in_care]]], axis=1)
                                if len(in_care) else [])

    def _update_charts(self) -> None:
        data = self.model.datacollector.model_vars
        for key in CHART_SERIES:
            ax, right, lines, now = self.figures.charts[key]
            now.set_xdata([self.model.month, self.model.month])
            tops: dict[Any, float] = {}
            for name, line, axis in lines:
                y = np.asarray(data.get(name, []), float)
                line.set_data(np.arange(1, len(y) + 1), y)
                if len(y) and np.isfinite(y).any():
                    tops[axis] = max(tops.get(axis, 0.0), float(np.nanmax(y)))
            if key == "attitudes":
                continue  # fixed 0-1 scale
            changed = _grow_ylim(ax, tops.get(ax, 0.0), 5.0)
            if right is not None:
                changed |= _grow_ylim(right, tops.get(right, 0.0), 5.0)
            if changed:
                self.figures.canvases[key].invalidate()

    def update(self) -> None:
        """Bring every figure's data up to the current month (no drawing yet)."""
        self._update_network()
        self._update_charts()

    def draw(self) -> dict[str, bytes]:
        """Render every figure to PNG bytes (``images``)."""
        self.images = {key: self.figures.canvases[key].png() for key in CHARTS}
        return self.images

    def render(self) -> dict[str, bytes]:
        """Update and draw: the figures of the current month as PNG bytes."""
        self.update()
        return self.draw()


class Comparison:
    """One or two scenario runs on the same seed, stepped in lockstep.

    Controls the user has moved (``overrides``) apply to every run; loading a scenario
    for the first run clears them, so the controls show that scenario's values.
    A lock makes stepping (from the play loop's thread) and resetting (from the page)
    safe to interleave.

    Args:
        scenario: the first (or only) scenario's name.
        seed: the run seed.
        n_children: optional population override (not a workshop control; used by tests
            and timing).
    """

    def __init__(self, scenario: str = "baseline", seed: int = 42,
                 n_children: int | None = None) -> None:
        self.names = [scenario]
        self.second = "rolling" if scenario != "rolling" else "short_cycles"
        self.side_by_side = False
        self.seed = seed
        self.overrides: dict[str, Any] = {}
        self.extra: dict[str, Any] = {} if n_children is None else {"n_children": n_children}
        self.lock = threading.RLock()
        self.error = ""
        self.runs: list[Run] = []
        self._figures: list[Figures | None] = [None, None]
        self._layouts: dict[str, NetworkLayout] = {}
        self.reset()

    # --- queries ----------------------------------------------------------------------
    @staticmethod
    def scenario_names() -> list[str]:
        """Every scenario file shipped in ``scenarios/``."""
        return scenario_names()

    def scenario(self, which: int = 0) -> Scenario:
        """The loaded scenario of run ``which``."""
        return load_scenario(self.names[which])

    def value(self, name: str) -> Any:
        """The value a control shows: the user's override, else the first scenario's."""
        if name in self.overrides:
            return self.overrides[name]
        return getattr(self.scenario(0).params, name)

    @property
    def month(self) -> int:
        """Months simulated so far (the same for every run)."""
        return self.runs[0].month

    @property
    def finished(self) -> bool:
        """True once every run reached its horizon."""
        return all(r.finished for r in self.runs)

    # --- actions ----------------------------------------------------------------------
    def reset(self) -> None:
        """Rebuild every run at month 0 from its scenario, the overrides and the seed.

        An override that a scenario cannot take (for example weights that sum to zero)
        is reported in ``error`` and dropped, never half applied.
        """
        with self.lock:
            names = self.names[:1] + ([self.second] if self.side_by_side else [])
            self.names = names
            runs = []
            for i, name in enumerate(names):
                sc = load_scenario(name)
                params = sc.params.replace(**self.extra, **self.overrides)
                runs.append(Run(sc, params, self.seed, self._figures[i], self._layouts))
                self._figures[i] = runs[-1].figures
            self.runs = runs
            if self._share_scales():
                for run in runs:
                    run.draw()

    def step(self) -> None:
        """Advance every run one month and redraw its figures.

        Side by side, each chart gets the same y-axis in both runs, so that the room
        compares heights, not scales.
        """
        with self.lock:
            for run in self.runs:
                run.step()
                run.update()
            self._share_scales()
            for run in self.runs:
                run.draw()

    def _share_scales(self) -> bool:
        """Give each chart the larger y-range of the two runs; True if any changed."""
        changed = False
        if len(self.runs) < 2:
            return changed
        for key in CHART_SERIES:
            for axis in (0, 1):  # the left and (the staff chart) the right y-axis
                pairs = [(run, run.figures.charts[key][axis]) for run in self.runs]
                if any(ax is None for _, ax in pairs):
                    continue
                top = max(ax.get_ylim()[1] for _, ax in pairs)
                for run, ax in pairs:
                    if ax.get_ylim()[1] != top:
                        ax.set_ylim(0, top)
                        run.figures.canvases[key].invalidate()
                        changed = True
        return changed

    def set_param(self, name: str, value: Any) -> None:
        """Set one control's value (validated by ``SPECS``) and reset the runs."""
        self.set_params({name: value})

    def set_params(self, values: dict[str, Any]) -> None:
        """Set several controls' values at once and reset the runs once.

        A value the parameter set rejects, alone or in combination (for example budget
        weights that all become zero), is reported in ``error`` and not applied.
        """
        with self.lock:
            previous = dict(self.overrides)
            try:
                checked = {name: SPECS[name].check(v) for name, v in values.items()}
                self.overrides.update(checked)
                self.reset()
                self.error = ""
            except ValueError as exc:
                self.overrides = previous
                self.error = str(exc)
                self.reset()

    def load(self, name: str, which: int = 0) -> None:
        """Load scenario ``name`` into run ``which``; the first run's also resets controls."""
        with self.lock:
            if which == 0:
                self.names[0] = name
                self.overrides = {}
            else:
                self.second = name
            self.error = ""
            self.reset()

    def set_seed(self, seed: int) -> None:
        """Change the seed and reset."""
        with self.lock:
            self.seed = int(seed)
            self.reset()

    def set_side_by_side(self, on: bool) -> None:
        """Show one run, or two in lockstep; resets both to month 0."""
        with self.lock:
            self.side_by_side = bool(on)
            self.reset()
