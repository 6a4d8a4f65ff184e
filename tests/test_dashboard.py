"""The workshop dashboard: controls generated from SPECS, a 500-child smoke test, and an
end-to-end test in a real browser (Playwright driving Debian's chromium).

The browser test starts ``reintegration dashboard`` on a free local port, drives the page
like a facilitator would and saves screenshots under the test's tmp folder; the final ones
are copied to ``results/screenshots/`` for people to look at. It is skipped only when no
chromium executable exists (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from experiments.dashboard_views import (
    CHARTS,
    CONTROL_GROUPS,
    CONTROLLED,
    CONTROLS,
    DISCLAIMER,
    OKABE_ITO,
    STAGE_COLOURS,
    Comparison,
    funded_posts,
    funding_gaps,
)
from experiments.scenarios import load_scenario, scenario_names
from model.parameters import SPECS, Params

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- without a browser ------------------------------------------------------------------
def test_dashboard_module_imports_and_exposes_page_and_serve():
    import experiments.dashboard as dashboard

    assert callable(dashboard.serve)
    assert callable(dashboard.Page)
    assert "not a prediction about real children" in DISCLAIMER


def test_controls_are_generated_from_specs():
    workshop = {"initial_stigma", "leader_training_rate", "funding_scheme", "grant_months",
                "gap_months", "monthly_budget", "base_turnover", "coordination",
                "budget_staff_support"} | {f"budget_{x}" for x in
                                            ("casework", "family", "community", "monitoring")}
    assert workshop <= set(CONTROLLED)
    assert list(CONTROLS) == [n for names in CONTROL_GROUPS.values() for n in names]
    for name, control in CONTROLS.items():
        spec = SPECS[name]
        assert control.default == spec.default, name
        assert type(control.default) is type(spec.default), name
        assert control.help == spec.description
        if control.kind in ("float", "int"):
            lo, hi = spec.bounds
            assert lo <= control.min <= control.default <= control.max <= hi, name
            assert spec.unit in control.label
            # The default sits on the slider's grid, so the slider can show it exactly.
            steps = (control.default - control.min) / control.step
            assert abs(steps - round(steps)) < 1e-6, name
        elif control.kind == "choice":
            assert control.choices == spec.choices
            assert control.default in control.choices
        else:
            assert spec.type is bool


def test_funding_gaps_are_stretches_of_unfunded_months():
    funded = np.array([1, 1, 0, 0, 1, 0], bool)
    assert funding_gaps(funded) == [(2, 4), (5, 6)]
    assert funding_gaps(np.ones(4, bool)) == []


def test_funded_posts_follow_budget_and_salary():
    p = Params()
    posts = funded_posts(p)
    assert posts["caseworkers"] == int(p.monthly_budget * p.budget_shares()["casework"]
                                       // p.salary)
    doubled = funded_posts(p.replace(monthly_budget=2 * p.monthly_budget))
    assert doubled["caseworkers"] >= 2 * posts["caseworkers"]


def test_palette_is_okabe_ito():
    assert set(STAGE_COLOURS.values()) <= set(OKABE_ITO.values())
    assert len(set(STAGE_COLOURS.values())) == len(STAGE_COLOURS)


def test_step_and_render_a_500_child_dashboard_model():
    comp = Comparison("short_cycles", seed=3, n_children=500)
    run = comp.runs[0]
    assert run.model.params.n_children == 500
    assert set(run.images) == set(CHARTS)
    first = dict(run.images)
    for _ in range(3):
        comp.step()
    assert comp.month == 3
    for key, png in run.images.items():
        assert png.startswith(PNG_MAGIC), key
        assert png != first[key], f"chart {key} did not change after three months"
    # Run to the first funding gap (short cycles: 12-month grants): the charts still render.
    while comp.month < 14:
        comp.step()
    assert not run.model.funded
    assert "FUNDING GAP" in run.funding_status()


def test_controls_scenarios_and_side_by_side_drive_the_models():
    comp = Comparison("baseline", seed=5, n_children=200)
    comp.set_param("initial_stigma", 0.8)
    assert comp.runs[0].model.params.initial_stigma == 0.8
    assert comp.runs[0].readout()["initial_stigma"].startswith("0.80")
    assert comp.value("initial_stigma") == 0.8

    comp.load("high_stigma")  # loading a scenario sets the controls to its values
    high = load_scenario("high_stigma")
    assert comp.overrides == {}
    assert comp.value("initial_stigma") == high.params.initial_stigma
    assert comp.runs[0].scenario.title == high.title

    comp.load("short_cycles")
    comp.set_side_by_side(True)
    assert [r.scenario.name for r in comp.runs] == ["short_cycles", "rolling"]
    comp.set_param("base_turnover", 0.02)  # a moved control applies to both
    assert all(r.model.params.base_turnover == 0.02 for r in comp.runs)
    for _ in range(2):
        comp.step()
    assert [r.month for r in comp.runs] == [2, 2]
    assert comp.runs[0].seed == comp.runs[1].seed == 5

    comp.set_seed(9)
    assert [(r.seed, r.month) for r in comp.runs] == [(9, 0), (9, 0)]

    # A combination the parameter set rejects is reported and not applied.
    zero = {f"budget_{x}": 0.0 for x in ("casework", "family", "community", "staff_support",
                                          "monitoring")}
    comp.set_params(zero)
    assert "budget" in comp.error
    assert comp.runs[0].model.params.budget_casework > 0


def test_every_scenario_loads_in_the_dashboard():
    comp = Comparison("baseline", seed=1, n_children=100)
    for name in scenario_names():
        comp.load(name)
        comp.step()
        assert comp.month == 1, name
        assert comp.runs[0].scenario.name == name
        assert comp.value("funding_scheme") == load_scenario(name).params.funding_scheme


def test_serve_refuses_a_busy_port():
    from experiments.dashboard import serve
    from experiments.errors import UserError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UserError, match="already in use"):
            serve("127.0.0.1", port)


# --- in a browser -----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard_url(tmp_path_factory):
    """Start ``reintegration dashboard`` on a free local port; yield its address."""
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not installed: no browser at {CHROMIUM} "
                    "(Debian: apt-get install chromium)")
    from experiments.dashboard import missing_assets

    missing = missing_assets()
    if missing:
        pytest.fail(f"Solara's browser assets {missing} are missing, so the page would stay "
                    "blank offline; install them with: "
                    "python -m experiments.dashboard install-assets")
    port = _free_port()
    log = tmp_path_factory.mktemp("dashboard") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from experiments.cli import main; raise SystemExit(main())",
             "dashboard", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dashboard did not answer at {url} within 180 s:\n"
                            f"{log.read_text()}")
            time.sleep(0.5)
        assert f"Open {url} in a browser" in log.read_text()
        yield url
    finally:
        # The server and the Solara process it started share a new session: end both.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _month(page, run: int = 0) -> int:
    text = page.locator(f".run-header.run-{run} .month-readout").inner_text()
    return int(text.split()[1])


def _wait_month(page, month: int, run: int = 0, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "([sel, m]) => { const e = document.querySelector(sel);"
        " return e && e.innerText.startsWith('Month ' + m + ' '); }",
        arg=[f".run-header.run-{run} .month-readout", month], timeout=timeout)


def _wait_text(page, selector: str, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "([sel, t]) => { const e = document.querySelector(sel);"
        " return e && e.innerText.includes(t); }",
        arg=[selector, text], timeout=timeout)


def _shot(page, path: Path) -> None:
    """Screenshot the whole page: Solara scrolls its main area inside the window, so the
    window is made as tall as the content for the shot."""
    size = page.viewport_size
    height = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll('*'),"
                           " e => e.scrollHeight))")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(300)
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(size)


def _pick(page, picker: str, option: str) -> None:
    page.locator(f".{picker}").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_dashboard_in_a_browser(dashboard_url, tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright not installed: pip install -e '.[dev]' (it is a dev "
                    "dependency; no browser download is needed)")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    timings = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(dashboard_url, wait_until="domcontentloaded")

            # The page loads, with the disclaimer and the baseline scenario.
            page.wait_for_selector(".disclaimer", timeout=120_000)
            assert "not a prediction about real children" in page.locator(
                ".disclaimer").inner_text()
            baseline = load_scenario("baseline")
            _wait_text(page, ".run-0 .scenario-title", baseline.title)
            assert _month(page) == 0
            _shot(page, shots / "01-loaded.png")

            # Stepping advances the month and changes the charts.
            before = page.locator(".chart-stages.run-0").screenshot()
            for month in (1, 2, 3):
                t0 = time.perf_counter()
                page.locator(".step-button").click()
                _wait_month(page, month)
                timings.append(time.perf_counter() - t0)
            after = page.locator(".chart-stages.run-0").screenshot()
            assert before != after, "the stage chart did not change after three steps"
            _shot(page, shots / "02-stepped.png")

            # Moving a slider changes the model's parameter (the run's own readout).
            default = CONTROLS["initial_stigma"]
            assert page.locator(".readouts-0 .readout-initial_stigma").inner_text().startswith(
                f"initial_stigma = {default.format(default.default)}")
            thumb = page.locator(".control-initial_stigma [role=slider]")
            thumb.focus()
            for _ in range(5):
                thumb.press("ArrowRight")
            moved = default.format(default.default + 5 * default.step)
            _wait_text(page, ".readouts-0 .readout-initial_stigma", f"initial_stigma = {moved}")
            assert moved in page.locator(".control-initial_stigma .control-value").inner_text()
            assert _month(page) == 0  # a changed parameter starts the run again
            _shot(page, shots / "03-slider.png")

            # The scenario picker loads a scenario: its title, description and values.
            high = load_scenario("high_stigma")
            _pick(page, "scenario-picker", "high_stigma")
            _wait_text(page, ".run-0 .scenario-title", high.title)
            first_words = " ".join(high.description.split()[:6])
            assert first_words in " ".join(
                page.locator(".run-0 .scenario-description").inner_text().split())
            _wait_text(page, ".readouts-0 .readout-initial_stigma",
                       f"initial_stigma = {default.format(high.params.initial_stigma)}")
            _shot(page, shots / "04-scenario.png")

            # Side by side: short cycles and rolling funding in lockstep, same seed.
            short, rolling = load_scenario("short_cycles"), load_scenario("rolling")
            _pick(page, "scenario-picker", "short_cycles")
            _wait_text(page, ".run-0 .scenario-title", short.title)
            page.locator(".side-by-side-switch input").click()
            _wait_text(page, ".run-1 .scenario-title", rolling.title)
            page.wait_for_selector(".chart-network.run-1")
            page.wait_for_selector(".chart-funding.run-0")
            # Play (fastest speed) for a while, pause, then step into the first funding gap
            # of the short cycles (months 13-15): the cliff in one, not in the other.
            speed = page.locator(".control-speed [role=slider]")
            speed.focus()
            speed.press("End")
            page.locator(".play-button").click()
            page.wait_for_function(
                "() => { const e = document.querySelector('.run-0 .month-readout');"
                " return e && parseInt(e.innerText.split(' ')[1]) >= 4; }", timeout=120_000)
            page.locator(".pause-button").click()
            page.wait_for_selector(".play-button")
            page.wait_for_timeout(500)
            assert _month(page, 0) == _month(page, 1), "the two runs are not in lockstep"
            while _month(page) < 14:
                target = _month(page) + 1
                page.locator(".step-button").click()
                _wait_month(page, target)
                _wait_month(page, target, run=1)
            assert "FUNDING GAP" in page.locator(".run-0 .funding-status").inner_text()
            assert "FUNDING GAP" not in page.locator(".run-1 .funding-status").inner_text()
            step_time = page.locator(".step-time").inner_text()
            _shot(page, shots / "05-side-by-side.png")
            # What a room sees on a 1280 x 720 projector, without scrolling.
            page.set_viewport_size({"width": 1280, "height": 720})
            page.wait_for_timeout(500)
            page.screenshot(path=shots / "06-projector-1280x720.png")
        finally:
            browser.close()
    final = ROOT / "results" / "screenshots"
    final.mkdir(parents=True, exist_ok=True)
    for shot in sorted(shots.glob("*.png")):
        shutil.copy2(shot, final / f"dashboard-{shot.name}")
    print(f"\nbrowser step (click to new month shown), single run: "
          f"{', '.join(f'{t * 1000:.0f} ms' for t in timings)}; server, side by side: "
          f"{step_time}; screenshots in {shots} and {final}")
