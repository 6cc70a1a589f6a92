"""bf16 mixed precision: ``auto`` follows the hardware, and where bf16 is on, the loss's own forward (the decoder
body and the output layer called directly, not the model's wrapped forward) and the test scoring both run in it."""

from __future__ import annotations

import pytest
import torch

from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill import encoding
from workbench.distill.config import TrainConfig
from workbench.distill.predict import load_run
from workbench.distill.runs import train_student
from workbench.distill.students import cpu_bf16, device_info
from workbench.rationales.generation import generate_rationales
from workbench.rationales.teachers import get_teacher


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("precision") / "ws")
    task = load_task("wordproblems", store, n_train=32, n_valid=4, n_test=6)
    generate_rationales(store, task, get_teacher("builtin", store=store))
    return store


@pytest.mark.parametrize(("caps", "auto"), [({"avx512_bf16": True}, True), ({"amx_bf16": True}, True),
                                            ({"avx512_bf16": False, "amx_bf16": False}, False)])
def test_auto_takes_bf16_where_the_cpu_has_it_natively(monkeypatch, caps, auto):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    assert cpu_bf16() is auto
    assert device_info("auto", "smollm2-135m")["bf16"] is auto and device_info("auto", "/my/checkpoint")["bf16"] is auto
    # The from-scratch presets stay float32 unless asked: the demo's tiny run was no faster and learnt less in bf16.
    assert device_info("auto", "tiny")["bf16"] is False and device_info("auto", "small")["bf16"] is False
    assert device_info("true", "tiny")["bf16"] is True and device_info("false", "smollm2-135m")["bf16"] is False


@pytest.mark.parametrize("bf16", ["true", "false"])
def test_the_loss_and_the_scoring_run_in_the_precision_asked(ws, monkeypatch, bf16):
    """A causal student's loss calls the decoder body and the output layer itself (target positions only), so the
    autocast accelerate puts around ``model.forward`` never reached it: with bf16 on, training ran in float32."""
    seen = {"loss": set(), "scoring": set()}
    real = encoding.target_logits

    def spy(model, batch, causal):
        logits, targets, tasks = real(model, batch, causal)
        seen["loss"].add(logits.dtype)
        return logits, targets, tasks

    monkeypatch.setattr("workbench.distill.trainer.target_logits", spy)
    cfg = TrainConfig(task="wordproblems", method="dss", student="tiny-causal", teacher="builtin", steps=2,
                      batch_size=4, bf16=bf16, eval_every=0, save_every=100, predict_rationales=False, test_limit=3,
                      run=f"precision-{bf16}")
    train_student(ws, cfg)
    want = torch.bfloat16 if bf16 == "true" else torch.float32
    assert seen["loss"] == {want}

    # Scoring a saved run again (`workbench eval`, Compare) generates in the precision the run trained in.
    run = load_run(ws, f"precision-{bf16}")
    assert run.predictor.bf16 is (bf16 == "true")
    head = run.student.model.lm_head
    hook = head.register_forward_hook(lambda _m, _i, out: seen["scoring"].add(out.dtype))
    try:
        (answer,) = run.predict(["Tom has 12 apples and eats 5. How many are left?"])
    finally:
        hook.remove()
    assert seen["scoring"] == {want} and "label" in answer


def test_the_train_forms_device_line_says_this_runs_precision(monkeypatch):
    from workbench.ui.train import device_line

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    assert device_line(TrainConfig(task="wordproblems", student="smollm2-135m", teacher="builtin")).endswith("· bf16")
    assert device_line(TrainConfig(task="wordproblems", student="tiny", teacher="builtin")).endswith("· float32")
