"""How long a run will take, said before it starts: from the measured pace of earlier runs here, otherwise from a
short calibration of that student on this machine (a few training steps and a few generated answers, cached).

A run's time is the sum of its phases: loading the student, training steps, evaluations during training, saving
the model and scoring the test split. :func:`estimate_run` adds them up for one :class:`TrainConfig`; sweeps add
up their cells. An estimate is a range, because a CPU shared with other work runs slower than it measured.

>>> est = estimate_run(store, TrainConfig(task="wordproblems", method="dss", student="tiny", teacher="builtin"))
>>> est.source, est.seconds > 0      # est.describe(): 'about 87 s–2 min (from a short calibration on this machine, …)'
('calibrated', True)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.core.errors import RunError
from workbench.core.events import Note
from workbench.core.store import Store
from workbench.distill.config import TrainConfig
from workbench.distill.runfolder import write_atomic

PACE_MIN_STEPS = 10  # a run cancelled after a step or two measured its start-up, not its pace
CALIBRATION_STEPS = {"small": 6, "large": 3}  # per student size: the first step is a warm-up, never timed
# What a measured pace or a calibration can be off by on a machine whose other work comes and goes: measured here,
# a 2-core machine under a browser test ran SmolLM2 steps up to ~1.4x slower than on quiet cores.
SLOWER, FASTER = 1.4, 0.85


@dataclass
class Estimate:
    """Seconds for a run (or a grid of them), per phase, and where the figures come from."""

    seconds: float = 0.0
    low: float = 0.0
    high: float = 0.0
    parts: dict = field(default_factory=dict)  # phase -> seconds (load, train, evaluate, save, score)
    source: str = "measured"  # measured (earlier runs here), calibrated (a short measurement), or none
    s_per_step: float | None = None
    note: str = ""

    def __add__(self, other: Estimate) -> Estimate:
        parts = {k: round(self.parts.get(k, 0) + other.parts.get(k, 0), 2) for k in {*self.parts, *other.parts}}
        sources = {self.source, other.source} - {""}
        note = self.note or other.note
        return Estimate(self.seconds + other.seconds, self.low + other.low, self.high + other.high, parts,
                        "measured" if sources == {"measured"} else ("none" if "none" in sources else "calibrated"),
                        note=note if "none" in sources else "")

    def describe(self) -> str:
        """``about 3–4 min`` and where it comes from, for a form or a terminal."""
        if self.source == "none":
            return self.note or "no estimate"
        span = f"{_duration(self.low)}–{_duration(self.high)}" if _duration(self.low) != _duration(self.high) \
            else _duration(self.seconds)
        where = {"measured": "from earlier runs here", "calibrated": "from a short calibration on this machine"}
        pace = f", {self.s_per_step:.2f} s a step" if self.s_per_step else ""
        return f"about {span} ({where.get(self.source, self.source)}{pace})" + (f"; {self.note}" if self.note else "")

    def to_dict(self) -> dict:
        return {**asdict(self), "text": self.describe()}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


# -- one run --------------------------------------------------------------------------------------------------------
def estimate_run(store: Store, cfg: TrainConfig, *, calibrate: bool | str = True, job: bool = True) -> Estimate:
    """The run's time per phase: from the pace of earlier runs with the same student, method and batch size
    (same task first), else from a calibration (once per student, task and method on this machine): measured now
    when ``calibrate`` is True, started in a background thread when it is ``"background"`` (a form then says it is
    measuring, and asks again); ``Estimate.source == "none"`` when neither is there yet. ``job``: the run is a
    background job, which first starts a process (a calibration measured that too)."""
    cfg = cfg.resolved()
    pace = measured_pace(store, cfg) or calibration(store, cfg, run=calibrate is True)
    if pace is None and calibrate == "background":
        calibrate_in_background(store, cfg)
        return Estimate(source="none", note=f"measuring {cfg.student} ({cfg.method}) on this machine: a few training "
                                            "steps and answers, once (seconds; about a minute for a pretrained model)")
    if pace is None:
        return Estimate(source="none", note="no earlier run with these settings here; the estimate needs a short "
                                            "calibration of the student on this machine")
    n_test = len(store.examples(cfg.task, "test", cfg.test_limit))
    generations = n_test * (2 if cfg.predict_rationales and pace.get("gives_rationales") else 1)
    n_evals = (cfg.steps // cfg.eval_every) + (cfg.steps % cfg.eval_every != 0) if cfg.eval_every else 0
    n_valid = min(cfg.eval_limit, len(store.examples(cfg.task, "valid", cfg.eval_limit))) if n_evals else 0
    per_gen = pace["s_per_generation"]
    parts = {"load": pace["load"], "train": cfg.steps * pace["s_per_step"], "evaluate": n_evals * n_valid * per_gen,
             "save": pace["save"], "score": generations * per_gen}
    if job:  # a background job starts a process of its own first
        parts["start"] = pace.get("start", 0.0)
    seconds = sum(parts.values())
    fast = pace.get("s_per_step_min", pace["s_per_step"]) / pace["s_per_step"]
    return Estimate(seconds, seconds * min(FASTER, fast), seconds * SLOWER, {k: round(v, 2) for k, v in parts.items()},
                    pace["source"], pace["s_per_step"])


def measured_pace(store: Store, cfg: TrainConfig) -> dict | None:
    """Seconds per step, per generated answer, to load and to save, from earlier finished runs here with the
    same student, method and batch size (the same task preferred: step time follows sequence length)."""
    runs = [r for r in store.list_runs() if r["method"] == cfg.method and r["student"] == cfg.student
            and r["summary"].get("batch_size") == cfg.batch_size
            and isinstance(r["summary"].get("s_per_step"), (int, float))
            and (r["summary"].get("steps") or 0) >= PACE_MIN_STEPS]
    same_task = [r for r in runs if r["task"] == cfg.task]
    runs = same_task or runs
    if not runs:
        return None
    steps = [r["summary"]["s_per_step"] for r in runs]
    timed = [r["summary"] for r in runs if r["summary"].get("timings", {}).get("score") is not None
             and r["summary"].get("generations")]
    if not timed:  # runs from before phases were timed: pace only, the rest from a calibration if there is one
        return None
    calibrated = calibration(store, cfg, run=False) or {}
    return {"source": "measured", "s_per_step": statistics.median(steps), "s_per_step_min": min(steps),
            "start": calibrated.get("start", 0.0),
            "load": statistics.median(s["timings"].get("load", 0) for s in timed),
            "save": statistics.median(s["timings"].get("save", 0) for s in timed),
            "s_per_generation": statistics.median(s["timings"]["score"] / s["generations"] for s in timed),
            "gives_rationales": _gives_rationales(cfg)}


def _gives_rationales(cfg: TrainConfig) -> bool:
    from workbench.distill.methods import method_for_config

    return method_for_config(cfg).gives_rationales


# -- calibration ----------------------------------------------------------------------------------------------------
def machine_id() -> str:
    """What a calibration is valid for: this CPU (or GPU), its threads and the torch build."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    cpu = platform.processor() or platform.machine()
    text = f"{platform.node()}|{cpu}|{os.cpu_count()}|{torch.get_num_threads()}|{torch.__version__}|{gpu}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# 2: each calibration says how busy the machine was (``busy``); 3: timed in the run's precision (bf16 where the
# hardware has it, as training and scoring now are). Older ones are measured again.
CALIBRATION_FORMAT = 3
BUSY = 1.0  # load average per core from other work above which a measurement says more about the load than the student


def machine_busy() -> float:
    """The 1-minute load average per core: what other work takes from a measurement started now."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # not on every platform
        return 0.0


def _stale(cached: dict) -> bool:
    """Measured while other work filled the cores, and the machine is quiet now: the figure would be several times
    too slow (a tiny student calibrated beside a test run measured 3.3 s a step for a 0.19 s step), so measure again."""
    return (cached.get("busy") or 0.0) > BUSY and machine_busy() < BUSY / 2


def _key(cfg: TrainConfig) -> str:
    parts = (f"v{CALIBRATION_FORMAT}", machine_id(), cfg.task, cfg.student, cfg.method, cfg.batch_size,
             cfg.lora_rank, cfg.max_input_len, cfg.max_target_len, cfg.bf16)
    return "|".join(str(p) for p in parts)


def calibration_file(store: Store) -> Path:
    """Where calibrations are kept: ``$WORKBENCH_CALIBRATION``, else beside the model cache (one file per machine
    user, shared by workspaces), else in the workspace when that folder cannot be written."""
    if os.environ.get("WORKBENCH_CALIBRATION"):
        return Path(os.environ["WORKBENCH_CALIBRATION"]).expanduser()
    from workbench.models.cache import models_dir

    folder = models_dir().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder / "calibration.json"
    except OSError:
        pass
    return store.workspace / "calibration.json"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}  # a damaged cache is measured again
    return data if isinstance(data, dict) else {}


def calibration(store: Store, cfg: TrainConfig, *, run: bool = True, progress=None) -> dict | None:
    """The cached calibration of this student, task and method on this machine; measured now (a few seconds, about a
    minute for SmolLM2-135M on 2 cores) when there is none and ``run``. One calibration runs at a time on a machine
    (a lock beside the cache): a second request for the same key waits for the first and reads its result, so a
    form whose every change asks for an estimate never starts the same measurement twice."""
    from workbench.core.locks import OwnerLock

    path = calibration_file(store)
    key = _key(cfg)
    cached = _read_cache(path).get(key)
    if cached is not None and _stale(cached):
        cached = None if run else cached  # a figure from a busy machine until a new one replaces it
    if cached is not None or not run:
        return cached
    lock = OwnerLock.acquire(path.with_name(path.name + ".lock"), wait=1800, note=f"calibrating {cfg.student}")
    try:
        cached = _read_cache(path).get(key)  # measured by whoever held the lock before us
        if cached is not None and not _stale(cached):
            return cached
        if progress is not None:
            progress(Note(message=f"calibrating {cfg.student} ({cfg.method}) on this machine, once (seconds; about a "
                                  "minute for a pretrained model)"))
        # In a process of its own: a pretrained student's weights, gradients and optimizer state (~2 GB for
        # SmolLM2) are given back when it ends, not kept by the app that asked.
        started, busy = time.monotonic(), machine_busy()
        out = subprocess.run([sys.executable, "-m", "workbench.distill.estimates", "--workspace",
                              str(store.workspace), json.dumps(cfg.to_dict())], capture_output=True, text=True,
                             timeout=900, env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                                               "TRANSFORMERS_VERBOSITY": "error"})
        if out.returncode != 0:
            lines = (out.stderr or out.stdout).strip().splitlines()
            raise RunError(f"calibrating {cfg.student} failed: {lines[-1] if lines else 'no output'}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        # What a job pays before its first phase: a process starting and importing torch and transformers.
        result["start"] = round(max(0.0, time.monotonic() - started - result.pop("inside", 0.0)), 2)
        result["busy"] = round(busy, 2)
        cache = _read_cache(path)
        cache[key] = result
        write_atomic(path, json.dumps(cache, indent=1))
        return result
    finally:
        lock.release()


_BACKGROUND: dict[str, threading.Thread] = {}
_BACKGROUND_LOCK = threading.Lock()


def calibrate_in_background(store: Store, cfg: TrainConfig) -> None:
    """Start this calibration in a thread unless it is running already (one per key); its result lands in the
    cache, where the next :func:`estimate_run` finds it. A failure is remembered as none (the form says so)."""
    key = _key(cfg)
    with _BACKGROUND_LOCK:
        if key in _BACKGROUND and _BACKGROUND[key].is_alive():
            return

        def work():
            try:
                calibration(Store.open(store.workspace), cfg, run=True)
            except Exception:  # noqa: BLE001 - a failed estimate must not take the app down; the form asks again
                pass

        thread = threading.Thread(target=work, name=f"calibrate {cfg.student}", daemon=True)
        _BACKGROUND[key] = thread
        thread.start()


def calibrating() -> bool:
    """Whether a background calibration is still running (a form polls until none is)."""
    with _BACKGROUND_LOCK:
        return any(t.is_alive() for t in _BACKGROUND.values())


def measure(store: Store, cfg: TrainConfig) -> dict:
    """Load the student, time a few training steps on the task's own rows at the run's batch size, a batch of
    generated answers and a save: the pace of the phases of a real run, on this machine, now."""
    import torch

    from workbench.data.tasks import load_task
    from workbench.distill.encoding import Collator, encoder_for, target_logits
    from workbench.distill.methods import method_for_config
    from workbench.distill.number_slots import resolve_numbers
    from workbench.distill.predict import predictor_for
    from workbench.distill.run_description import vocab_texts
    from workbench.distill.runs import calibration_rows
    from workbench.distill.students import device_info, is_from_scratch, make_student
    from workbench.distill.trainer import prepare_for_training

    began = time.monotonic()
    task = load_task(cfg.task, store)
    cfg = cfg.with_(numbers=resolve_numbers(cfg.numbers, task.answer_kind, is_from_scratch(cfg.student)))
    rows = calibration_rows(store, task, cfg)
    started = time.monotonic()
    student = make_student(cfg.student, vocab_texts(store, task, rows, cfg.numbers), seed=cfg.seed,
                           trust_remote_code=cfg.trust_remote_code)
    load = time.monotonic() - started
    method = method_for_config(cfg)
    prepare_for_training(student, cfg)
    encoder = encoder_for(student, cfg)
    collate = Collator(student.tokenizer.pad_token_id, student.is_causal,
                       decoder_start_id=getattr(student.model.config, "decoder_start_token_id", None))
    model = student.model
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    n_steps = CALIBRATION_STEPS["small" if is_from_scratch(cfg.student) else "large"]
    device, bf16 = next(model.parameters()).device.type, device_info(cfg.bf16, cfg.student)["bf16"]
    times = []
    for step in range(n_steps):
        batch_rows = [rows[(step * cfg.batch_size + i) % len(rows)] for i in range(cfg.batch_size)]
        batch = collate([encoder.encode(method, r, task.labels) for r in batch_rows])
        t0 = time.monotonic()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):  # as the Trainer runs the loss
            logits, targets, tasks = target_logits(model, batch, student.is_causal)
            loss = method.target_loss(logits, targets, tasks).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.monotonic() - t0)
    model.config.use_cache = True
    predictor = predictor_for(student, cfg, {"label_tokens": _label_tokens(encoder, rows),
                                             "layout": encoder.layout}, {"answer_kind": task.answer_kind})
    examples = (store.examples(task.name, "test", 32) or store.examples(task.name, "train", 32))
    t0 = time.monotonic()
    predictor.predict([e.input for e in examples])
    per_gen = (time.monotonic() - t0) / max(1, len(examples))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        model.save_pretrained(tmp)
        save = time.monotonic() - t0
    timed = times[1:] or times
    return {"source": "calibrated", "s_per_step": statistics.median(timed), "s_per_step_min": min(timed),
            "load": round(load, 2), "save": round(save, 2), "s_per_generation": per_gen,
            "gives_rationales": method.gives_rationales, "measured": time.time(), "steps_timed": len(timed),
            "inside": time.monotonic() - began}


def _label_tokens(encoder, rows: list[dict]) -> int:
    return max(len(encoder.target_ids(encoder.slots(r["input"]).encode(r["label"]))) for r in rows) + 2


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.distill.estimates --workspace W CONFIG_JSON``: measure, print one JSON line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m workbench.distill.estimates")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("config")
    args = parser.parse_args(argv)
    store = Store.open(args.workspace)
    print(json.dumps(measure(store, TrainConfig.from_dict(json.loads(args.config)).resolved())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
