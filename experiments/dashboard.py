"""The workshop dashboard: the model's dynamics live in a browser, one or two scenarios.

Start it with ``reintegration dashboard`` (which calls :func:`serve`) and open the address
it prints. The page is a Solara app (``Page``); Solara is used directly rather than Mesa's
``SolaraViz`` because the dashboard runs two models in lockstep side by side, which
``SolaraViz`` (one model per page) does not offer. Runs, controls and figures live in
:mod:`experiments.dashboard_views`, which has no web code and is tested and timed on its
own.

Every control is generated from the parameter declarations (``model.parameters.SPECS``):
range, default, label and help text are never retyped here. Elements the browser test
finds carry stable CSS classes: ``scenario-picker``, ``scenario-picker-b``,
``side-by-side-switch``, ``seed-input``, ``play-button``, ``pause-button``, ``step-button``,
``reset-button``, ``control-speed``, ``control-<parameter>`` (with ``control-value``),
``readouts-<i>`` with ``readout-<parameter>`` (values read back from the run's model),
``run-<i>``, ``month-readout``, ``funding-status``, ``premature-exits``, ``worse-off``,
``chart-<key>``, ``scenario-title``, ``scenario-description``, ``step-time`` and
``disclaimer``.

Solara's page loads its browser code from a CDN unless a local copy exists; a workshop
room is often offline, so install the copy once with
``python -m experiments.dashboard install-assets`` (:func:`install_assets`, from the npm
registry); :func:`serve` warns when it is missing.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import solara

from experiments.dashboard_views import (
    CHARTS,
    CONTROL_GROUPS,
    CONTROLS,
    DISCLAIMER,
    OKABE_ITO,
    Comparison,
    ControlSpec,
    Run,
    funded_posts,
)
from model.parameters import SPECS

DEFAULT_SCENARIO = "baseline"
DEFAULT_SEED = 42
DEFAULT_SPEED = 3
"""Months per second while playing."""
MAX_SPEED = 10
DEBOUNCE_SECONDS = 0.35
"""A moved control takes effect once it has been still this long (dragging a slider
sends many values; each would otherwise rebuild the model)."""

CSS = f"""
html, body, .v-application {{ font-size: 19px; }}
.v-application {{ font-family: "DejaVu Sans", Verdana, sans-serif; }}
.v-app-bar-nav-icon .v-btn__content::before {{ content: "\\2630"; font-size: 28px; }}
.disclaimer {{ font-size: 1.05rem; font-weight: 600; border-left: 8px solid
  {OKABE_ITO["orange"]}; background: #FFF6E0; padding: 10px 16px; margin-bottom: 10px; }}
.run-header {{ border: 2px solid #DDDDDD; border-radius: 6px; padding: 10px 14px;
  margin-bottom: 10px; }}
.run-header.wide .header-grid {{ display: grid; grid-template-columns: 3fr 2fr; gap: 24px; }}
.readout-title {{ font-weight: 700; }}
.scenario-title {{ font-size: 1.45rem; font-weight: 700; }}
.scenario-description {{ font-size: 0.95rem; line-height: 1.35; }}
.month-readout {{ font-size: 1.6rem; font-weight: 700; }}
.funding-status {{ font-size: 1.15rem; font-weight: 600; padding: 2px 8px; border-radius: 4px;
  background: #E8F4FA; margin: 4px 0; display: inline-block; }}
.funding-status.gap {{ background: {OKABE_ITO["vermillion"]}; color: white; }}
.count-box {{ font-size: 1.15rem; }}
.count-box b {{ font-size: 1.5rem; }}
.readouts {{ display: flex; flex-wrap: wrap; gap: 2px 16px; font-size: 0.8rem;
  color: #333333; margin-top: 8px; border-top: 1px solid #DDDDDD; padding-top: 4px; }}
.control-label {{ font-size: 0.95rem; font-weight: 600; }}
.control-value {{ font-size: 1.0rem; font-weight: 700; color: {OKABE_ITO["blue"]}; }}
.param-control {{ margin-bottom: 4px; }}
.group-title {{ font-size: 1.1rem; font-weight: 700; margin-top: 10px;
  border-bottom: 2px solid #CCCCCC; }}
.posts-readout, .step-time {{ font-size: 0.9rem; color: #333333; }}
.dash-grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 12px; align-items: start; }}
.dash-grid img {{ width: 100%; height: auto; }}
.controls-row button {{ font-size: 1.0rem !important; }}
.error-text {{ color: {OKABE_ITO["vermillion"]}; font-weight: 700; }}
"""


# --- small components -----------------------------------------------------------------
@solara.component
def ParamControl(control: ControlSpec, value: Any, on_value) -> None:
    """One generated control: label with the current value and unit, then the input."""
    with solara.Div(classes=["param-control", f"control-{control.name}"]):
        with solara.Tooltip(control.help):
            with solara.Div():
                solara.Text(control.label + ": ", classes=["control-label"])
                solara.Text(control.format(value), classes=["control-value"])
        if control.kind == "float":
            solara.SliderFloat("", value=float(value), min=control.min, max=control.max,
                               step=control.step, on_value=on_value, thumb_label=False)
        elif control.kind == "int":
            solara.SliderInt("", value=int(value), min=int(control.min), max=int(control.max),
                             step=int(control.step), on_value=on_value, thumb_label=False)
        elif control.kind == "choice":
            solara.Select("", values=list(control.choices), value=value, on_value=on_value,
                          classes=[f"select-{control.name}"])
        else:
            solara.Switch(label="yes" if value else "no", value=bool(value),
                          on_value=on_value, classes=[f"switch-{control.name}"])


@solara.component
def ScenarioText(title: str, description: str) -> None:
    """A scenario's title and plain-language description."""
    solara.Text(title, classes=["scenario-title"])
    solara.Div(children=[description.strip()], classes=["scenario-description"])


@solara.component
def Readouts(index: int, items: tuple[tuple[str, str], ...]) -> None:
    """The run's own parameter values (``readout-<parameter>``), read from its model."""
    with solara.Div(classes=["readouts", f"readouts-{index}", f"run-{index}"]):
        solara.Text(f"Parameters of run {index + 1}:", classes=["readout-title"])
        for name, text in items:
            solara.Text(f"{name} = {text}", classes=["readout", f"readout-{name}"])


@solara.component
def RunHeader(run: Run, index: int, version: int, wide: bool) -> None:
    """Scenario title and description, month, funding status and running counts.

    Args:
        run: the run shown.
        index: its position (0 left, 1 right); gives the ``run-<index>`` class.
        version: changes whenever the run does (components re-render only when their
            arguments change, and ``run`` is the same object from month to month).
        wide: the only run on the page: description and status side by side.
    """
    gap = run.month > 0 and not run.model.funded and bool(run.model.schedule.funded.any())
    with solara.Div(classes=["run-header", f"run-{index}"] + (["wide"] if wide else [])):
        with solara.Div(classes=["header-grid"]):
            with solara.Div():
                ScenarioText(run.scenario.title, run.scenario.description)
            with solara.Div():
                solara.Text(f"Month {run.month} of {run.horizon}", classes=["month-readout"])
                solara.Div(children=[run.funding_status()],
                           classes=["funding-status"] + (["gap"] if gap else []))
                for cls, text, key in (
                        ("premature-exits", "Premature exits so far", "premature_exits"),
                        ("worse-off", "Worse off than at intake now", "worse_off_than_intake"),
                        ("stable-now", "Stably reintegrated now", "n_reintegrated")):
                    solara.HTML(tag="div", classes=["count-box", cls],
                                unsafe_innerHTML=f"{text}: <b>{int(run.stat(key))}</b> children")


@solara.component
def Charts(runs: list[Run], version: int) -> None:
    """Every chart; with two runs, each chart of one next to the same chart of the other.

    ``version``: as for :func:`RunHeader`.
    """
    if len(runs) == 1:
        run = runs[0]
        img = {k: solara.Image(run.images[k], classes=["chart", f"chart-{k}", "run-0"])
               for k in CHARTS}
        with solara.Div(classes=["dash-grid"]):
            solara.Div(children=[img["network"]])
            solara.Div(children=[img["stages"], img["harm"]])
            solara.Div(children=[img["attitudes"]])
            solara.Div(children=[img["staff"]])
            solara.Div(children=[img["funding"]])
        return
    with solara.Div(classes=["dash-grid"]):
        for key in CHARTS:
            for i, run in enumerate(runs):
                solara.Image(run.images[key], classes=["chart", f"chart-{key}", f"run-{i}"])


# --- the page -------------------------------------------------------------------------
class Controller:
    """One browser tab's dashboard: the runs, the page's reactive state and the actions.

    Two counters tell components when to redraw: ``version`` after every change to the
    runs (each month), ``config`` only when scenario, seed, parameters or mode change, so
    the control panel is not rebuilt every month.
    """

    def __init__(self) -> None:
        self.comp = Comparison(DEFAULT_SCENARIO, DEFAULT_SEED)
        self.version = solara.reactive(0)
        self.config = solara.reactive(0)
        self.playing = solara.reactive(False)
        self.speed = solara.reactive(DEFAULT_SPEED)
        self.pending: solara.Reactive[dict[str, Any]] = solara.reactive({})
        self.step_ms = 0.0

    def changed(self, config: bool = False) -> None:
        """Tell the page the runs changed (and, with ``config``, the settings too)."""
        if config:
            self.config.value += 1
        self.version.value += 1

    def step(self, only_while_playing: bool = False) -> None:
        """Advance every run one month and redraw (the Step button, or the play loop).

        Args:
            only_while_playing: skip the step if Pause or Reset came first (the play loop
                may have been waiting for a reset to finish).
        """
        with self.comp.lock:
            if only_while_playing and not self.playing.value:
                return
            t0 = time.perf_counter()
            self.comp.step()
            self.step_ms = 1000 * (time.perf_counter() - t0)
        self.changed(config=self.comp.finished)

    def play_loop(self) -> None:
        """Step at the chosen speed while playing (runs in a thread)."""
        while self.playing.value and not self.comp.finished:
            t0 = time.perf_counter()
            self.step(only_while_playing=True)
            time.sleep(max(0.0, 1.0 / self.speed.value - (time.perf_counter() - t0)))
        self.playing.value = False

    def move(self, name: str, value: Any) -> None:
        """A control moved: remember it; :meth:`apply_pending` applies it once still."""
        self.pending.value = {**self.pending.value, name: value}

    def apply_pending(self) -> None:
        """Apply moved controls after ``DEBOUNCE_SECONDS`` without a newer move (a thread)."""
        snapshot = self.pending.value
        if not snapshot:
            return
        time.sleep(DEBOUNCE_SECONDS)
        if self.pending.value is not snapshot:
            return  # superseded by a newer move; that one applies
        self.comp.set_params(snapshot)
        if self.pending.value is snapshot:
            self.pending.value = {}
        self.changed(config=True)

    def reset(self) -> None:
        """Back to month 0 with the same settings (the Reset button)."""
        self.playing.value = False
        self.comp.reset()
        self.changed(config=True)

    def load(self, which: int, name: str | None) -> None:
        """Load a scenario into the first (0) or second (1) place."""
        if name:
            self.comp.load(name, which)
            if which == 0:
                self.pending.value = {}
            self.changed(config=True)

    def set_side_by_side(self, on: bool) -> None:
        """Switch between one run and two side by side."""
        self.comp.set_side_by_side(on)
        self.changed(config=True)

    def set_seed(self, seed: int | None) -> None:
        """Use another seed (both runs share it)."""
        if seed is not None and seed >= 0:
            self.comp.set_seed(seed)
            self.changed(config=True)


@solara.component
def ControlPanel(ctl: Controller) -> None:
    """The sidebar: scenario picker, mode, play controls, seed and the generated controls."""
    _ = ctl.config.value  # rebuilt when the settings change, not every month
    comp, playing = ctl.comp, ctl.playing
    names = comp.scenario_names()
    with solara.Column(gap="6px"):
        solara.Select("Scenario", values=names, value=comp.names[0],
                      on_value=lambda name: ctl.load(0, name), classes=["scenario-picker"])
        solara.Switch(label="Side by side: compare two scenarios", value=comp.side_by_side,
                      on_value=ctl.set_side_by_side, classes=["side-by-side-switch"])
        if comp.side_by_side:
            solara.Select("Second scenario", values=names, value=comp.second,
                          on_value=lambda name: ctl.load(1, name),
                          classes=["scenario-picker-b"])
        with solara.Row(classes=["controls-row"], gap="6px"):
            if playing.value:
                solara.Button("❚❚ Pause", on_click=lambda: playing.set(False),
                              color="primary", classes=["pause-button"])
            else:
                solara.Button("▶ Play", on_click=lambda: playing.set(True), color="primary",
                              classes=["play-button"], disabled=comp.finished)
            solara.Button("Step", on_click=ctl.step, classes=["step-button"],
                          disabled=playing.value or comp.finished)
            solara.Button("Reset", on_click=ctl.reset, classes=["reset-button"])
        with solara.Div(classes=["control-speed"]):
            solara.Text(f"Speed: {ctl.speed.value} months per second", classes=["control-label"])
            solara.SliderInt("", value=ctl.speed, min=1, max=MAX_SPEED, thumb_label=False)
        solara.InputInt("Seed (same seed, same run)", value=comp.seed, on_value=ctl.set_seed,
                        classes=["seed-input"])
        if comp.side_by_side:
            solara.Text("A control you move applies to both scenarios.",
                        classes=["posts-readout"])
        pending = ctl.pending.value
        for group, params in CONTROL_GROUPS.items():
            solara.Text(group, classes=["group-title"])
            for name in params:
                ParamControl(CONTROLS[name], pending.get(name, comp.value(name)),
                             functools.partial(ctl.move, name))
            if group.startswith("Budget"):
                run_params = comp.runs[0].model.params
                posts = funded_posts(run_params)
                solara.Text("The full monthly budget pays for "
                            + ", ".join(f"{n} {role}" for role, n in posts.items())
                            + f" (salary {run_params.salary:,.0f} {SPECS['salary'].unit}).",
                            classes=["posts-readout"])


@solara.component
def Page() -> None:
    """The dashboard page (Solara's entry point)."""
    ctl: Controller = solara.use_memo(Controller, [])
    _ = ctl.version.value  # redraw when the runs change
    solara.lab.use_task(ctl.play_loop, dependencies=[ctl.playing.value], prefer_threaded=True)
    solara.lab.use_task(ctl.apply_pending, dependencies=[ctl.pending.value],
                        prefer_threaded=True)
    # The theme's accent: Okabe-Ito blue (colour-blind safe, strong on a projector).
    solara.lab.theme.themes.light.primary = OKABE_ITO["blue"]
    solara.lab.theme.themes.dark.primary = OKABE_ITO["blue"]  # the app bar uses the dark theme
    solara.Style(CSS)
    solara.Title("Reintegration workshop dashboard")
    solara.AppBarTitle("Children's reintegration: workshop")
    with solara.Sidebar():
        ControlPanel(ctl)
    solara.Div(children=[DISCLAIMER], classes=["disclaimer"])
    comp = ctl.comp
    if comp.error:
        solara.Text(comp.error, classes=["error-text"])
    runs = comp.runs
    with solara.Div(classes=["dash-grid"] if len(runs) > 1 else []):
        for i, run in enumerate(runs):
            RunHeader(run, i, ctl.version.value, wide=len(runs) == 1)
    Charts(runs, ctl.version.value)
    with solara.Div(classes=["dash-grid"] if len(runs) > 1 else []):
        for i, run in enumerate(runs):
            Readouts(i, (("scenario", run.scenario.name), *run.readout().items(),
                         ("seed", str(run.seed))))
    solara.Text(f"Last step and redraw: {ctl.step_ms:.0f} ms", classes=["step-time"])


# --- browser assets -------------------------------------------------------------------
_CDN_PACKAGE = re.compile(r"\{\{\s*cdn\s*\}\}/((?:@[\w.-]+/)?[\w.-]+@[\w.-]+)/")


def asset_dir() -> Path:
    """Solara's local copy of its browser assets (its CDN proxy cache)."""
    import solara.server.settings

    return Path(solara.server.settings.assets.proxy_cache_dir)


def required_assets() -> list[str]:
    """The npm packages (``name@version``) Solara's page template loads from its CDN."""
    import solara.server
    import solara.server.settings

    templates = Path(solara.server.__file__).parent / "templates"
    found: set[str] = set()
    for template in templates.glob("*.j2"):
        found.update(_CDN_PACKAGE.findall(template.read_text(encoding="utf-8")))
    assets = solara.server.settings.assets
    if assets.fontawesome_enabled:
        found.add(assets.fontawesome_path.strip("/").split("/")[0])
    return sorted(found)


def missing_assets() -> list[str]:
    """Required browser assets that are not on this machine.

    Without them the page fetches them from a public CDN when it loads, and stays blank
    offline (a workshop room often is). ``pip install solara-assets`` provides most;
    :func:`install_assets` provides any that package lacks for this Solara version.
    """
    root = asset_dir()
    return [pkg for pkg in required_assets() if not (root / pkg).is_dir()]


def install_assets() -> list[str]:
    """Put missing browser assets into Solara's local asset folder, from the npm registry.

    Uses ``npm pack`` (npm's ordinary client) for each missing ``name@version`` and unpacks
    the package where Solara's CDN proxy looks first. Returns what was installed.

    Raises:
        UserError: when npm is not installed or a package cannot be fetched.
    """
    import shutil
    import tarfile
    import tempfile

    from .errors import UserError

    missing = missing_assets()
    if not missing:
        return []
    npm = shutil.which("npm")
    if npm is None:
        raise UserError("npm not found: install Node.js and npm (Debian: apt-get install npm), "
                        f"then rerun; missing assets: {', '.join(missing)}")
    root = asset_dir()
    with tempfile.TemporaryDirectory() as tmp:
        for pkg in missing:
            done = subprocess.run([npm, "pack", pkg, "--pack-destination", tmp, "--silent"],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise UserError(f"npm pack {pkg} failed ({done.stderr.strip()[:200]}); "
                                "check access to the npm registry")
            tarball = Path(tmp) / done.stdout.strip().splitlines()[-1]
            target = root / pkg
            unpacked = Path(tmp) / "unpacked"
            with tarfile.open(tarball) as tar:
                tar.extractall(unpacked, filter="data")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(unpacked / "package", target, dirs_exist_ok=True)
            shutil.rmtree(unpacked)
    return missing


# --- serving --------------------------------------------------------------------------
def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def command(host: str, port: int) -> list[str]:
    """The Solara server command line for the dashboard."""
    return [sys.executable, "-m", "solara", "run", "experiments.dashboard", "--host", host,
            "--port", str(port), "--production", "--no-open", "--log-level", "warning"]


def server_env() -> dict[str, str]:
    """The environment for the server: Solara's usage telemetry off (workshops are private)."""
    return {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
            "SOLARA_THEME_SHOW_BANNER": "False"}


def serve(host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the dashboard's web server until interrupted (Ctrl-C).

    Args:
        host: address to listen on; the default serves this machine only.
        port: TCP port.

    Raises:
        UserError: when the port is already in use.
    """
    from .errors import UserError

    if not _port_free(host, port):
        raise UserError(f"--port {port}: already in use on {host}; give another port, "
                        "e.g. --port 8766")
    missing = missing_assets()
    if missing:
        print(f"warning: browser assets {', '.join(missing)} are not on this machine; the page "
              "will fetch them from the internet and stay blank offline. Install them once "
              "with: python -m experiments.dashboard install-assets", file=sys.stderr)
    print(f"Open http://{host}:{port} in a browser", flush=True)
    if host in ("0.0.0.0", "::"):
        print("(listening on every network interface: use this machine's address)")
    print(DISCLAIMER, flush=True)
    proc = subprocess.Popen(command(host, port), env=server_env())
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        print("dashboard stopped")


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.dashboard install-assets``: the one-off install step."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["install-assets"]:
        print("usage: python -m experiments.dashboard install-assets\n"
              "(to start the dashboard: reintegration dashboard)", file=sys.stderr)
        return 2
    from .errors import UserError

    try:
        installed = install_assets()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"installed {', '.join(installed)} into {asset_dir()}" if installed
          else f"all browser assets present in {asset_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
