"""CLI data verbs: exit codes (0 ok, 2 user error with one line on stderr) and JSON on the last line."""

import json

import pytest

from workbench.cli import main


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: a flag's value outside its range (one line too)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_tasks_and_teachers(tmp_path, capsys):
    code, out, _ = run(capsys, "--workspace", str(tmp_path), "tasks", "--json")
    assert code == 0
    names = {t["name"] for t in last_json(out)["tasks"]}
    assert {"wordproblems", "quantnli"} <= names
    code, out, _ = run(capsys, "teachers", "--json", "--workspace", str(tmp_path))
    kinds = {t["kind"] for t in last_json(out)["teachers"]}
    assert {"builtin", "released"} <= kinds


def test_generate_resumes_and_dry_run(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path)]
    code, out, _ = run(capsys, *ws, "generate", "--task", "wordproblems", "--teacher", "builtin", "--limit", "30",
                       "--json")
    first = last_json(out)
    assert code == 0 and first["generated"] == 30
    assert set(first) >= {"generated", "parsed", "parse_errors", "teacher_accuracy"}
    code, out, _ = run(capsys, *ws, "generate", "--task", "wordproblems", "--teacher", "builtin", "--limit", "50",
                       "--dry-run", "--json")
    assert last_json(out)["requests"] == 20
    code, out, _ = run(capsys, *ws, "generate", "--task", "wordproblems", "--teacher", "builtin", "--limit", "50",
                       "--json")
    assert last_json(out)["generated"] == 20 and last_json(out)["skipped"] == 30


def test_export(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws")]
    run(capsys, *ws, "generate", "--task", "wordproblems", "--teacher", "builtin", "--limit", "20")
    code, out, _ = run(capsys, *ws, "export", "--task", "wordproblems", "--teacher", "builtin",
                       "--out", str(tmp_path / "ts.jsonl"), "--json")
    summary = last_json(out)
    assert code == 0 and summary["rows"] == len((tmp_path / "ts.jsonl").read_text().splitlines())


@pytest.mark.parametrize("argv, message", [
    (["generate", "--task", "nope", "--teacher", "builtin"], "unknown task 'nope'"),
    (["generate", "--task", "wordproblems", "--teacher", "nope:x"], "unknown teacher 'nope'"),
    (["generate", "--task", "wordproblems", "--teacher", "builtin", "--limit", "-1"], "--limit"),
    (["generate", "--task", "wordproblems", "--teacher", "released:palm-540b"], "cannot generate"),
    (["export", "--task", "wordproblems", "--teacher", "builtin", "--out", "x.jsonl"], "generate rationales first"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    code, out, err = run(capsys, "--workspace", str(tmp_path), *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_arguments_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--workspace", str(tmp_path), "generate", "--limit", "many"])
    assert exc.value.code == 2


def test_export_without_out_names_the_file_as_the_app_does_and_the_app_suggests_columns_from_the_library(tmp_path):
    """One rule per fact (issue 26 §1): the export's default file and the CSV column roles are the library's."""
    from workbench.cli import main
    from workbench.imports.custom import suggest_columns
    from workbench.ui import imports

    ws = tmp_path / "ws"
    assert main(["--workspace", str(ws), "generate", "--task", "quantnli", "--teacher", "builtin", "--limit", "4",
                 "--json"]) == 0
    assert main(["--workspace", str(ws), "export", "--task", "quantnli", "--teacher", "builtin", "--format", "csv",
                 "--json"]) == 0
    (written,) = (ws / "exports").glob("quantnli-builtin-*.csv")
    assert written.read_text().startswith("example_id,input,label,rationale")
    upload = tmp_path / "My reviews.csv"
    upload.write_text("Review,Sentiment,why\nnice,positive,it says nice\n")
    out = imports.on_upload(str(upload))
    guess = suggest_columns(["Review", "Sentiment", "why"])
    assert out[0]["value"] == guess["inputs"] == ["Review"] and out[1]["value"] == guess["label"] == "Sentiment"
    assert out[2]["value"] == "why" and out[3]["value"] == imports.NONE and out[-2] == "My-reviews"
