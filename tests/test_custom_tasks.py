"""Custom tasks from CSV/JSONL: bad rows reported by line and reason, kinds inferred, splits, uploads, rationales."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from workbench.core.errors import ConfigError, ImportDataError
from workbench.data.tasks import load_task
from workbench.imports.custom import FILE_TEACHER, ColumnMapping, assign_splits, import_custom, infer_kind

BAD_CSV = (
    b"\xef\xbb\xbfid,question,answer,why\n"       # line 1: header behind a BOM
    b"1,What is 2+2?,yes,because four\n"           # 2
    b'2,"a question\nover two lines",no,\n'        # 3-4: one record, no rationale
    b"3,bad \xff byte,yes,x\n"                     # 5: not UTF-8
    b"4,too,many,fields,here\n"                    # 6
    b"1,duplicate id,yes,z\n"                      # 7
    b"5,,no,\n"                                    # 8: empty input
    b"6,q6,maybe,\n"                               # 9: outside the label space
    b"\n"                                          # 10: blank, not a row
    b"7,q7,,\n"                                    # 11: unlabeled
    b"8,q8,no,r8\n"                                # 12
)


def test_csv_bad_rows_are_reported_by_line_and_reason(tmp_path, store):
    path = tmp_path / "bad.csv"
    path.write_bytes(BAD_CSV)
    m = ColumnMapping(inputs=("question",), label="answer", rationale="why", id="id", labels=("yes", "no"))
    r = import_custom(store, "bad", path, m)
    assert [(e["line"], e["reason"].split(" (")[0]) for e in r["errors"]] == [
        (5, "bytes that are not UTF-8"),
        (6, "expected 4 fields, found 5"),
        (7, "duplicate id '1'"),
        (8, "empty input column 'question'"),
        (9, "label 'maybe' is not one of yes, no"),
    ]
    assert r["rejected"] == 5 and sum(r["examples"].values()) == 4 and r["unlabeled"] == 1
    assert r["answer_kind"] == "classes" and r["labels"] == ["yes", "no"]
    assert {e.id for e in store.examples("bad")} == {"1", "2", "7", "8"}
    assert store.example("bad", "2").input == "a question\nover two lines"
    assert store.example("bad", "7").label is None
    assert store.task_row("bad")["spec"]["rejected"] == 5  # the UI can show what was left out


def test_jsonl_problems_and_values(tmp_path, store):
    lines = [
        json.dumps({"q": "first", "ctx": "c1", "label": 1}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"ctx": "c4", "label": 0}),            # no 'q'
        "",
        json.dumps({"q": "fifth", "ctx": "c5", "label": None}),
        json.dumps({"q": "sixth", "ctx": "c6", "label": 0}),
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = import_custom(store, "rows", path, ColumnMapping(inputs=("ctx", "q"), label="label", split=None))
    assert [(e["line"], e["reason"].split(" (")[0]) for e in r["errors"]] == [
        (2, "malformed JSON"), (3, "expected a JSON object, found list"), (4, "missing value for input column 'q'")]
    first = store.example("rows", "line-1")
    assert first.input == "ctx: c1\nq: first" and first.label == "1"
    assert store.example("rows", "line-6").label is None


def test_unreadable_files_are_clear_errors(tmp_path, store):
    m = ColumnMapping(inputs=("text",), label="label")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"\xef\xbb\xbf\n")
    with pytest.raises(ImportDataError, match="empty.csv is empty"):
        import_custom(store, "t", empty, m)
    wrong = tmp_path / "cols.csv"
    wrong.write_text("sentence,gold\nhello,pos\n")
    with pytest.raises(ImportDataError, match=r"no column\(s\) 'text', 'label'; available: sentence, gold"):
        import_custom(store, "t", wrong, m)
    (tmp_path / "cols.xlsx").write_text("x")
    with pytest.raises(ImportDataError, match="use a .csv, .tsv or .jsonl"):
        import_custom(store, "t", tmp_path / "cols.xlsx", m)
    with pytest.raises(ImportDataError, match="is not a file"):
        import_custom(store, "t", tmp_path / "missing.csv", m)
    allbad = tmp_path / "allbad.csv"
    allbad.write_text("text,label\n,pos\n")
    with pytest.raises(ImportDataError, match="no row could be imported.*line 2: empty input"):
        import_custom(store, "t", allbad, m)
    assert not store.has_task("t")


def test_mapping_is_validated():
    with pytest.raises(ConfigError, match="at least one input"):
        ColumnMapping(inputs=())
    with pytest.raises(ConfigError, match="needs a label column"):
        ColumnMapping(inputs=("x",), labels=("a", "b"))
    with pytest.raises(ConfigError, match="only a classes task"):
        ColumnMapping(inputs=("x",), label="y", labels=("a", "b"), kind="text")
    with pytest.raises(ConfigError, match="answer kind"):
        ColumnMapping(inputs=("x",), kind="regression")


def test_huge_field_and_tsv(tmp_path, store):
    path = tmp_path / "big.tsv"
    path.write_text("doc\tlabel\n" + "word " * 100_000 + "\tlong\n" + "short\tshort\n")
    r = import_custom(store, "big", path, ColumnMapping(inputs=("doc",), label="label", kind="text"))
    assert r["rejected"] == 0
    assert len(store.example("big", "line-2").input) == len("word " * 100_000) - 1


def test_kind_inference():
    assert infer_kind(["pos", "neg"] * 10) == "classes"
    assert infer_kind(["0", "1", "2"] * 5) == "classes"  # few distinct numbers are classes, not equations
    assert infer_kind([f"( {i} + 1 )" for i in range(30)]) == "equation"
    assert infer_kind([f"answer number {i}" for i in range(30)]) == "text"
    assert infer_kind([]) == "text"


def test_default_split_is_seeded_80_10_10(tmp_path, store):
    assert Counter(assign_splits(100, seed=0)) == {"train": 80, "valid": 10, "test": 10}
    assert assign_splits(100, seed=0) == assign_splits(100, seed=0) != assign_splits(100, seed=1)
    path = tmp_path / "many.csv"
    path.write_text("text\n" + "".join(f"row {i}\n" for i in range(50)))
    r = import_custom(store, "many", path, ColumnMapping(inputs=("text",)))
    assert r["examples"] == {"train": 40, "valid": 5, "test": 5}
    assert r["answer_kind"] == "text" and r["unlabeled"] == 50
    import_custom(store, "many2", path, ColumnMapping(inputs=("text",)))
    assert [e.id for e in store.examples("many", "test")] == [e.id for e in store.examples("many2", "test")]


def test_split_column_and_equation_kind(tmp_path, store):
    path = tmp_path / "math.csv"
    path.write_text("problem,eq,split\np1,( 1 + 2 ),train\np2,3 * 4,Validation\np3,x + 1,test\np4,2 / 1,\n")
    r = import_custom(store, "math", path, ColumnMapping(inputs=("problem",), label="eq", split="split",
                                                         kind="equation"))
    assert r["examples"] == {"train": 1, "valid": 1}
    assert [(e["line"], e["reason"].split(" (")[0]) for e in r["errors"]] == [
        (4, "label 'x + 1' is not an arithmetic expression"), (5, "empty split column 'split'")]
    task = load_task("math", store)
    assert task.answer_kind == "equation" and task.template_name == "generic-equation"
    assert task.is_correct("(4 * 3)", store.example("math", "line-3").label)


def test_rationales_train_like_a_teacher(tmp_path, store):
    from workbench.rationales.trainingset import build_training_set

    path = tmp_path / "expl.csv"
    path.write_text("text,label,why\ngreat film,pos,It praises the film.\ndull,neg,\nawful,neg,It is harsh.\n"
                    "fine,,Unlabeled but explained.\n")
    r = import_custom(store, "expl", path, ColumnMapping(inputs=("text",), label="label", rationale="why",
                                                         split=None, labels=("pos", "neg")))
    assert r["generations"] == 3 and r["teacher"] == FILE_TEACHER
    gens = {g["example_id"]: g for g in store.latest_generations("expl", FILE_TEACHER)}
    assert gens["line-2"]["teacher_rationale"] == "It praises the film." and gens["line-2"]["teacher_label"] == "pos"
    assert gens["line-5"]["parse_error"]  # a rationale without a label is shown, not passed off as labeled
    template = store.template(gens["line-2"]["template_hash"])
    assert template["name"] == "released-file" and template["parser"] == "class"
    task = load_task("expl", store)
    for split in task.split_names():
        if any(g["split"] == split for g in gens.values()):
            ts = build_training_set(store, task, FILE_TEACHER, split=split)
            assert all(row["rationale"] for row in ts.rows)


def test_upload_is_copied_under_a_safe_name(tmp_path, store):
    path = tmp_path / "my data (v2).csv"
    path.write_text("text\nhello\n")
    r = import_custom(store, "up", path, ColumnMapping(inputs=("text",)))
    assert r["upload"] == str(store.workspace / "uploads" / "my_data_v2_.csv")
    path.write_text("text\nchanged\n")
    r2 = import_custom(store, "up2", path, ColumnMapping(inputs=("text",)))
    assert r2["upload"] != r["upload"] and (store.workspace / "uploads").is_dir()
    assert open(r["upload"]).read() == "text\nhello\n"  # the first upload is never overwritten
    assert store.task_row("up")["spec"]["file"] == "uploads/my_data_v2_.csv"


def test_names_cannot_escape_or_collide(tmp_path, store):
    from workbench.imports.custom import safe_upload_name

    assert safe_upload_name("../../etc/passwd") == "passwd"
    assert safe_upload_name("..\\..\\x.csv") == "x.csv"
    assert safe_upload_name("...") == "upload"
    path = tmp_path / "a.csv"
    path.write_text("text\nhello\n")
    with pytest.raises(ConfigError, match="task name"):
        import_custom(store, "../x", path, ColumnMapping(inputs=("text",)))
    import_custom(store, "a", path, ColumnMapping(inputs=("text",)))
    with pytest.raises(ImportDataError, match="already exists"):
        import_custom(store, "a", path, ColumnMapping(inputs=("text",)))
