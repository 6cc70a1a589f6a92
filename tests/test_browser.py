"""The whole demo in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser).

Walks it as a new user first (the Train form's defaults, untouched, start a run), then task & teacher → 50
rationales → an edit that survives a reload → a tiny dss student → compare and "ask both", and checks that no
request leaves 127.0.0.1, that hostile text (a rationale, a CSV cell, labels that are Markdown images) renders as
text, and that table headers and cells keep their words whole with no column hidden behind a scroll. Then one test
per finding of the third classroom walk (issue 25), on the same app server: Ask both checks each answer; a local
model's generation shows its batch, tokens and ETA, fills the table as batches land and stops within seconds when
cancelled; the sentence before launch counts what will be sent; the Train form warns; a reload keeps task and
teacher together; polish (empty charts say why, the job log's last line in view, placeholders that fit the teacher).
Saves a screenshot of each tab: into ``assets/`` for the README when ``WORKBENCH_SCREENSHOTS=1``, else into the
test's temporary folder (so a test run never rewrites tracked files).

    make system-deps && WORKBENCH_SCREENSHOTS=1 WORKBENCH_SCREENSHOT_STEPS=500 \
        .venv/bin/python -m pytest -m browser tests/test_browser.py
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import time
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
APPLES = "Anne has 4 apples and gives Peter 2 and Thomas 1. How many are left?"
# Cells holding one word (no space, no hyphen to wrap at) whose text runs over more than one line.
CELLS_WHOLE = """(sel) => [...document.querySelectorAll(sel + ' td')].flatMap(td => {
  const t = td.innerText.trim();
  if (!t || /\\s/.test(t) || t.includes('-')) return [];
  const r = document.createRange(); r.selectNodeContents(td);
  const lines = [...new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)))];
  return lines.length > 1 ? [t] : [];
})"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app over a fresh workspace holding one custom task whose CSV cell carries the payloads."""
    from workbench.core.store import Store
    from workbench.imports.custom import ColumnMapping, import_custom
    from workbench.models.loading import save_random_checkpoint
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
    # Four training rows that came with their rationales (released:file), and two to test on.
    tips = root / "tips.csv"
    tips.write_text("question,answer,why,split\n" + "".join(
        f"Tom has {i} pens and gets {i + 1} more. How many?,( {i} + {i + 1} ),He has {i} and gets {i + 1}.,"
        f"{'train' if i < 5 else 'test'}\n" for i in range(1, 7)), encoding="utf-8")
    import_custom(store, "tips", tips, ColumnMapping(inputs=("question",), label="answer", rationale="why",
                                                     split="split", kind="equation"))
    save_random_checkpoint(root / "tiny-lm", "causal", max_positions=8192)  # a local model for the hf teacher
    patch = pytest.MonkeyPatch()  # time estimates from a file, not calibrations run during the walk (below)
    patch.setenv("WORKBENCH_CALIBRATION", str(calibrations(root / "calibration.json", store)))
    demo = launch(root / "ws", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url.rstrip("/"), demo.workbench_store
    finally:
        patch.undo()
        from workbench.core.jobs import cancel_job, list_jobs

        for job in list_jobs(demo.workbench_store):  # a failed walk must not leave a training job running
            cancel_job(demo.workbench_store, job["id"])
        demo.close()
        end_helpers(root / "ws")


def calibrations(path: Path, store) -> Path:
    """A calibration on file for every task, student, method and batch size the walk's forms may ask about: a time
    estimate measures a student the first time (a subprocess of a minute or more, ~3 GB for SmolLM2, in the app's
    own workers), which is tested in test_phases_queue.py; here it would only hold up the walk's clicks."""
    import json

    from workbench.data.tasks import list_tasks
    from workbench.distill.config import TrainConfig
    from workbench.distill.estimates import _key
    from workbench.distill.methods import METHODS

    pace = {"source": "calibrated", "s_per_step": 0.2, "s_per_step_min": 0.15, "load": 1.0, "save": 0.5,
            "s_per_generation": 0.02, "gives_rationales": True}
    keys = {_key(TrainConfig(task=t["name"], student=student, method=method, batch_size=batch, teacher="builtin"))
            for t in list_tasks(store) for student in ("tiny", "smollm2-135m", "google/flan-t5-small")
            for method in METHODS.names() for batch in (4, 8, 16, 32)}
    path.write_text(json.dumps(dict.fromkeys(keys, pace)), encoding="utf-8")
    return path


def end_jobs(store) -> None:
    """Cancel what an earlier test left running (a page opens on a running job's task and teacher)."""
    from workbench.core.jobs import ACTIVE, cancel_job, list_jobs, wait_job

    for job in list_jobs(store):
        if job["status"] in ACTIVE:
            cancel_job(store, job["id"])
            wait_job(store, job["id"], timeout=60)


def end_helpers(workspace: Path) -> None:
    """End the helper processes the app started for this workspace and left running (time calibrations: one
    for a pretrained student holds ~3 GB), by their ids."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and b"workbench.distill.estimates" in cmd and str(workspace).encode() in cmd:
            try:
                os.kill(int(proc.name), signal.SIGTERM)
            except ProcessLookupError:
                pass


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
        try:
            self.page.wait_for_function(
                "([s, n]) => (document.querySelector(s)?.innerText || '').includes(n)", arg=[selector, needle],
                timeout=timeout)
        except Exception as err:  # noqa: BLE001 - say what the page showed instead
            shown = self.page.locator(selector).first.inner_text() if self.page.locator(selector).count() else "?"
            self.page.screenshot(path=str(Path(tempfile.gettempdir()) / "workbench-browser-failure.png"),
                                 full_page=True)
            raise AssertionError(f"{selector} never showed {needle!r} in {timeout / 1000:.0f} s; it shows "
                                 f"{shown[:400]!r}") from err

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

    def type(self, selector: str, value: str) -> None:
        """Type into a text box key by key, as a person does: a box's ``input`` listeners see it (``fill`` sets the
        value in one go, which Gradio 6's Textbox reports as ``change`` only)."""
        box = self.page.locator(f"{selector} input, {selector} textarea").first
        box.click()
        box.press("ControlOrMeta+a")
        box.press("Delete")
        if value:
            box.press_sequentially(value)
        box.press("Tab")

    def errors(self) -> list[str]:
        return [t for t in self.page.locator(".toast-body").all_inner_texts() if t.lower().startswith("error")]

    def value(self, selector: str) -> str:
        return self.page.locator(f"{selector} input, {selector} textarea").first.input_value()

    def cells_whole(self, selector: str) -> None:
        """No one-word cell broken across lines ("unreviewe d", "1,90 4"); a hyphenated name may wrap at a hyphen."""
        bad = self.page.evaluate(CELLS_WHOLE, selector)
        assert not bad, f"words broken inside cells of {selector}: {bad}"

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
    assert ui.page.locator("#teacher-settings input, #teacher-settings textarea").first.get_attribute(
        "placeholder") == "error_rate=0.2&seed=0"
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
    ui.cells_whole("#rev-table")  # "unreviewed" in one piece
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
    ui.wait_text("#train-progress", " done ·", timeout=400_000 + 6_000 * int(steps))
    ui.wait_text("#train-runs", "done")
    # Scoring counts answers, two per test example for dss: the log says so (it read "scoring test 600/600" beside
    # "test accuracy (300)").
    test_examples = "20" if steps == "16" else "300"
    ui.wait_text("#train-log", f"a label and a rationale for each of {test_examples} examples")
    ui.cells_whole("#train-runs")
    ui.shot("tab_train.png")

    # 4. Compare: teacher and student columns side by side for the new run.
    ui.tab("Compare")
    assert "click Compare" in ui.text("#cmp-bars")  # an empty chart says why it is empty
    ui.page.locator("#cmp-go").click()
    ui.wait_text("#cmp-summary", "student right, teacher wrong", timeout=120_000)
    headers = ui.text("#cmp-table")
    assert "teacher label" in headers and "student label" in headers
    assert ui.page.locator("#cmp-table [role='gridcell']").count() > 0
    ui.headers_whole("#cmp-table")
    ui.cells_whole("#cmp-summary")  # "1,904" in one piece
    assert re.search(r"these runs have 1\s\(", ui.text("#cmp-size")), ui.text("#cmp-size")  # not "1(956,160)"
    # Ask both checks each answer: first a question that is one of the task's examples (gold known)...
    example = store.examples("wordproblems", "test", 1)[0]
    ask_both(ui, example.input)
    assert f"gold ({example.id})" in ui.text("#cmp-verdict")
    assert re.search(r"teacher [✓✗], student [✓✗]", ui.text("#cmp-verdict"))
    # ...then the README's apples: the teacher's value and steps, each marked; no gold, and it says so.
    ask_both(ui, APPLES)
    assert "no gold answer" in ui.text("#cmp-verdict") and "agree" in ui.text("#cmp-verdict")
    checked = ui.text("#cmp-t-check")
    assert "value 1" in checked and "4 - 2 = 2 ✓" in checked and "2 - 1 = 1 ✓" in checked
    assert "value" in ui.text("#cmp-s-check") and "steps" in ui.text("#cmp-s-check")
    print(f"Ask both, {APPLES!r}: student {ui.value('#cmp-s-label')!r} · {ui.text('#cmp-s-check')} · "
          f"{ui.text('#cmp-verdict')}")  # what the README says the demo student answers (-s shows it)
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
    assert "Radio" not in ui.text("body")  # a stray component name once showed as a label


def ask_both(ui: Page, question: str) -> None:
    """Ask teacher and student in the Compare tab and wait for the checked answers."""
    before = ui.text("#cmp-verdict")
    ui.page.locator("#cmp-question textarea, #cmp-question input").first.fill(question)
    ui.page.locator("#cmp-ask").click()
    ui.page.wait_for_function("""(before) => { const v = document.querySelector('#cmp-verdict').innerText;
        return v !== before && /agree|No comparison/.test(v) && !/processing/.test(v); }""", arg=before,
                              timeout=120_000)
    ui.page.wait_for_timeout(500)


def pick(ui: Page, selector: str, option: str) -> None:
    """Choose an option of a dropdown as a person does: type, then click it."""
    box = ui.page.locator(f"{selector} input").first
    box.click()
    box.fill(option)
    ui.page.get_by_role("option", name=option, exact=True).click()
    ui.page.wait_for_timeout(800)


def choose_task(ui: Page, name: str) -> None:
    ui.tab("Task & teacher")
    pick(ui, "#task-picker", name)
    ui.wait_text("#task-info", name)
    ui.page.wait_for_timeout(1500)


# -- the third classroom walk (issue 25): one test per finding, on the same app server ---------------------------
def test_a_local_models_generation_shows_batch_tokens_and_eta_fills_the_table_and_cancels_in_seconds(app_url,
                                                                                                      browser):
    """Findings 2 and 3, and a cancel in the middle of a batch: a local model (a tiny random one here) answers in
    batches of 2; the sentence before launch counts what it will send; the bar moves with the tokens of the batch
    in flight, with an ETA; rows appear as batches land; Cancel stops it within 10 s and keeps them."""
    from workbench.data.tasks import load_task
    from workbench.rationales.generation import generate_rationales
    from workbench.rationales.teachers import get_teacher

    url, store = app_url
    end_jobs(store)
    ui = Page(browser, url)
    lm = tiny_lm(store)

    def spec_has(text: str, whole: bool = False) -> None:
        spec = "(document.querySelector('#teacher-spec textarea, #teacher-spec input')?.value || '')"
        ui.page.wait_for_function(f"t => {spec}{' === t' if whole else '.includes(t)'}", arg=text, timeout=60_000)

    ui.tab("Rationales")
    # Rationalization is counted: the builtin teacher answered the train split without the gold answer, and with
    # it has answered none yet (the sentence said "Will ask 0 of …").
    task = load_task("wordproblems", store)
    generate_rationales(store, task, get_teacher("builtin"))  # the whole train split, if the walk did not
    ui.page.reload()
    ui.open()
    ui.tab("Rationales")
    ui.wait_text("#gen-plan", "Will ask 0 of 2,000 train examples")
    ui.page.locator("#gen-rationalize input").check()
    ui.wait_text("#gen-plan", "Will ask 2,000 of 2,000 train examples (rationalization")
    ui.page.locator("#gen-rationalize input").uncheck()
    ui.tab("Task & teacher")
    pick(ui, "#teacher-kind", "hf")
    spec_has("hf", whole=True)  # the kind's answer (it clears the boxes) lands before anything is typed in them
    ui.fill("#teacher-target", lm)
    spec_has(lm)
    ui.fill("#teacher-settings", "max_new_tokens=1500&stop=&batch_size=2")  # a batch lasts seconds, not one poll
    spec_has("batch_size=2")
    ui.tab("Rationales")
    ui.wait_text("#gen-plan", "Will ask 20 of 20 train examples (a local model")  # its default: 20, not all
    ui.fill("#gen-n", "6")
    ui.wait_text("#gen-plan", "Will ask 6 of 6 train examples (a local model")
    ui.page.locator("#gen-start").click()
    ui.wait_text("#gen-progress", "tokens", timeout=180_000)  # the batch in flight, token by token
    ui.wait_text("#gen-progress", "batch 1 of 3")
    ui.page.wait_for_function("/ETA \\d/.test(document.querySelector('#gen-progress')?.innerText || '')",
                              timeout=120_000)
    ui.wait_text("#rev-where", "2 rows in this view", timeout=300_000)  # the first batch is in the table...
    assert "running" in ui.text("#gen-progress")  # ...while the job still runs
    ui.wait_text("#gen-progress", "tokens", timeout=120_000)  # the next batch is being generated: cancel it
    asked = time.monotonic()
    ui.page.locator("#gen-cancel").click()
    ui.wait_text("#gen-progress", "cancelled", timeout=30_000)
    assert time.monotonic() - asked < 10, "the cancel took longer than 10 s"
    assert ui.text("#rev-where").startswith("page 1 of 1 · 2 rows") or " 4 rows" in ui.text("#rev-where")
    assert not ui.errors(), ui.errors()
    ui.cells_whole("#rev-table")


def tiny_lm(store) -> str:
    """The tiny random causal model the app fixture saved beside its workspace (it writes nonsense, slowly enough
    on a CPU to watch: a batch of 1,500 tokens takes several seconds, longer than the page's poll)."""
    return str(Path(store.workspace).parent / "tiny-lm")


def test_the_sentence_before_launch_says_a_replaying_teacher_sends_nothing(app_url, browser):
    """Finding 3: the released teacher read a file and sends no prompts (it said it would send 800)."""
    url, store = app_url
    end_jobs(store)
    ui = Page(browser, url)
    choose_task(ui, "tips")
    assert ui.value("#teacher-spec") == "released:file"  # the file's rationales answer this task
    assert ui.page.locator("#teacher-settings input, #teacher-settings textarea").first.get_attribute(
        "placeholder") == "(none needed)"  # not the builtin teacher's error_rate=…
    ui.tab("Rationales")
    ui.wait_text("#gen-plan", "sends no prompts")
    assert "Will ask" not in ui.text("#gen-plan") and "(6 for 'tips')" in ui.text("#gen-plan")  # its 6 rows


def test_the_train_form_warns_before_launch(app_url, browser):
    """Finding 5: the form's defaults on a 4-row task are ≈8,000 passes over 4 rows; 2 test examples say nothing; a
    hub student cannot load offline. Warned, not refused."""
    url, store = app_url
    end_jobs(store)
    ui = Page(browser, url)
    choose_task(ui, "tips")
    ui.tab("Train")
    ui.wait_text("#train-facts", "passes over 4 rows", timeout=60_000)
    facts = ui.text("#train-facts")
    assert "≈8,000 passes over 4 rows" in facts and "scored on 2 test examples" in facts
    assert "Cannot train" not in facts and not ui.errors()
    student = ui.page.locator("#train-student input").first
    student.fill("google/flan-t5-small")
    student.press("Enter")
    ui.wait_text("#train-facts", "cannot be loaded here (offline)", timeout=60_000)


def test_the_train_form_says_the_precision_of_the_student_it_will_train(app_url, browser):
    """The walk: the device line said "bf16 for pretrained students" beside the default tiny student, leaving a
    person to work out which applied. It says the precision of this run: the demo's tiny trains in float32."""
    url, store = app_url
    end_jobs(store)
    ui = Page(browser, url)
    ui.tab("Train")
    ui.wait_text("#train-facts", "Device", timeout=60_000)
    facts = ui.text("#train-facts")
    assert "cpu (" in facts or "cuda (" in facts
    assert "· float32" in facts and "for pretrained students" not in facts


def test_a_reload_keeps_the_task_and_its_teacher_together_in_every_tab(app_url, browser):
    """Finding 6: after a reload the page shows the task and teacher it showed, and every tab follows them."""
    url, store = app_url
    end_jobs(store)
    ui = Page(browser, url)
    choose_task(ui, "tips")
    assert ui.value("#teacher-spec") == "released:file"
    ui.page.reload()
    ui.open()
    ui.page.wait_for_function("(document.querySelector('#task-picker input')?.value || '') === 'tips'",
                              timeout=60_000)
    ui.wait_text("#task-info", "tips")
    assert ui.value("#teacher-kind") == "released" and ui.value("#teacher-spec") == "released:file"
    ui.tab("Rationales")
    ui.page.wait_for_function("(document.querySelector('#rev-teacher input')?.value || '') === 'released:file'",
                              timeout=60_000)
    ui.wait_text("#rev-where", "4 rows in this view")
    ui.tab("Train")
    ui.wait_text("#train-facts", "4 rows")
    # A fresh page (another browser) opens on the demo task, each tab with the builtin teacher.
    fresh = Page(browser, url)
    assert fresh.value("#task-picker") == "wordproblems" and fresh.value("#teacher-spec") == "builtin"
