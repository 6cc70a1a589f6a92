"""The paper's release importer: real SVAMP/CQA figures, synthetic ANLI R1 / e-SNLI folders, the released teacher,
and the prompt templates' own exemplars."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from workbench.core.errors import ConfigError, ImportDataError, WorkbenchError
from workbench.core.store import Store
from workbench.data.prompts import TEMPLATES, get_template
from workbench.data.tasks import load_task
from workbench.imports.paper import (
    NLI_LABELS,
    PAPER_DATASETS,
    RELEASED_TEACHER,
    import_paper,
    load_hub_dataset,
    released_template,
)

PAPER_DATA = Path(__file__).resolve().parents[2] / "shared" / "paper-data"  # as conftest's paper_data


@pytest.fixture(scope="module")
def paper_store(tmp_path_factory):
    """SVAMP and CQA imported once for the module (CQA is 11k rows); the import time is kept for a test."""
    if not (PAPER_DATA / "cqa").is_dir():
        pytest.fail(f"the paper's released data is missing at {PAPER_DATA}")
    store = Store.open(tmp_path_factory.mktemp("paper") / "ws")
    results = {"svamp": import_paper(store, PAPER_DATA, "svamp")}
    started = time.perf_counter()
    results["cqa"] = import_paper(store, PAPER_DATA / "cqa", "cqa")
    results["cqa_seconds"] = time.perf_counter() - started
    yield store, results
    store.close()


def test_svamp_figures_match_the_paper(paper_store):
    store, results = paper_store
    r = results["svamp"]
    assert r["examples"] == {"train": 800, "test": 200}
    assert r["generations"] == 1000
    # test: 2 answers without "The answer is", 5 whose parenthesised label is not arithmetic ("(23 + x)", …)
    assert r["parse_errors"] == 41
    assert r["teacher_accuracy"]["test"] == 0.74  # 148/200, the paper's figure
    rows = store.latest_generations("svamp", RELEASED_TEACHER, split="test")
    assert sum(x["parse_error"] is not None for x in rows) == 7
    # The paper's rule takes the first '(' … last ')' span: "(12 - 2) - 7" is read as "(12 - 2)".
    assert rows[4]["teacher_label"] == "(12 - 2)"


def test_cqa_figures_match_the_paper_and_import_is_fast(paper_store):
    store, results = paper_store
    r = results["cqa"]
    assert r["examples"] == {"train": 9741, "test": 1221}
    assert r["generations"] == 9741 + 1221
    assert r["teacher_accuracy"]["test"] == round(943 / 1221, 4) == 0.7723
    rows = store.latest_generations("cqa", RELEASED_TEACHER, split="test")
    task = load_task("cqa", store)
    assert sum(x["parse_error"] is None and task.is_correct(x["teacher_label"], x["gold"]) for x in rows) == 943
    assert sum(x["parse_error"] is not None for x in rows) == 16
    assert results["cqa_seconds"] < 10, f"CQA import took {results['cqa_seconds']:.1f}s"


def test_inputs_render_as_the_paper_does(paper_store, paper_data):
    store, _ = paper_store
    first = json.loads((paper_data / "cqa" / "cqa_test.json").read_text().splitlines()[0])
    ex = store.example("cqa", "test-0")
    letters = "\n".join(f"({x}) {c}" for x, c in zip("abcde", first["choices"]))
    assert ex.input == f"{first['question']}\nAnswer Choices:\n{letters}"
    assert ex.label == first["answer"] and ex.fields["id"] == first["id"]
    svamp = json.loads((paper_data / "svamp" / "svamp_train.json").read_text().splitlines()[0])
    assert store.example("svamp", "train-0").input == svamp["input"]
    assert store.example("svamp", "train-0").label == svamp["label"]


def test_parse_errors_are_kept_never_empty_labels(paper_store):
    store, _ = paper_store
    for task in ("svamp", "cqa"):
        rows = store.latest_generations(task, RELEASED_TEACHER)
        assert all(r["raw"] for r in rows)
        assert not [r for r in rows if r["teacher_label"] is not None and not r["teacher_label"].strip()]
        assert all(r["parse_error"] or r["teacher_label"] for r in rows)
        assert all("\nQ:" not in (r["teacher_rationale"] or "") for r in rows)  # follow-on examples are cut
        assert not [r for r in rows if (r["teacher_rationale"] or "").endswith(" So")]  # "So the answer is"


def test_released_template_is_stored_with_its_parser(paper_store):
    store, results = paper_store
    for name, parser in (("svamp", "equation-paper"), ("cqa", "choice")):
        stored = store.template(results[name]["template_hash"])
        assert stored["name"] == "released" and stored["parser"] == parser
        assert "never released" in stored["text"]
        assert released_template(PAPER_DATASETS[name]).hash == results[name]["template_hash"]


def test_reimport_is_idempotent(paper_store, paper_data):
    store, results = paper_store
    again = import_paper(store, paper_data / "svamp", "svamp")
    assert again["already_imported"] is True
    assert {k: again[k] for k in ("examples", "generations", "parse_errors", "teacher_accuracy")} == {
        k: results["svamp"][k] for k in ("examples", "generations", "parse_errors", "teacher_accuracy")}
    assert store.teachers_of("svamp")[0]["n"] == 1000  # nothing written twice
    with pytest.raises(ImportDataError, match="already exists.*--name"):
        import_paper(store, paper_data, "cqa", name="svamp")


def test_released_teacher_replays_and_cannot_generate(paper_store):
    from workbench.core.store import Example
    from workbench.rationales.generation import generate_rationales
    from workbench.rationales.teachers import TeacherRequest, get_teacher

    store, _ = paper_store
    teacher = get_teacher(RELEASED_TEACHER, store=store)
    assert teacher.id == RELEASED_TEACHER and not teacher.can_generate
    ex = store.example("svamp", "test-0")
    stranger = Example("test-0", "test", "an input nobody stored", None)
    replies = teacher.answer([TeacherRequest(ex, ""), TeacherRequest(stranger, "")])
    assert replies[0].raw.startswith("They put 10 seeds") and replies[0].error is None
    assert replies[1].raw is None and "no stored answer" in replies[1].error
    with pytest.raises(ConfigError, match="only replays"):
        generate_rationales(store, load_task("svamp", store), teacher)


# -- synthetic ANLI R1 and e-SNLI folders --------------------------------------------------------------------
def _write_release(root, ds, splits: dict[str, list[dict]], answers: dict[str, list[list[str]]]):
    folder = root / ds
    (folder / "llm").mkdir(parents=True)
    for split, rows in splits.items():
        (folder / f"{ds}_{split}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for split, chunks in answers.items():
        for i, chunk in enumerate(chunks):
            (folder / "llm" / f"{split}_CoT_{i}.json").write_text(json.dumps(chunk))
    return folder


ANLI_ROWS = [
    {"uid": "a1", "premise": "The mill still grinds corn.", "hypothesis": "The mill closed.", "label": 2, "reason": ""},
    {"uid": "a2", "premise": "Ann plays for Italy.", "hypothesis": "Ann plays for her country.", "label": 0,
     "reason": ""},
    {"uid": "a3", "premise": "Bo wrote a book.", "hypothesis": "Bo wrote it in Rome.", "label": 1, "reason": ""},
]
ANLI_ANSWERS = [
    "The mill still works, so it did not close. So the answer is contradiction.\n\nPremise: x\nHypothesis: y",
    "Italy is her country. So the answer is entailment.\n\nQ: another invented example",
    "The premise says nothing about where the book was written.",  # no marker: a parse error
]


def test_anli1_synthetic_folder(tmp_path, store):
    _write_release(tmp_path, "anli1", {"train": ANLI_ROWS, "valid": ANLI_ROWS[:1], "test": ANLI_ROWS[1:]},
                   {"train": [ANLI_ANSWERS[:2], ANLI_ANSWERS[2:]], "test": [ANLI_ANSWERS[1:]]})
    r = import_paper(store, tmp_path, "anli1")  # the release root holding anli1/
    assert r["examples"] == {"train": 3, "valid": 1, "test": 2}
    # Released ANLI answers are read by the paper's own rule: the answer followed by an invented "Q:" example is
    # one it leaves unparsed (its label keeps the follow-on text), so it counts as a parse error here too.
    assert r["generations"] == 5 and r["parse_errors"] == 4
    assert r["teacher_accuracy"] == {"train": pytest.approx(1 / 3, abs=1e-4), "test": 0.0}
    ex = store.example("anli1", "train-0")
    assert ex.input == "Premise: The mill still grinds corn.\nHypothesis: The mill closed." and ex.label == "contradiction"
    rows = {x["example_id"]: x for x in store.latest_generations("anli1", RELEASED_TEACHER, split="train")}
    assert rows["train-0"]["teacher_label"] == "contradiction"
    assert rows["train-0"]["teacher_rationale"] == "The mill still works, so it did not close."
    assert rows["train-2"]["parse_error"] and rows["train-2"]["teacher_label"] is None
    assert load_task("anli1", store).labels == NLI_LABELS


def test_esnli_synthetic_folder_answer_marker(tmp_path, store):
    rows = [{"premise": f"P{i}.", "hypothesis": f"H{i}.", "label": i % 3, "explanation_1": "e", "explanation_2": "",
             "explanation_3": ""} for i in range(11)]
    answers = [f"Reason {i}.\nAnswer: {NLI_LABELS[i % 3]}\n\nPremise: invented\nHypothesis: more" for i in range(11)]
    answers[10] = "Reason 10.\nAnswer: maybe"  # outside the label space: a parse error
    # Eleven chunks of one answer: chunk 10 must come after chunk 9, not after chunk 1.
    folder = _write_release(tmp_path, "esnli", {"train": rows}, {"train": [[a] for a in answers]})
    r = import_paper(store, folder, "esnli")
    assert r["generations"] == 11 and r["parse_errors"] == 1
    assert r["teacher_accuracy"] == {"train": round(10 / 11, 4)}
    got = store.latest_generations("esnli", RELEASED_TEACHER)
    assert [g["teacher_rationale"] for g in got[:10]] == [f"Reason {i}." for i in range(10)]
    assert "maybe" in got[10]["parse_error"]


@pytest.mark.parametrize("breakage, message", [
    ("missing_answer", r"hold 2 answers but anli1_train.json has 3 rows"),
    ("chunk_gap", r"not numbered 0\.\.1"),
    ("bad_label", r"row 1: label 7"),
    ("bad_json", r"anli1_train.json:2: not valid JSON"),
    ("orphan_answers", r"answers for split\(s\) valid"),
])
def test_broken_release_folders_are_clear_errors(tmp_path, store, breakage, message):
    rows, answers = [dict(r) for r in ANLI_ROWS], {"train": [ANLI_ANSWERS]}
    if breakage == "missing_answer":
        answers = {"train": [ANLI_ANSWERS[:2]]}
    elif breakage == "bad_label":
        rows[0]["label"] = 7
    elif breakage == "orphan_answers":
        answers["valid"] = [ANLI_ANSWERS[:1]]
    folder = _write_release(tmp_path, "anli1", {"train": rows}, answers)
    if breakage == "chunk_gap":
        (folder / "llm" / "train_CoT_0.json").rename(folder / "llm" / "train_CoT_2.json")
        (folder / "llm" / "train_CoT_1.json").write_text("[]")
    elif breakage == "bad_json":
        with (folder / "anli1_train.json").open("r+") as f:
            lines = f.read().splitlines()
            lines[1] = lines[1][:-3]
            f.seek(0), f.truncate(), f.write("\n".join(lines))
    with pytest.raises(ImportDataError, match=message):
        import_paper(store, folder, "anli1")
    assert not store.has_task("anli1")  # nothing half-imported


def test_wrong_folder_and_unknown_dataset(tmp_path, store):
    with pytest.raises(ImportDataError, match="does not exist"):
        import_paper(store, tmp_path / "nowhere", "svamp")
    with pytest.raises(ImportDataError, match="svamp_train.json"):
        import_paper(store, tmp_path, "svamp")
    with pytest.raises(WorkbenchError, match="unknown paper dataset 'gsm8k'"):
        import_paper(store, tmp_path, "gsm8k")
    with pytest.raises(ConfigError, match="task name"):
        import_paper(store, tmp_path, "svamp", name="../evil")


def test_hub_loader_offline_is_a_clear_error(store, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(WorkbenchError, match="cannot load 'esnli' from the hub"):
        load_hub_dataset(store, "esnli")
    assert not store.has_task("esnli")


# -- the prompt templates ------------------------------------------------------------------------------------
TEMPLATE_LABELS = {"anli1": NLI_LABELS, "esnli": NLI_LABELS}


@pytest.mark.parametrize("name", ["svamp", "cqa", "anli1", "esnli", "generic-class", "generic-text"])
def test_templates_exemplars_parse_with_their_parser(name):
    template = get_template(name)
    assert template.text.count("{input}") == 1
    assert template.text.rstrip().endswith("Q: {input}\nA:")
    answers = re.findall(r"\nA: (.*?)(?=\n\nQ: )", template.text, flags=re.DOTALL)
    assert len(answers) >= 3, "a few-shot prompt needs a few exemplars"
    for answer in answers:
        parsed = template.parser.parse(answer, TEMPLATE_LABELS.get(name))
        assert parsed.ok, (answer, parsed.parse_error)
        assert parsed.rationale
    assert TEMPLATES[name][1] == template.parser_name
