"""Store, generation (resumable), training sets and review, with the fake teacher."""

import sqlite3

import pytest

from tests.fakes import TOY_TEMPLATE, FakeTeacher, toy_task
from workbench.core.errors import NothingToDoError, StoreError
from workbench.core.store import Store
from workbench.rationales.generation import generate_rationales, plan_generation
from workbench.rationales.review import browse_generations, edit_generation, set_status
from workbench.rationales.teachers.base import get_teacher
from workbench.rationales.trainingset import build_training_set


def _generate(store, task, **kw):
    return generate_rationales(store, task, get_teacher("fake"), template=TOY_TEMPLATE, **kw)


def test_generate_counts_parses_and_scores(store):
    task = toy_task(store)
    s = _generate(store, task)
    # train ids 0..7: i%4==3 → no marker (2), i%4==2 → wrong equation (2), else right (4)
    assert (s["generated"], s["parsed"], s["parse_errors"], s["errors"]) == (8, 6, 2, 0)
    assert s["teacher_accuracy"] == pytest.approx(4 / 8)
    rows = store.latest_generations("toy", "fake", split="train")
    bad = [r for r in rows if r["parse_error"]]
    assert len(bad) == 2 and all(r["raw"] and r["teacher_label"] is None for r in bad)
    assert all("invented" not in (r["teacher_rationale"] or "") for r in rows)


def test_generate_is_resumable_and_never_pays_twice(store):
    task = toy_task(store)
    _generate(store, task, limit=3)
    assert FakeTeacher.calls == ["train-0", "train-1", "train-2"]
    s = _generate(store, task)
    assert s["generated"] == 5 and s["skipped"] == 3
    assert FakeTeacher.calls[3:] == [f"train-{i}" for i in range(3, 8)]
    assert _generate(store, task)["generated"] == 0
    assert plan_generation(store, task, get_teacher("fake"), template=TOY_TEMPLATE).summary()["requests"] == 0


def test_failed_requests_are_recorded_and_retried_on_rerun(store):
    task = toy_task(store)
    del FakeTeacher.answers["train-1"]
    s = _generate(store, task)
    assert s["errors"] == 1
    FakeTeacher.answers["train-1"] = "1 + 5. The answer is (2 + 5)."
    s = _generate(store, task)
    assert s["generated"] == 1 and s["errors"] == 0


def test_a_changed_template_is_a_new_generation(store):
    task = toy_task(store)
    _generate(store, task)
    other = TOY_TEMPLATE.with_text("Solve.\nQ: {input}\nA:")
    s = generate_rationales(store, task, get_teacher("fake"), template=other)
    assert s["generated"] == 8 and s["template_hash"] == other.hash
    assert store.template(other.hash)["text"] == other.text


def test_a_crash_mid_generation_keeps_committed_batches(store):
    task = toy_task(store)

    class Boom(RuntimeError):
        pass

    calls = {"n": 0}

    def progress(p):
        calls["n"] += 1
        if p.done >= 4:
            raise Boom()

    with pytest.raises(Boom):
        _generate(store, task, progress=progress)  # batch size 4: the first batch is committed
    assert len(store.done_example_ids("toy", "fake", TOY_TEMPLATE.hash)) == 4
    assert store.integrity_check() == []
    assert _generate(store, task)["generated"] == 4


def test_training_set_applies_edits_and_filters(store):
    task = toy_task(store)
    _generate(store, task)
    ts = build_training_set(store, task, "fake")
    assert len(ts.rows) == 6 and ts.dropped == {"parse error": 2}
    assert build_training_set(store, task, "fake", drop_teacher_wrong=True).dropped == {
        "parse error": 2, "teacher wrong": 2}
    fingerprint = ts.fingerprint
    broken = next(r for r in store.latest_generations("toy", "fake") if r["parse_error"])
    edit_generation(store, broken["generation_id"], rationale="4 + 9 = 13.", label="( 4 + 9 )")
    ts2 = build_training_set(store, task, "fake", label_source="teacher")
    assert len(ts2.rows) == 7  # the edit repaired one of the two parse errors
    fixed = next(r for r in ts2.rows if r["generation_id"] == broken["generation_id"])
    assert fixed["rationale"] == "4 + 9 = 13." and fixed["label"] == "( 4 + 9 )" and fixed["edited"]
    assert build_training_set(store, task, "fake").fingerprint != fingerprint
    set_status(store, [fixed["generation_id"]], "rejected")
    assert build_training_set(store, task, "fake").dropped["rejected"] == 1
    with pytest.raises(NothingToDoError, match="1 rejected"):  # nothing accepted is left
        build_training_set(store, task, "fake", only_accepted=True)
    with pytest.raises(NothingToDoError):
        build_training_set(store, task, "nobody")


def test_only_accepted_keeps_reviewed_rows(store):
    task = toy_task(store)
    _generate(store, task)
    gid = store.latest_generations("toy", "fake")[0]["generation_id"]
    set_status(store, [gid], "accepted")
    ts = build_training_set(store, task, "fake", only_accepted=True)
    assert [r["generation_id"] for r in ts.rows] == [gid]


def test_gold_only_training_set_without_teacher(store):
    task = toy_task(store)
    ts = build_training_set(store, task, None)
    assert len(ts.rows) == 8 and all(r["rationale"] is None for r in ts.rows)


def test_export_jsonl_and_csv(store, tmp_path):
    task = toy_task(store)
    _generate(store, task)
    ts = build_training_set(store, task, "fake")
    assert len(ts.export(tmp_path / "a.jsonl").read_text().splitlines()) == 6
    assert len(ts.export(tmp_path / "a.csv").read_text().splitlines()) == 7
    with pytest.raises(Exception, match="jsonl or .csv"):
        ts.export(tmp_path / "a.txt")


def test_edits_keep_history_and_later_edit_wins(store):
    task = toy_task(store)
    _generate(store, task)
    gid = store.latest_generations("toy", "fake")[0]["generation_id"]
    # two "tabs" edit the same row: both edits are kept, the later one wins
    edit_generation(store, gid, rationale="tab one", author="a")
    edit_generation(store, gid, rationale="tab two", author="b")
    history = store.edit_history(gid)
    assert [h["rationale"] for h in history] == ["tab one", "tab two"]
    row = browse_generations(store, task, "fake", view="edited").rows
    assert [r["rationale"] for r in row] == ["tab two"]
    # a status change keeps the edited text
    edit_generation(store, gid, status="rejected")
    assert store.latest_edit(gid)["rationale"] == "tab two"


def test_browse_filters_pages_and_searches(store):
    task = toy_task(store, n_train=120)
    _generate(store, task)
    page = browse_generations(store, task, "fake", page=1)
    assert page.total == 120 and page.pages == 3 and len(page.rows) == 50
    assert page.counts["parse errors"] == 30 and page.counts["teacher wrong"] == 60
    assert browse_generations(store, task, "fake", view="parse errors").total == 30
    assert browse_generations(store, task, "fake", search="has 7 apples").total == 1


def test_store_survives_reopen_and_checks_schema(tmp_path):
    s = Store.open(tmp_path)
    toy_task(s)
    s.close()
    s2 = Store.open(tmp_path)
    assert s2.list_tasks()[0]["splits"] == {"test": 4, "train": 8}
    s2.conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    s2.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(tmp_path)


def test_read_only_workspace_gives_a_clear_error(tmp_path):
    s = Store.open(tmp_path)
    task = toy_task(s)
    s.close()
    (tmp_path / "workbench.sqlite").chmod(0o444)
    try:
        ro = Store(tmp_path)
        ro._local.conn = sqlite3.connect(f"file:{tmp_path / 'workbench.sqlite'}?mode=ro", uri=True,
                                         isolation_level=None)
        ro._local.conn.row_factory = sqlite3.Row
        with pytest.raises(StoreError, match="read-only"):
            _generate(ro, task)
    finally:
        (tmp_path / "workbench.sqlite").chmod(0o644)


def test_duplicate_task_is_refused(store):
    toy_task(store)
    with pytest.raises(StoreError, match="already exists"):
        toy_task(store)
