"""The Sweeps tab in a real browser (Debian's Chromium through Playwright): the time a grid will take is on screen
before launch, a running sweep says its cell and phase, Start is off while it runs, a cancel while the pretrained
student scores the test split stops it within seconds, and after a reload the form shows the sweep's own settings.

    .venv/bin/python -m pytest -m browser tests/test_browser_sweeps.py
"""

from __future__ import annotations

import json
import time

import pytest
from test_browser import Page, browser, free_port  # noqa: F401  (browser is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def sweep_app(tmp_path_factory):
    """The app over a fresh workspace, with a calibration of the cells' student already on file (what the first
    estimate here would have measured, ~30 s; the calibration itself is tested in test_phases_queue.py)."""
    from workbench.builtin.demo import CLASSROOM_SWEEP
    from workbench.core.store import Store
    from workbench.data.tasks import load_task
    from workbench.distill.estimates import _key
    from workbench.distill.sweeps import SweepConfig
    from workbench.ui import launch

    root = tmp_path_factory.mktemp("browser-sweeps")
    store = Store.open(root / "ws")
    load_task("wordproblems-hard", store)
    walk = SweepConfig(task="wordproblems-hard", teacher="builtin", methods=("dss",), rows=(8,), seeds=(0,),
                       students=("smollm2-135m",), steps=1)
    pace = {"source": "calibrated", "s_per_step": 4.0, "s_per_step_min": 3.5, "load": 3.0, "save": 2.0,
            "s_per_generation": 0.15, "gives_rationales": True}
    calibration = root / "calibration.json"
    cells = [(s, c) for s in (walk, CLASSROOM_SWEEP) for c in s.cells()]  # the walk's and the form's defaults
    calibration.write_text(json.dumps({_key(s.config_for(c, 800, None)): pace for s, c in cells}))
    patch = pytest.MonkeyPatch()
    patch.setenv("WORKBENCH_CALIBRATION", str(calibration))
    demo = launch(root / "ws", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url.rstrip("/"), demo.workbench_store
    finally:
        from workbench.core.jobs import cancel_job, list_jobs

        for job in list_jobs(demo.workbench_store):  # a failed walk must not leave a sweep running
            cancel_job(demo.workbench_store, job["id"])
        demo.close()
        patch.undo()


def test_a_sweep_is_estimated_shows_its_phase_and_stops_when_cancelled_while_scoring(sweep_app, browser):  # noqa: F811
    url, store = sweep_app
    ui = Page(browser, url)
    ui.tab("Sweeps")
    # The form starts from the classroom sweep: SmolLM2 on the hard word problems, three seeds, and says how long.
    ui.wait_text("#sw-estimate", "runs", timeout=120_000)
    assert ui.page.locator("#sw-seeds textarea, #sw-seeds input").first.input_value() == "0, 1, 2"
    ui.page.locator("#sw-methods").get_by_text("standard", exact=True).click()  # dss only
    ui.type("#sw-sizes", "8")
    ui.type("#sw-seeds", "0")
    ui.wait_text("#sw-estimate", "one seed shows", timeout=60_000)  # what one seed can and cannot show
    ui.type("#sw-epochs", "")
    ui.type("#sw-steps", "1")
    ui.type("#sw-test-limit", "200")
    ui.type("#sw-name", "walk")
    ui.wait_text("#sw-estimate", "first 200 test examples", timeout=60_000)
    ui.wait_text("#sw-estimate", "1 runs, 1 steps", timeout=60_000)
    estimate = ui.text("#sw-estimate")
    assert "about" in estimate and "calibration" in estimate and "first 200 test examples" in estimate
    ui.page.locator("#sw-start").click()
    ui.wait_text("#sw-progress", "walk", timeout=60_000)
    assert ui.page.locator("#sw-start").is_disabled()  # one sweep at a time from this form
    # The running cell says what it is doing; cancel it while it scores the test split.
    ui.wait_text("#sw-progress", "scoring test", timeout=300_000)
    assert "cell 1/1" in ui.text("#sw-progress") and "wordproblems-hard" in ui.text("#sw-progress")
    asked = time.monotonic()
    ui.page.locator("#sw-cancel").click()
    ui.wait_text("#sw-progress", "cancelled", timeout=30_000)
    assert time.monotonic() - asked <= 10
    ui.page.wait_for_function("!document.querySelector('#sw-start').disabled", timeout=10_000)
    (run,) = [r for r in store.list_runs() if r["name"].startswith("walk--")]
    assert run["status"] == "cancelled" and run["summary"]["trained"]
    # A reload shows the shown sweep with its own settings, not the default form.
    ui.open()
    ui.tab("Sweeps")
    ui.wait_text("#sw-progress", "walk", timeout=60_000)
    ui.page.wait_for_function("document.querySelector('#sw-sizes textarea, #sw-sizes input').value === '8'",
                              timeout=30_000)
    assert ui.page.locator("#sw-seeds textarea, #sw-seeds input").first.input_value() == "0"
    ui.no_script_ran()
    assert ui.hosts <= {"127.0.0.1", "localhost"}, ui.hosts
