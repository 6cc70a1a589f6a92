"""Training runs end to end on the built-in tasks with tiny students: every method, both model families, run
folders, cancel and resume (also after kill -9), compare, the CLI, and a learning test with a measured threshold."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
import torch
from safetensors.torch import load_file
from test_students import tiny_llama_folder, tiny_t5_folder
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from workbench.cli import main as cli_main
from workbench.core.errors import ConfigError, RunError
from workbench.core.jobs import job_status, start_job, wait_job
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.config import TrainConfig
from workbench.distill.predict import load_run
from workbench.distill.run_description import vocab_texts
from workbench.distill.runfolder import last_complete_checkpoint
from workbench.distill.runs import resume_run, train_student
from workbench.distill.students import make_student
from workbench.rationales.generation import generate_rationales
from workbench.rationales.teachers import get_teacher
from workbench.results.compare import compare
from workbench.results.evaluation import evaluate

SMALL = {"steps": 4, "batch_size": 8, "save_every": 100, "learning_rate": 3e-3, "max_target_len": 48, "test_limit": 8}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace with small built-in tasks and the built-in teacher's answers on train and test."""
    store = Store.open(tmp_path_factory.mktemp("train") / "ws")
    teacher = get_teacher("builtin", store=store)
    for name, sizes in (("wordproblems", dict(n_train=64, n_valid=16, n_test=24)),
                        ("quantnli", dict(n_train=48, n_valid=12, n_test=16))):
        task = load_task(name, store, **sizes)
        for split in ("train", "test"):
            generate_rationales(store, task, teacher, split=split)
    return store


def _initial_weights(store, cfg, run_dir):
    if cfg.student in ("tiny", "tiny-causal"):
        rows = [json.loads(x) for x in (run_dir / "trainingset.jsonl").read_text().splitlines()]
        task = load_task(cfg.task, store)
        numbers = json.loads((run_dir / "config.json").read_text())["config"]["numbers"]
        return make_student(cfg.student, vocab_texts(store, task, rows, numbers), seed=cfg.seed).model.state_dict()
    return load_file(os.path.join(cfg.student, "model.safetensors"))


CASES = [
    ("wordproblems", "standard", "tiny", None),
    ("wordproblems", "dss", "tiny", "builtin"),
    ("wordproblems", "cot", "tiny", "builtin"),
    ("quantnli", "kd", "tiny", "builtin"),
    ("wordproblems", "dss", "tiny-causal", "builtin"),
    ("wordproblems", "dss", "t5-folder", "builtin"),
    ("quantnli", "standard", "llama-folder", "builtin"),
]


@pytest.fixture(scope="module")
def trained(ws, tmp_path_factory):
    """Each case of CASES trained once for this module, on first use: ``(config, summary, events)``. Tests that
    only read a run (compare, a taken name) read these instead of training their own."""
    done = {}

    def get(task, method, student, teacher):
        key = (task, method, student, teacher)
        if key not in done:
            if student.endswith("-folder"):
                texts = [e.input for e in ws.examples(task)] + [e.label for e in ws.examples(task)] + ["So the answer is"]
                make = tiny_t5_folder if student == "t5-folder" else tiny_llama_folder
                student = make(tmp_path_factory.mktemp(student) / student, texts)
            cfg = TrainConfig(task=task, method=method, student=student, teacher=teacher, **SMALL)
            events = []
            done[key] = (cfg, train_student(ws, cfg, progress=events.append), events)
        return done[key]

    return get


@pytest.mark.parametrize("task,method,student,teacher", CASES)
def test_every_method_trains_and_writes_a_self_describing_run(ws, trained, task, method, student, teacher):
    cfg, summary, events = trained(task, method, student, teacher)
    run_dir = ws.workspace / "runs" / summary["run"]
    assert summary["status"] == "done" and summary["steps"] == 4 and 0 <= summary["accuracy"] <= 1
    assert ws.run_row(summary["run"])["status"] == "done"
    # Parameters changed: most tensors moved away from the student's initial weights.
    before = _initial_weights(ws, cfg, run_dir)
    after = load_file(run_dir / "model" / "model.safetensors")
    shared = [k for k in after if k in before]
    changed = [k for k in shared if not torch.equal(before[k], after[k])]
    assert shared and len(changed) >= 0.8 * len(shared), f"unchanged: {sorted(set(shared) - set(changed))}"
    # The model folder is a standard transformers folder holding exactly the trained weights.
    auto = AutoModelForCausalLM if "causal" in student or "llama" in student else AutoModelForSeq2SeqLM
    loaded = auto.from_pretrained(run_dir / "model")
    assert all(torch.equal(loaded.state_dict()[k], after[k]) for k in after)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    assert tokenizer.eos_token_id is not None and tokenizer.eos_token_id == loaded.config.eos_token_id
    # The loss fell: one train event a step, the last below the first.
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_events = [m for m in metrics if m["event"] == "train"]
    assert [m["step"] for m in train_events] == [1, 2, 3, 4] and all(m["loss"] > 0 for m in train_events)
    assert train_events[-1]["loss"] < train_events[0]["loss"], [m["loss"] for m in train_events]
    # The final checkpoint holds what a resume needs: the same weights, the optimizer's moments after 4 steps, the
    # scheduler at step 4 and the trainer's state.
    checkpoint = run_dir / "checkpoints" / "checkpoint-4"
    assert last_complete_checkpoint(run_dir / "checkpoints") == str(checkpoint)
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 4
    saved = load_file(checkpoint / "model.safetensors")
    assert set(after) & set(saved) and all(torch.equal(saved[k], after[k]) for k in after if k in saved)
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    assert optimizer["state"] and {float(s["step"]) for s in optimizer["state"].values()} == {4.0}
    assert all(s["exp_avg_sq"].abs().sum() > 0 for s in optimizer["state"].values())
    assert torch.load(checkpoint / "scheduler.pt", weights_only=True)["last_epoch"] == 4
    if method == "dss":
        assert "label_loss" in train_events[-1] and "rationale_loss" in train_events[-1]
    assert any(e.kind == "train" for e in events) and events[-1].kind == "finished"
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["config"]["method"] == method and meta["trainingset"]["fingerprint"]
    assert meta["teacher"] == teacher and (teacher is None or meta["template_hashes"])
    preds = [json.loads(x) for x in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == summary["n_test"] == 8
    assert [p["example_id"] for p in preds] == [e.id for e in ws.examples(task, "test", 8)]
    if method in ("dss", "cot"):
        assert all("rationale" in p for p in preds)
    # "auto" numbers resolved once and recorded: slots for equations learned from scratch, text otherwise.
    slots = task == "wordproblems" and student in ("tiny", "tiny-causal")
    assert meta["config"]["numbers"] == ("slots" if slots else "text")
    if slots:  # the student saw N0, N1, …; what it returns is mapped back to the input's numbers
        vocab = load_run(ws, summary["run"]).student.tokenizer.get_vocab()
        assert "N0" in vocab.keys() | {t.lstrip("▁") for t in vocab}
        assert not any(re.search(r"\bN\d+\b", p["input"]) for p in preds)


def test_a_run_name_is_never_reused(ws, trained):
    _, first, _ = trained("wordproblems", "standard", "tiny", None)
    run_dir = ws.workspace / "runs" / first["run"]
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    cfg = TrainConfig(task="wordproblems", method="standard", student="tiny", run=first["run"], **SMALL)
    with pytest.raises(RunError, match="already exists"):
        train_student(ws, cfg)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before  # the old run untouched
    assert ws.run_row(first["run"])["status"] == "done"


def test_clear_errors_for_impossible_settings(ws):
    with pytest.raises(ConfigError, match="teacher"):
        TrainConfig(task="wordproblems", method="dss", student="tiny")
    with pytest.raises(ConfigError, match="classification"):
        train_student(ws, TrainConfig(task="wordproblems", method="kd", student="tiny", teacher="builtin", **SMALL))
    with pytest.raises(ConfigError, match="fraction"):
        TrainConfig(task="wordproblems", fraction=0)


def test_cancel_saves_a_checkpoint_and_resume_continues_with_optimizer_state(ws):
    calls = {"n": 0}

    def stop_after_three_steps() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    cfg = TrainConfig(task="wordproblems", method="dss", student="tiny", teacher="builtin",
                      **{**SMALL, "steps": 8})
    first = train_student(ws, cfg, should_stop=stop_after_three_steps)
    assert first["status"] == "cancelled" and first["steps"] == 3
    assert ws.run_row(first["run"])["status"] == "cancelled"
    run_dir = ws.workspace / "runs" / first["run"]
    assert (run_dir / "checkpoints" / "checkpoint-3" / "optimizer.pt").is_file()
    with pytest.raises(RunError, match="no final model"):
        load_run(ws, first["run"])

    done = resume_run(ws, first["run"])
    assert done["status"] == "done" and done["steps"] == 8
    begins = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()
              if '"train_begin"' in x]
    assert [(b["step"], b["optimizer_step"]) for b in begins] == [(0, 0), (3, 3)]
    with pytest.raises(RunError, match="already finished"):
        resume_run(ws, first["run"])


def test_resume_skips_a_checkpoint_that_was_killed_while_saving(tmp_path):
    for step, complete in ((5, True), (10, True), (15, False), (100, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert last_complete_checkpoint(tmp_path / "none") is None


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_from_the_checkpoint(ws):
    spec = TrainConfig(task="wordproblems", method="standard", student="tiny", run="killed", steps=100,
                       batch_size=4, save_every=5, max_target_len=48).to_dict()
    job = start_job(ws, "train", spec)
    ckpt_root = ws.workspace / "runs" / "killed" / "checkpoints"
    deadline = time.monotonic() + 180
    while not (ckpt_root.is_dir() and any((p / "trainer_state.json").is_file() for p in ckpt_root.iterdir())):
        assert time.monotonic() < deadline, f"no checkpoint in time; job: {job_status(ws, job)}"
        assert job_status(ws, job)["status"] in ("queued", "running"), job_status(ws, job)
        time.sleep(0.2)
    time.sleep(0.5)  # let the first checkpoint finish writing
    os.kill(job_status(ws, job)["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while job_status(ws, job)["status"] != "interrupted":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    saved = sorted(int(p.name.split("-")[1]) for p in ckpt_root.iterdir() if (p / "trainer_state.json").is_file())
    assert saved and saved[-1] < 100
    resumed = resume_run(ws, "killed")
    assert resumed["status"] == "done" and resumed["steps"] == 100
    metrics = [json.loads(x) for x in (ckpt_root.parent / "metrics.jsonl").read_text().splitlines()]
    begin = [m for m in metrics if m["event"] == "train_begin"][-1]
    assert begin["step"] == saved[-1] == begin["optimizer_step"]


@pytest.mark.slow
def test_cancel_job_stops_the_background_training(ws):
    spec = TrainConfig(task="wordproblems", method="standard", student="tiny", run="to-cancel", steps=5000,
                       batch_size=4, save_every=1000, max_target_len=48).to_dict()
    job = start_job(ws, "train", spec)
    deadline = time.monotonic() + 180
    while not (job_status(ws, job)["progress"] or {}).get("step"):  # the folded state: training has begun
        assert time.monotonic() < deadline and job_status(ws, job)["status"] in ("queued", "running")
        time.sleep(0.3)
    from workbench.core.jobs import cancel_job

    cancel_job(ws, job)
    row = wait_job(ws, job, timeout=120)
    assert row["status"] == "cancelled"
    assert ws.run_row("to-cancel")["status"] == "cancelled"
    assert any((ws.workspace / "runs" / "to-cancel" / "checkpoints").iterdir())


def test_compare_joins_gold_teacher_and_student_per_example(ws, trained):
    _, summary, _ = trained("wordproblems", "dss", "tiny", "builtin")
    out = compare(ws, summary["run"])
    teacher = {r["example_id"]: r for r in ws.latest_generations("wordproblems", "builtin", split="test")}
    gold = {e.id: e.label for e in ws.examples("wordproblems", "test", 8)}
    preds = {json.loads(x)["example_id"]: json.loads(x)
             for x in (ws.workspace / "runs" / summary["run"] / "predictions.jsonl").read_text().splitlines()}
    assert [r["example_id"] for r in out["rows"]] == list(preds)
    for r in out["rows"]:
        assert r["gold"] == gold[r["example_id"]]
        assert r["teacher_label"] == teacher[r["example_id"]]["teacher_label"]
        assert r["student_label"] == preds[r["example_id"]]["label"]
    assert out["both_right"] + out["both_wrong"] + out["student_right_teacher_wrong"] + \
        out["teacher_right_student_wrong"] == out["n_shared"] == len(gold)
    assert out["teacher_accuracy"] == pytest.approx(sum(r["teacher_correct"] for r in out["rows"]) / 8)
    assert out["student_parameters"] > 0 and out["latency_ms_single"] > 0
    assert evaluate(ws, summary["run"])["accuracy"] == pytest.approx(out["student_accuracy"])


def _cli(capsys, *argv) -> tuple[int, dict | None]:
    code = cli_main(list(argv))
    out = capsys.readouterr().out.strip().splitlines()
    return code, (json.loads(out[-1]) if code == 0 and out else None)


def test_cli_train_eval_compare_runs(ws, capsys):
    w = str(ws.workspace)
    code, out = _cli(capsys, "--workspace", w, "train", "--task", "wordproblems", "--method", "dss", "--student",
                     "tiny", "--teacher", "builtin", "--steps", "3", "--batch-size", "8", "--lr", "0.003",
                     "--max-target-len", "24", "--run", "cli-run", "--test-limit", "8", "--quiet", "--json")
    assert code == 0
    assert {"run", "run_dir", "steps", "train_seconds", "accuracy", "teacher_accuracy"} <= set(out)
    assert out["run"] == "cli-run" and out["steps"] == 3
    code, out = _cli(capsys, "eval", "--workspace", w, "--run", "cli-run", "--json")
    assert code == 0 and out["n"] == 8 and 0 <= out["accuracy"] <= 1
    code, out = _cli(capsys, "compare", "--workspace", w, "--run", "cli-run", "--limit", "5", "--json")
    assert code == 0 and len(out["rows"]) == 5 and "student_accuracy" in out and "teacher_accuracy" in out
    code, out = _cli(capsys, "runs", "--workspace", w, "--json")
    assert code == 0 and "cli-run" in [r["name"] for r in out["runs"]]
    assert _cli(capsys, "eval", "--workspace", w, "--run", "no-such-run")[0] == 2
    assert _cli(capsys, "train", "--workspace", w, "--task", "wordproblems", "--method", "dss")[0] == 2
    assert _cli(capsys, "train", "--workspace", w, "--resume", "cli-run")[0] == 2  # finished: nothing to resume


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~1 min on two idle cores; a busy machine can take several times that
def test_tiny_dss_student_learns_the_builtin_word_problems(tmp_path):
    """The learning test: 120 steps of dss on the full built-in task (fixed seed) beat chance by far.

    Measured (2 CPU cores, lr 2e-3, batch 32, number slots) on these 100 test examples: 0.43 at seed 0 (0.42 on one
    thread), 0.42 and 0.49 at seeds 1 and 2, in about 15 s of training (250 steps at lr 1e-3 gave 0.49 in 31 s); the
    most frequent gold equation covers ~1% of the test split. The threshold leaves a margin for other CPUs and thread
    counts while still failing on a broken loss, collator, slot mapping or generation.
    """
    store = Store.open(tmp_path / "ws")
    task = load_task("wordproblems", store)
    generate_rationales(store, task, get_teacher("builtin", store=store))
    # No evaluation on the valid split during training (it would score 400 answers; only early stopping reads it).
    cfg = TrainConfig(task="wordproblems", method="dss", student="tiny", teacher="builtin", steps=120, seed=0,
                      learning_rate=2e-3, batch_size=32, save_every=1000, predict_rationales=False, test_limit=100,
                      eval_every=0)
    summary = train_student(store, cfg)
    assert summary["accuracy"] >= 0.3, summary


def est_without_job(store, cfg):
    from workbench.distill.estimates import estimate_run

    return estimate_run(store, cfg, calibrate=False, job=False).seconds


def test_the_time_estimate_ignores_runs_that_only_measured_their_start(store):
    from workbench.distill.estimates import estimate_run, measured_pace

    cfg = TrainConfig(task="wordproblems", method="dss", student="tiny", teacher="builtin", steps=1000, batch_size=32,
                      eval_every=0, test_limit=10)
    load_task("wordproblems", store)
    assert measured_pace(store, cfg) is None  # nothing measured yet: say nothing rather than guess
    timings = {"load": 2.0, "save": 1.0, "score": 5.0}
    for name, steps, pace in (("cancelled-at-1", 1, 30.0), ("done", 100, 0.2), ("cancelled-at-50", 50, 0.3)):
        store.upsert_run(name, task="wordproblems", method="dss", student="tiny", status="done", run_dir="/nowhere",
                         summary={"steps": steps, "s_per_step": pace, "batch_size": 32, "timings": timings,
                                  "generations": 100})
    est = estimate_run(store, cfg, calibrate=False)
    assert est.source == "measured" and est.parts["train"] == pytest.approx(250.0)  # median of 0.2 and 0.3, not 30
    # load 2 s + save 1 s + 10 test labels and 10 rationales (dss predicts both by default) at 0.05 s each
    # (plus a job's own start, which only a calibration here measures: whatever an earlier test cached)
    assert est.seconds == pytest.approx(250.0 + 2.0 + 1.0 + 20 * 0.05 + est.parts["start"])
    assert est_without_job(store, cfg) == pytest.approx(250.0 + 2.0 + 1.0 + 20 * 0.05)
    assert est.low < est.seconds < est.high and "from earlier runs here" in est.describe()
    other_batch = cfg.with_(batch_size=8)
    assert measured_pace(store, other_batch) is None  # another batch size paces differently
