"""The whole demo in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

Walks it as a new user first (the Train form's defaults, untouched, start a run), then task & teacher → 50
rationales → an edit that survives a reload → a tiny dss student → compare and "ask both", and checks that no
request leaves 127.0.0.1, that hostile text (a rationale, a CSV cell, labels that are Markdown images) renders as
text, and that table headers keep their words whole with no column hidden behind a scroll.
Saves a screenshot of each tab: into ``assets/`` for the README when ``WORKBENCH_SCREENSHOTS=1``, else into the
test's temporary folder (so a test run never rewrites tracked files).

    make system-deps && WORKBENCH_SCREENSHOTS=1 WORKBENCH_SCREENSHOT_STEPS=500 \
        .venv/bin/python -m pytest -m browser tests/test_browser.py
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ASSETS = (Path(__file__).resolve().parents[1] / "assets" if os.environ.get("WORKBENCH_SCREENSHOTS") == "1"
          else Path(tempfile.mkdtemp(prefix="workbench-shots-")))
# A payload that would set a flag if it ever ran as script or as an <img onerror> handler.
SCRIPT = "<script>window.__xss = 1</script>"
IMG = "<img src=x onerror=\"window.__xss = 2\">"
EDITED = "EDITED by the browser test: 4 - 2 - 1 = 1"
PIXEL_LABELS = ("![p](http://127.0.0.2:18111/p1.png)", "x` ![p](http://127.0.0.3:18111/p2.png) `y")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app over a fresh workspace holding one custom task whose CSV cell carries the payloads."""
    from workbench.core.store import Store
    from workbench.imports.custom import ColumnMapping, import_custom
    from workbench.ui import launch

    root = tmp_path_factory.mktemp("browser")
    csv = root / "hostile.csv"
    csv.write_text(f"question,answer\n\"{SCRIPT} {IMG.replace(chr(34), chr(34) * 2)}\",yes\nplain question,no\n",
                   encoding="utf-8")
    store = Store.open(root / "ws")
    import_custom(store, "hostile", csv, ColumnMapping(inputs=("question",), label="answer", kind="classes"))
    # Labels that are Markdown images pointing at other hosts: shown in the task's facts, never fetched.
    pixels = root / "pixels.csv"
    pixels.write_text("question,answer\n" + "".join(f"q{i},\"{lab}\"\n" for i, lab in enumerate(PIXEL_LABELS * 3)),
                      encoding="utf-8")
    import_custom(store, "pixels", pixels, ColumnMapping(inputs=("question",), label="answer", kind="classes"))
    demo = launch(root / "ws", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url.rstrip("/"), demo.workbench_store
    finally:
        from workbench.core.jobs import cancel_job, list_jobs

        for job in list_jobs(demo.workbench_store):  # a failed walk must not leave a training job running
            cancel_job(demo.workbench_store, job["id"])
        demo.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail(f"Debian's Chromium is missing at {CHROMIUM}: run `make system-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A page that records every request's host and every dialog (an alert would mean script ran)."""

    def __init__(self, browser, url: str):
        self.url = url
        self.hosts: set[str] = set()
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.on("request", lambda r: self.hosts.add(urlparse(r.url).hostname or r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.open()

    def open(self) -> None:
        self.page.goto(self.url)
        self.page.get_by_role("tab", name="Task & teacher").wait_for(timeout=60_000)
        self.page.wait_for_function("document.querySelector('#task-info')?.innerText.includes('source')",
                                    timeout=60_000)

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name).click()
        self.page.wait_for_timeout(800)

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def wait_text(self, selector: str, needle: str, timeout: float = 60_000) -> None:
        self.page.wait_for_function(
            "([s, n]) => (document.querySelector(s)?.innerText || '').includes(n)", arg=[selector, needle],
            timeout=timeout)

    def shot(self, name: str) -> None:
        ASSETS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ASSETS / name), full_page=True)

    def no_script_ran(self) -> None:
        assert self.page.evaluate("window.__xss") is None, "a payload ran as script"
        assert self.page.locator("img[src='x']").count() == 0, "a payload became an <img> element"
        assert not self.dialogs, f"a dialog opened: {self.dialogs}"

    def search(self, needle: str) -> None:
        box = self.page.get_by_label("Search input / rationale")
        box.fill(needle)
        box.press("Enter")
        self.page.wait_for_timeout(1500)

    def select_first_row(self) -> None:
        self.page.locator("#rev-table [role='gridcell']").nth(2).click()
        self.wait_text("#rev-header", "Generation", timeout=20_000)
        self.page.wait_for_timeout(500)

    def fill(self, selector: str, value: str) -> None:
        box = self.page.locator(f"{selector} input, {selector} textarea").first
        box.fill(value)
        box.press("Tab")

    def errors(self) -> list[str]:
        return [t for t in self.page.locator(".toast-body").all_inner_texts() if t.lower().startswith("error")]

    def headers_whole(self, selector: str) -> None:
        """Every header word on one line, none clipped, and no column hidden behind a horizontal scroll."""
        bad = self.page.evaluate("""(sel) => [...document.querySelectorAll(sel + ' th')].map(th => {
            const s = th.querySelector('.header') || th;
            const words = s.innerText.trim().split(/\\s+/).length;
            return [s.innerText, s.getClientRects().length, s.scrollWidth - s.clientWidth, words];
        }).filter(([text, rects, over, words]) => text && (over > 2 || rects > words))""", selector)
        assert not bad, f"headers broken or clipped in {selector}: {bad}"


def test_the_whole_demo_in_a_browser(app_url, browser):
    from workbench.data.tasks import load_task
    from workbench.rationales.review import browse_generations, edit_generation

    url, store = app_url
    ui = Page(browser, url)
    port_host = urlparse(url).hostname

    # 0. A new user's first click: the Train form's defaults, untouched, start a run (no rationales yet: the free
    #    teacher answers first). Cancelled at once; the bar then shows where it stopped, not a full bar.
    ui.tab("Train")
    assert "Cannot train" not in ui.text("#train-facts")
    ui.page.locator("#train-start").click()
    ui.wait_text("#train-progress", "running", timeout=60_000)
    assert not ui.errors(), ui.errors()
    ui.page.locator("#train-cancel").click()
    ui.wait_text("#train-progress", "cancelled", timeout=180_000)
    width = ui.page.evaluate("parseFloat(document.querySelector('#train-progress [role=progressbar]')"
                             ".getAttribute('aria-valuenow'))")
    assert width < 100
    ui.page.locator("#train-method").get_by_text("standard", exact=True).click()  # changing Method: no error
    ui.page.wait_for_timeout(1000)
    assert not ui.errors(), ui.errors()
    ui.headers_whole("#train-runs")
    ui.tab("Task & teacher")

    # 1. Task & teacher: the built-in task and teacher are preselected; the prompt preview is filled in.
    assert "wordproblems" in ui.text("#task-info") and "train 2,000" in ui.text("#task-info")
    assert ui.page.locator("#teacher-spec textarea, #teacher-spec input").first.input_value() == "builtin"
    assert "{input}" not in ui.page.locator("#prompt-preview textarea").input_value()
    ui.headers_whole("#task-examples")
    ui.shot("tab_task.png")

    # 2. Rationales: 50 from the built-in teacher, as a background job with live counts.
    ui.tab("Rationales")
    assert ui.page.locator("#gen-n textarea, #gen-n input").first.input_value() == ""  # free: the whole split
    # The first run's job had the free teacher answer the train split; the test split is still to do.
    ui.page.locator("#gen-split input").fill("test")
    ui.page.get_by_role("option", name="test").click()
    ui.wait_text("#gen-plan", "300 test examples")
    ui.fill("#gen-n", "50")
    ui.wait_text("#gen-plan", "Will ask 50")
    ui.page.locator("#gen-start").click()
    ui.wait_text("#gen-progress", " done ·", timeout=120_000)
    assert "parsed" in ui.text("#gen-progress") and "teacher accuracy (test)" in ui.text("#gen-progress")
    ui.wait_text("#rev-where", "2,000 rows in this view")

    # A hostile rationale (written through the library, as a teacher could) renders as text.
    task = load_task("wordproblems", store)
    rows = browse_generations(store, task, "builtin").rows
    edit_generation(store, rows[0]["generation_id"], rationale=f"{SCRIPT} {IMG} 4 - 2 - 1 = 1")
    ui.search("onerror")
    ui.wait_text("#rev-table", "<script>window.__xss = 1</script>")
    ui.select_first_row()
    assert SCRIPT in ui.page.locator("#rev-rationale textarea").input_value()
    ui.no_script_ran()

    # Edit another row in the page: saved when the box loses focus, still there after a reload.
    target = rows[1]["example_id"]
    ui.search(target)
    ui.select_first_row()
    ui.page.locator("#rev-rationale textarea").fill(EDITED)
    ui.page.locator("#rev-header").click()  # focus leaves the box: that is the save
    ui.wait_text("#rev-saved", "Saved at")
    ui.page.reload()
    ui.open()
    ui.tab("Rationales")
    ui.search("EDITED by the browser")
    ui.wait_text("#rev-where", "1 rows in this view")
    ui.select_first_row()
    assert ui.page.locator("#rev-rationale textarea").input_value() == EDITED
    ui.search("")
    ui.headers_whole("#rev-table")
    # A bulk action says how many rows it would change before it changes any.
    ui.page.locator("#rev-view").get_by_text("teacher wrong", exact=True).click()
    ui.page.wait_for_timeout(1500)
    ui.page.locator("#rev-bulk-reject").click()
    ui.wait_text("#rev-confirm-text", "rows of the view")
    ui.page.get_by_role("button", name="No", exact=True).click()
    ui.page.locator("#rev-view").get_by_text("all", exact=True).click()
    ui.page.wait_for_timeout(1500)
    ui.shot("tab_rationales.png")

    # 3. Train: a tiny dss student, a few steps; the loss curve appears while it runs, then the run finishes.
    ui.tab("Train")
    # WORKBENCH_SCREENSHOT_STEPS trains longer when the run is for the README's screenshots.
    steps = os.environ.get("WORKBENCH_SCREENSHOT_STEPS", "16")
    ui.page.locator("#train-method").get_by_text("dss", exact=True).click()
    for sel, value in (("#train-steps", steps), ("#train-eval-every", str(max(1, int(steps) // 2))),
                       ("#train-test-limit", "20" if steps == "16" else "")):
        ui.fill(sel, value)
    ui.wait_text("#train-cli", f"--steps {steps}")
    assert "dss" in ui.page.locator("#train-method").inner_text()
    ui.wait_text("#train-facts", "Training set")
    assert "Device" in ui.text("#train-facts")
    ui.page.locator("#train-start").click()
    ui.page.locator("#train-curves .js-plotly-plot").wait_for(timeout=240_000)
    ui.wait_text("#train-progress", " done ·", timeout=400_000)
    ui.wait_text("#train-runs", "done")
    ui.shot("tab_train.png")

    # 4. Compare: teacher and student columns side by side for the new run.
    ui.tab("Compare")
    ui.page.locator("#cmp-go").click()
    ui.wait_text("#cmp-summary", "student right, teacher wrong", timeout=120_000)
    headers = ui.text("#cmp-table")
    assert "teacher label" in headers and "student label" in headers
    assert ui.page.locator("#cmp-table [role='gridcell']").count() > 0
    ui.headers_whole("#cmp-table")
    # Ask both: the built-in teacher reads the seed's example; the student answers (or says why it cannot).
    ui.page.locator("#cmp-question textarea, #cmp-question input").first.fill(
        "Anne has 4 apples and gives Peter 2 and Thomas 1. How many are left?")
    ui.page.locator("#cmp-ask").click()
    ui.page.wait_for_function("(document.querySelector('#cmp-t-note textarea')?.value || '') !== ''", timeout=60_000)
    assert "could not answer" not in ui.page.locator("#cmp-t-note textarea").input_value()
    assert ui.page.locator("#cmp-s-note textarea").input_value() in ("answered",) or \
        ui.page.locator("#cmp-s-note textarea").input_value().startswith("parse error")
    ui.shot("tab_compare.png")
    ui.tab("About")
    ui.shot("tab_about.png")

    # A hostile CSV cell renders as text in the examples table.
    ui.tab("Task & teacher")
    picker = ui.page.locator("#task-picker input")
    picker.click()
    picker.fill("hostile")
    ui.page.get_by_role("option", name="hostile").click()
    ui.wait_text("#task-info", "hostile")
    ui.page.wait_for_timeout(1000)
    assert "<img src=x onerror=" in ui.page.locator("#prompt-preview textarea").input_value() + ui.text("body")
    ui.no_script_ran()

    # Labels that are Markdown images show as text in the task's facts: nothing is fetched from their hosts.
    picker.click()
    picker.fill("pixels")
    ui.page.get_by_role("option", name="pixels").click()
    ui.wait_text("#task-info", "pixels")
    ui.page.wait_for_timeout(1500)
    assert "![p](http://127.0.0.2:18111/p1.png)" in ui.text("#task-info")
    assert ui.page.locator("#task-info img").count() == 0

    # Offline: every request went to the app itself.
    assert ui.hosts == {port_host}, f"requests left 127.0.0.1: {sorted(ui.hosts - {port_host})}"
