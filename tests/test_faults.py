"""Nothing lost under faults (issue 8): kill -9 while editing and of the app itself, training jobs that crash
(diverging loss, out of memory), a full disk and a read-only workspace; and (issue 16) a full disk during task-add,
when a run is created and while it trains.

Kill -9 during generation and training, two-tab edits and endpoint faults are in test_jobs.py,
test_store_generation.py, test_training.py and test_teacher_openai.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from workbench.core.errors import StoreError
from workbench.core.jobs import job_status, start_job, wait_job
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.rationales.generation import generate_rationales
from workbench.rationales.review import current_state, edit_generation
from workbench.rationales.teachers import get_teacher
from workbench.rationales.trainingset import build_training_set

ROOT = Path(__file__).resolve().parents[1]


def _small_workspace(path: Path, n_train: int = 40) -> Store:
    store = Store.open(path)
    task = load_task("wordproblems", store, n_train=n_train, n_valid=8, n_test=8)
    generate_rationales(store, task, get_teacher("builtin", store=store))
    return store


# -- kill -9 while editing -----------------------------------------------------------------------------------
EDITOR = textwrap.dedent("""
    import itertools, sys
    from workbench.rationales.review import edit_generation, set_status
    from workbench.core.store import Store

    store = Store.open(sys.argv[1])
    gids = [int(g) for g in sys.argv[2].split(",")]
    for n in itertools.count():
        gid = gids[n % len(gids)]
        if n % 7 == 6:  # a bulk status change: one transaction for five rows
            batch = [gids[(n + k) % len(gids)] for k in range(5)]
            set_status(store, batch, "rejected" if n % 2 else "accepted", author=f"bulk-{n}")
            print(f"bulk {n}", flush=True)
        else:
            out = edit_generation(store, gid, rationale=f"edit {n} of {gid}", label=f"( {n} + 1 )", author=f"e-{n}")
            print(f"edit {out['edit_id']} {gid} {n}", flush=True)
""")


def test_kill_9_while_editing_keeps_every_committed_edit(tmp_path):
    store = _small_workspace(tmp_path / "ws", n_train=20)
    gids = [r["generation_id"] for r in store.latest_generations("wordproblems", "builtin")]
    proc = subprocess.Popen([sys.executable, "-c", EDITOR, str(store.workspace), ",".join(map(str, gids))],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    printed = []
    try:
        while len(printed) < 150:
            line = proc.stdout.readline()
            assert line, f"the editor stopped early (exit {proc.poll()})"
            printed.append(line.split())
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it is committing as fast as it can
        proc.wait()
    printed += [line.split() for line in proc.stdout.read().splitlines()]  # what it said before it died
    proc.stdout.close()
    store.close()
    store = Store.open(store.workspace)  # what a restarted app sees
    assert store.integrity_check() == []

    edits = {row["id"]: row for gid in gids for row in store.edit_history(gid)}
    for kind, *rest in printed:  # every edit reported as committed is there, exactly as written
        if kind == "edit":
            edit_id, gid, n = map(int, rest)
            assert edits[edit_id]["generation_id"] == gid and edits[edit_id]["rationale"] == f"edit {n} of {gid}"
    bulk = defaultdict(int)
    for row in edits.values():
        if row["author"].startswith("bulk-"):
            bulk[row["author"]] += 1
    assert bulk and set(bulk.values()) == {5}  # a bulk change is all five rows or none
    reported = sum(1 for kind, *_ in printed if kind == "edit") + 5 * sum(1 for kind, *_ in printed if kind == "bulk")
    assert reported <= len(edits) <= reported + 5  # at most the transaction in flight is unreported
    for gid in gids:  # history is ordered, and the row shows its latest committed edit
        history = store.edit_history(gid)
        assert [h["id"] for h in history] == sorted(h["id"] for h in history)
        last_text = next((h["rationale"] for h in reversed(history) if h["rationale"] is not None), None)
        if last_text is not None:
            assert current_state(store, gid)["rationale"] == last_text
    assert edit_generation(store, gids[0], rationale="after the crash")["rationale"] == "after the crash"


# -- kill -9 of the app --------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_app(workspace: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--workspace", str(workspace), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the app exited while starting"
        try:
            urllib.request.urlopen(url + "config", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("the app did not start within 120 s")


N_BIG = 15000


@pytest.mark.slow
def test_kill_9_of_the_app_loses_no_job_generation_or_edit(tmp_path):
    from gradio_client import Client

    workspace = tmp_path / "ws"
    # A task big enough that its generation job is still running when the app dies (the built-in teacher is fast).
    store = Store.open(workspace)
    template = load_task("wordproblems", store, n_train=N_BIG, n_valid=10, n_test=10).template().text
    app, url = _start_app(workspace)
    try:
        client = Client(url, verbose=False)
        job_id, _ = client.predict("wordproblems", "builtin", template, N_BIG, "train", api_name="/generate")
        deadline = time.monotonic() + 60
        while not store.latest_generations("wordproblems", "builtin"):
            assert time.monotonic() < deadline, job_status(store, job_id)
            time.sleep(0.1)
        gid = store.latest_generations("wordproblems", "builtin")[0]["generation_id"]
        client.predict(gid, "edited before the crash", "( 1 + 1 )", api_name="/edit")
        at_kill = job_status(store, job_id)["status"]
    finally:
        os.kill(app.pid, signal.SIGKILL)
        app.wait()
    assert at_kill == "running"  # the job was mid-way when its app died

    # The detached job outlives the app and finishes on its own.
    row = wait_job(store, job_id, timeout=120)
    assert row["status"] == "done" and row["progress"]["result"]["generated"] == N_BIG
    assert store.integrity_check() == []
    assert current_state(store, gid)["rationale"] == "edited before the crash"

    app, url = _start_app(workspace)  # restart: everything committed is served again
    try:
        client = Client(url, verbose=False)
        exported = client.predict("wordproblems", "builtin", "JSONL", api_name="/export")
        exported = exported["value"] if isinstance(exported, dict) else exported
        rows = {r["generation_id"]: r for r in map(json.loads, Path(exported).read_text().splitlines())}
        assert rows[gid]["rationale"] == "edited before the crash" and rows[gid]["edited"]
        assert len(rows) == len(build_training_set(store, load_task("wordproblems", store), "builtin").rows)
    finally:
        app.terminate()
        app.wait(timeout=30)


# -- training jobs that crash --------------------------------------------------------------------------------
TINY = {"task": "wordproblems", "method": "standard", "student": "tiny", "steps": 6, "batch_size": 8,
        "save_every": 100, "max_target_len": 48, "test_limit": 4}


def test_a_diverging_training_job_fails_with_its_reason(tmp_path, monkeypatch):
    import torch

    from workbench.ui.train import RUN_HEADERS, job_progress, runs_table

    step = torch.optim.AdamW.step

    def diverges(self, *args, **kwargs):  # what a far too large learning rate does (the config refuses one above 1)
        out = step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", diverges)
    store = _small_workspace(tmp_path / "ws", n_train=32)
    job = start_job(store, "train", {**TINY, "run": "diverged"}, detach=False)
    row = job_status(store, job)
    assert row["status"] == "failed", row
    assert "diverged" in row["error"] and "learning rate" in row["error"]
    run = store.run_row("diverged")
    assert run["status"] == "failed" and "diverged" in run["summary"]["error"]
    assert not (store.workspace / "runs" / "diverged" / "model").exists()  # no NaN model passed off as done
    # The UI shows the reason and keeps working; the store is intact and takes the next job.
    assert "diverged" in job_progress(row) and "failed" in job_progress(row)
    name, status = runs_table(store)[0][0], runs_table(store)[0][RUN_HEADERS.index("status")]
    assert name == "diverged" and status.startswith("failed") and "diverged" in status  # the table says why
    assert store.integrity_check() == []
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    ok = start_job(store, "train", {**TINY, "run": "fine"}, detach=False)
    assert job_status(store, ok)["status"] == "done"


def test_an_out_of_memory_training_job_fails_with_its_reason(tmp_path, monkeypatch):
    import torch

    import workbench.distill.runs as runs

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(runs, "fit", out_of_memory)
    store = _small_workspace(tmp_path / "ws", n_train=16)
    job = start_job(store, "train", {**TINY, "run": "oom"}, detach=False)
    row = job_status(store, job)
    assert row["status"] == "failed" and "out of memory" in row["error"] and "batch size" in row["error"]
    assert store.run_row("oom")["status"] == "failed"
    gen = start_job(store, "generate", {"task": "wordproblems", "teacher": "builtin?seed=1", "limit": 5},
                    detach=False)
    assert job_status(store, gen)["status"] == "done"  # the store keeps working after the crash


# -- disk full and read-only workspace -----------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 MiB tmpfs (root can mount one; elsewhere the test is skipped: see the RLIMIT_FSIZE test below)."""
    yield from _tmpfs(tmp_path / "disk", "16m")


@pytest.fixture
def roomy_disk(tmp_path):
    """A 96 MiB tmpfs: room for a tiny student's checkpoints, until the test fills it."""
    yield from _tmpfs(tmp_path / "disk", "96m")


def _tmpfs(mount: Path, size: str):
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system holding ``folder`` until ``leave`` bytes are free."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_disk_full_is_a_clear_error_and_nothing_is_half_written(tiny_disk, tmp_path):
    store = Store.open(tiny_disk / "ws")
    task = load_task("wordproblems", store, n_train=3000, n_valid=8, n_test=8)
    out = tiny_disk / "export.jsonl"
    filler = _fill(tiny_disk, leave=400 * 1024)
    with pytest.raises(StoreError, match="full"):
        generate_rationales(store, task, get_teacher("builtin", store=store))
    committed = len(store.latest_generations("wordproblems", "builtin"))
    assert 0 < committed < 3000 and committed % 32 == 0  # whole batches (the teacher's batch size) only
    ts = build_training_set(store, task, "builtin")
    more = _fill(tiny_disk / "ws", leave=0)
    with pytest.raises(StoreError, match="nothing was written"):
        ts.export(out)
    assert not out.exists() and not out.with_name(out.name + ".tmp").exists()  # no half-written export
    filler.unlink()
    more.unlink()
    store.close()
    store = Store.open(tiny_disk / "ws")  # space again: the store is intact and generation resumes
    assert store.integrity_check() == []
    summary = generate_rationales(store, task, get_teacher("builtin", store=store), limit=committed + 64)
    assert summary["skipped"] == committed and summary["generated"] == 64
    assert build_training_set(store, task, "builtin").export(out).read_text().count("\n") > 0
    store.close()


def test_read_only_workspace_is_a_clear_error(tiny_disk, tmp_path):
    store = _small_workspace(tiny_disk / "ws", n_train=10)
    task = load_task("wordproblems", store)
    ts = build_training_set(store, task, "builtin")
    store.close()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(StoreError, match="read-only; choose a writable"):
        Store.open(tiny_disk / "ws")
    with pytest.raises(StoreError, match="nothing was written"):
        ts.export(tiny_disk / "out.csv")
    assert not (tiny_disk / "out.csv").exists()


FSIZE_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from workbench.core.errors import StoreError
    from workbench.rationales.generation import generate_rationales
    from workbench.core.store import Store
    from workbench.data.tasks import load_task
    from workbench.rationales.teachers import get_teacher
    from workbench.rationales.trainingset import build_training_set

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    ws = Path(sys.argv[1])
    store = Store.open(ws)
    task = load_task("wordproblems", store, n_train=3000, n_valid=8, n_test=8)
    biggest = max(p.stat().st_size for p in ws.iterdir() if p.is_file())
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 300_000, hard))
    try:
        generate_rationales(store, task, get_teacher("builtin", store=store))
    except StoreError as err:
        print("generate:", err, flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2_000, hard))
    try:
        build_training_set(store, task, "builtin").export(ws / "export.jsonl")
    except StoreError as err:
        print("export:", err, flush=True)
""")


def test_file_size_limit_is_a_clear_error_and_nothing_is_half_written(tmp_path):
    """The no-mount variant of the disk-full test (RLIMIT_FSIZE): runs anywhere, root or not."""
    workspace = tmp_path / "ws"
    done = subprocess.run([sys.executable, "-c", FSIZE_SCRIPT, str(workspace)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert "full" in lines["generate"] and "nothing was half-written" in lines["generate"]
    assert "nothing was written" in lines["export"]
    assert not (workspace / "export.jsonl").exists() and not (workspace / "export.jsonl.tmp").exists()
    store = Store.open(workspace)
    assert store.integrity_check() == []
    committed = len(store.latest_generations("wordproblems", "builtin"))
    assert 0 < committed < 3000 and committed % 32 == 0  # whole batches only
    store.close()


# -- full disk: task-add, a new run, and mid-training (issue 16) -----------------------------------------------------
def _cli(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    from workbench.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.mark.parametrize("leave", [64 * 1024, 1536 * 1024])  # the copy fails; the copy fits but the store does not
def test_task_add_on_a_full_disk_leaves_no_copy_and_says_so(tiny_disk, tmp_path, leave):
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("text,label\n" + "".join(f"question {i} {'x' * 900},yes\n" for i in range(1100)))
    workspace = tiny_disk / "ws"
    Store.open(workspace).close()
    filler = _fill(tiny_disk, leave=leave)
    code, err = _cli("--workspace", str(workspace), "task-add", "big", str(csv_path), "--input", "text")
    assert code == 2 and err.count("\n") == 1 and "full" in err and "Traceback" not in err, err
    uploads = workspace / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []  # no 0-byte or half copy, no temporary file
    filler.unlink()
    store = Store.open(workspace)
    assert not store.has_task("big") and store.integrity_check() == []
    assert _cli("--workspace", str(workspace), "task-add", "big", str(csv_path), "--input", "text")[0] == 0
    assert [p.name for p in uploads.iterdir()] == ["big.csv"]
    store.close()


def _trainable(workspace: Path, runs_on: Path) -> Store:
    """A workspace with answers to train on, whose ``runs/`` folder lives on the small disk ``runs_on`` (the store
    keeps room: what fills up is the run folder, as when checkpoints outgrow a disk)."""
    store = Store.open(workspace)
    task = load_task("wordproblems", store, n_train=24, n_valid=4, n_test=4)
    generate_rationales(store, task, get_teacher("builtin", store=store))
    (runs_on / "runs").mkdir()
    (workspace / "runs").symlink_to(runs_on / "runs")
    return store


TRAIN_ARGS = ("train", "--task", "wordproblems", "--method", "standard", "--student", "tiny", "--steps", "2",
              "--batch-size", "4", "--test-limit", "2", "--max-target-len", "16", "--run", "X", "--quiet")


def test_train_on_a_full_disk_leaves_the_run_name_free(tiny_disk, tmp_path):
    store = _trainable(tmp_path / "ws", tiny_disk)
    filler = _fill(tiny_disk, leave=0)
    code, err = _cli("--workspace", str(store.workspace), *TRAIN_ARGS)
    assert code == 2 and err.count("\n") == 1 and "full" in err and "Traceback" not in err, err
    assert not (store.workspace / "runs" / "X").exists() and store.list_runs() == []  # absent, not a husk
    filler.unlink()
    code, err = _cli("--workspace", str(store.workspace), *TRAIN_ARGS)
    assert code == 0, err
    assert store.run_row("X")["status"] == "done"
    store.close()


def test_disk_full_mid_training_is_a_clean_error_and_the_run_resumes(roomy_disk, tmp_path):
    from workbench.core.events import TrainBegin
    from workbench.distill.runs import check_resumable, resume_run, train_student

    store = _trainable(tmp_path / "ws", roomy_disk)
    filled = []

    def fill_once_training_begins(event) -> None:
        if isinstance(event, TrainBegin) and not filled:
            filled.append(_fill(roomy_disk, leave=0))  # the first checkpoint finds no room

    cfg = {"task": "wordproblems", "method": "standard", "student": "tiny", "steps": 4, "batch_size": 4,
           "save_every": 2, "test_limit": 2, "max_target_len": 16, "run": "full", "eval_every": 0}
    with pytest.raises(StoreError, match=r"disk holding run 'full' .* is full.*--resume full"):
        train_student(store, cfg, progress=fill_once_training_begins)
    assert store.run_row("full")["status"] == "failed" and "is full" in store.run_row("full")["summary"]["error"]
    filled[0].unlink()
    assert check_resumable(store, "full") == "failed"
    assert resume_run(store, "full")["status"] == "done" and store.run_row("full")["status"] == "done"
    assert store.integrity_check() == []
    store.close()
