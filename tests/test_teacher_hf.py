"""The ``hf`` teacher on tiny random checkpoints (causal, seq2seq, causal with a chat template) saved to tmp."""

from __future__ import annotations

import math

import pytest

from workbench.core.errors import TeacherError
from workbench.core.store import Example
from workbench.data.parsers import get_parser
from workbench.models.loading import pad_batch, save_random_checkpoint
from workbench.rationales.teachers import get_teacher
from workbench.rationales.teachers.base import TeacherRequest
from workbench.rationales.teachers.hf import (
    HFTeacher,
    answer_context,
    cut_at_stop,
    majority_vote,
    parse_stops,
)

CHAT_TEMPLATE = ("{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}assistant :{% endif %}")
PROMPTS = ["Q: Anne has 3 apples .\nA:", "Q: Tom gets 5 pears and eats 2 . How many are left ?\nA: the",
           "Q: yes or no ?\nA:", "Q: Mia has 12 apples and 4 pears . How many more apples than pears ?\nA:",
           "Q: 7\nA:"]
LABELS = ("entailment", "neutral", "contradiction")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"causal": save_random_checkpoint(root / "causal", "causal"),
            "seq2seq": save_random_checkpoint(root / "seq2seq", "seq2seq"),
            "chat": save_random_checkpoint(root / "chat", "causal", chat_template=CHAT_TEMPLATE, seed=1)}


def _requests(prompts=PROMPTS, labels=None):
    return [TeacherRequest(Example(f"e{i}", "train", p, None), p, labels) for i, p in enumerate(prompts)]


@pytest.mark.parametrize("family", ["causal", "seq2seq", "chat"])
def test_batched_greedy_equals_one_at_a_time(models, family):
    batched = HFTeacher(models[family], max_new_tokens="10", batch_size="8", stop="")
    single = HFTeacher(models[family], max_new_tokens="10", batch_size="1", stop="")
    together = [r.raw for r in batched.answer(_requests())]
    alone = [single.answer([r])[0].raw for r in _requests()]
    assert together == alone  # left padding (causal) must not change what a row generates
    assert all(isinstance(t, str) and t for t in together)
    assert batched.loaded.family == ("seq2seq" if family == "seq2seq" else "causal")
    assert batched.stats["generated_tokens"] > 0
    batched.close()
    assert batched._loaded is None


def test_chat_template_is_used_when_the_tokenizer_has_one(models):
    chat, plain = HFTeacher(models["chat"]), HFTeacher(models["causal"])
    assert chat.render_messages([{"role": "user", "content": "hi"}]) == "<s> user : hi assistant :"
    assert plain.render_messages([{"role": "user", "content": "hi"}]) == "hi"


def test_left_padding_for_causal_batches():
    ids, mask = pad_batch([[5, 6, 7], [8]], 0, left=True)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert pad_batch([[5, 6], [8]], 0, left=False)[0].tolist() == [[5, 6], [8, 0]]


def test_stop_strings_cut_the_text_and_stop_generation(models):
    full_teacher = HFTeacher(models["causal"], max_new_tokens="16", stop="")
    full = full_teacher.answer(_requests(PROMPTS[:1]))[0].raw
    words = full.split()
    stop = words[len(words) // 2]
    cut_teacher = HFTeacher(models["causal"], max_new_tokens="16", stop=stop)
    cut = cut_teacher.answer(_requests(PROMPTS[:1]))[0].raw
    assert cut == cut_at_stop(full, (stop,)).strip() and stop not in cut
    assert cut_teacher.stats["generated_tokens"] < full_teacher.stats["generated_tokens"]
    assert cut_at_stop("a. The answer is 4.\nQ: next\nQ: more", parse_stops("\\nQ:")) == "a. The answer is 4."


def test_nonsense_is_recorded_as_parse_errors_never_a_crash(models, store):
    from workbench.data.tasks import load_task
    from workbench.rationales.generation import generate_rationales

    nli = load_task("quantnli", store, n_train=6, n_valid=2, n_test=2)
    wp = load_task("wordproblems", store, n_train=6, n_valid=2, n_test=2)
    for task in (nli, wp):
        teacher = get_teacher(f"hf:{models['causal']}?max_new_tokens=12&batch_size=4", store=store)
        summary = generate_rationales(store, task, teacher, limit=6)
        assert summary["generated"] == 6 and summary["errors"] == 0
        assert summary["parsed"] + summary["parse_errors"] == 6 and summary["parse_errors"] >= 5
        rows = store.latest_generations(task.name, teacher.id)
        assert len(rows) == 6 and all(r["raw"] is not None for r in rows)
        if task.labels:  # class task: a distribution over the label space, for kd
            for r in rows:
                assert set(r["label_dist"]) == set(task.labels)
                assert math.isclose(sum(r["label_dist"].values()), 1.0, abs_tol=1e-4)
        else:
            assert all(r["label_dist"] is None for r in rows)
        again = generate_rationales(store, task, teacher, limit=6)
        assert again["generated"] == 0 and again["skipped"] == 6  # the cache: never paid twice


@pytest.mark.parametrize("family", ["causal", "seq2seq"])
def test_label_dist_sums_to_one_over_the_label_space(models, family):
    teacher = HFTeacher(models[family], max_new_tokens="8")
    for reply in teacher.answer(_requests(PROMPTS[:3], LABELS)):
        assert list(reply.label_dist) == list(LABELS)
        assert math.isclose(sum(reply.label_dist.values()), 1.0, abs_tol=1e-4)
        assert all(0 <= p <= 1 for p in reply.label_dist.values())


def test_self_consistency_keeps_the_majority_and_records_the_vote(models):
    parser = get_parser("class")
    raw, dist = majority_vote(["x. So the answer is neutral.", "y. So the answer is entailment.",
                               "z. So the answer is entailment.", "no marker at all"], parser, LABELS)
    assert raw == "y. So the answer is entailment."
    assert dist == {"entailment": 0.666667, "neutral": 0.333333, "contradiction": 0.0}
    assert majority_vote(["nonsense", "more nonsense"], parser, LABELS) == ("nonsense", None)
    teacher = HFTeacher(models["causal"], max_new_tokens="8", temperature="1.0", n="3", seed="3")
    replies = teacher.answer(_requests(PROMPTS[:2], LABELS))
    assert all(isinstance(r.raw, str) and r.error is None for r in replies)
    assert teacher.stats["prompts"] == 2 and teacher.settings["n"] == 3


def test_answer_context_ends_at_the_marker():
    parser = get_parser("class")
    assert answer_context("5 > 3. So the answer is yes.\nQ: next", parser) == "5 > 3. So the answer is"
    assert answer_context("rambling", parser) == "rambling So the answer is"


def test_settings_are_normalised_and_loading_is_lazy(tmp_path):
    a = get_teacher(f"hf:{tmp_path / 'missing'}")
    b = get_teacher(f"hf:{tmp_path / 'missing'}?temperature=0&batch_size=4&device=cpu")
    assert a.settings == b.settings and a.id == b.id  # runtime options do not split the cache
    assert get_teacher(f"hf:{tmp_path}?temperature=0.7&seed=1").settings != a.settings
    with pytest.raises(TeacherError, match="cannot load"):
        a.answer(_requests(PROMPTS[:1]))


@pytest.mark.parametrize("spec", ["hf:", "hf:x?colour=red", "hf:x?n=3", "hf:x?top_p=2", "hf:x?max_new_tokens=z",
                                  "hf:x?dtype=int8"])
def test_bad_specs_are_clear_errors(spec):
    with pytest.raises(TeacherError):
        get_teacher(spec)


def test_pickled_weights_are_refused(models, tmp_path):
    import shutil
    from pathlib import Path

    folder = tmp_path / "no-safetensors"
    shutil.copytree(models["causal"], folder)
    for f in Path(folder).glob("*.safetensors"):
        f.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(TeacherError, match="safetensors"):
        HFTeacher(str(folder)).answer(_requests(PROMPTS[:1]))


def test_a_trained_run_answers_as_a_teacher(store):
    import json

    from workbench.data.tasks import load_task
    from workbench.distill.config import TrainConfig
    from workbench.rationales.generation import generate_rationales

    task = load_task("quantnli", store, n_train=4, n_valid=2, n_test=2)
    run = store.workspace / "runs" / "r1"  # a run folder as runs.py writes it, with a random seq2seq student
    save_random_checkpoint(run / "model", "seq2seq")
    cfg = TrainConfig(task="quantnli", method="dss", student="tiny", teacher="builtin")
    (run / "config.json").write_text(json.dumps({"config": cfg.to_dict(),
                                                 "generation": {"label_tokens": 4, "rationale_tokens": 8}}))
    teacher = get_teacher("run:r1", store=store)
    summary = generate_rationales(store, task, teacher)
    assert summary["generated"] == 4 and summary["errors"] == 0
    rows = store.latest_generations("quantnli", "run:r1")
    assert all(" So the answer is " in r["raw"] for r in rows)  # rationale head + label head, as raw text
    with pytest.raises(TeacherError, match="store"):
        get_teacher("run:r1").answer(_requests(PROMPTS[:1]))
