"""Bad input never crashes (issue 8): property-based tests of every parser and importer, config dicts, teacher
specs and CLI argument lists. Each gives a result, a per-line report or a clear domain error — never a traceback.

The evaluator is fuzzed in ``test_metrics.py``; here: the parsers (incl. ``equation-paper``), CSV/JSONL import,
the paper importer on malformed folders, ``TrainConfig.from_dict``, teacher specs and ``workbench.cli.main``; and
(issue 16) uploads with lone surrogates or in UTF-16/32, any reply an endpoint may send, an API key anywhere in an
error, and release folders holding special files (FIFOs, devices, dangling symlinks, directories).
Run with ``--hypothesis-show-statistics`` to see how many cases each property tried.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from workbench.core.errors import ConfigError, ImportDataError, TeacherError, UnknownNameError, WorkbenchError
from workbench.core.store import Store
from workbench.data.metrics import EquationError, evaluate_equation
from workbench.data.parsers import PARSERS, get_parser
from workbench.data.prompts import TEMPLATES
from workbench.distill.config import TrainConfig
from workbench.imports.custom import MAX_REPORTED, ColumnMapping, import_custom
from workbench.imports.paper import import_paper
from workbench.rationales.teachers import get_teacher
from workbench.rationales.teachers.base import parse_spec

_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]


def fuzz(n: int) -> settings:
    """``n`` cases a property (counted in the closing note of issue 8); no deadline on a shared 2-core box.

    The same cases on every run (``derandomize``), so CI never fails by chance; ``WORKBENCH_FUZZ_RANDOM=1`` explores
    new ones (how the CSV line-ending case below was found)."""
    return settings(max_examples=n, deadline=None, suppress_health_check=_HEALTH,
                    derandomize=os.environ.get("WORKBENCH_FUZZ_RANDOM") != "1")


_names = itertools.count()

# -- teacher-output parsers ----------------------------------------------------------------------------------
LABELS = ("entailment", "neutral", "contradiction")
FRAGMENTS = ["The answer is", "So the answer is", "Answer:", "the answer is not", "(", ")", "((", "))", "\nQ:",
             "Q:", "\nQuestion:", "\nPremise:", "(a)", "(c) wooded area", "(f)", " ", "\n", ".", "12", "-3.5", "1e9",
             " + ", " - ", " * ", " / ", "×", "÷", "x", "0", "entailment", "neutral", "contradiction", "maybe",
             "__import__('os')", "1 / 0", "9" * 40, "\x00", "\u202e", "<script>alert(1)</script>"]
model_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=25).map("".join),
)


@fuzz(600)
@given(raw=model_text, name=st.sampled_from(sorted(PARSERS)),
       labels=st.one_of(st.none(), st.just(LABELS), st.lists(st.text(min_size=1, max_size=6), max_size=4).map(tuple)))
def test_every_parser_gives_a_record_never_an_exception(raw, name, labels):
    p = get_parser(name).parse(raw, labels)
    assert p.ok == (p.parse_error is None)
    if p.ok:
        assert p.label and p.label == p.label.strip()  # a parsed answer never has an empty label
        if name in ("equation", "equation-paper"):
            evaluate_equation(p.label)  # a parsed equation is arithmetic by construction
        if name == "class" and labels:
            assert p.label in labels
    else:
        assert isinstance(p.parse_error, str) and p.parse_error


@fuzz(200)
@given(body=model_text, eq=st.sampled_from(["(1 + 2)", "( 12 - 5 ) + 3", "(84 / 2)", "(x + 1)", "(1 / 0)", "()"]))
def test_paper_equation_parser_takes_the_widest_parenthesised_span(body, eq):
    tail = f" The answer is {eq}."
    p = get_parser("equation-paper").parse(body.replace("(", "").replace(")", "") + tail)
    if p.ok:
        assert p.label.startswith("(") and p.label.endswith(")")
        try:
            evaluate_equation(eq)
        except EquationError:
            pytest.fail(f"{eq!r} is not arithmetic, yet it parsed as {p.label!r}")


def test_every_template_names_a_registered_parser():
    for name, (_, parser) in TEMPLATES.items():
        assert parser in PARSERS, name


# -- CSV / JSONL import --------------------------------------------------------------------------------------
COLUMNS = ["id", "text", "label", "why", "split", "extra"]
cell = st.one_of(
    st.sampled_from(["", " ", "yes", "no", "maybe", "1", "( 1 + 2 )", "x + 1", "train", "test", "valid", "dev",
                     "a,b", 'say "hi"', "two\nlines", "\r", "\ufeff", "\x00", "a\u2028b", "c\x85d", "e\x0cf", "BAD\udcff", "<img src=x onerror=1>"]),
    st.text(max_size=12),
)


@st.composite
def tables(draw):
    """A CSV/TSV or JSONL file as bytes, with how many records it holds (blank lines are no records)."""
    fmt = draw(st.sampled_from([".csv", ".tsv", ".jsonl"]))
    header = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=5))  # duplicates allowed: an error
    rows = draw(st.lists(st.lists(cell, min_size=1, max_size=7), max_size=12))
    if fmt == ".jsonl":
        lines, records = [], 0
        for row in rows:
            kind = draw(st.sampled_from(["object", "object", "object", "broken", "list", "blank", "number"]))
            if kind == "blank":
                lines.append("")
                continue
            records += 1
            if kind == "object":
                values = draw(st.lists(st.one_of(cell, st.none(), st.integers(), st.booleans(),
                                                 st.lists(st.integers(), max_size=2)), min_size=len(row),
                                       max_size=len(row)))
                lines.append(json.dumps(dict(zip(header + COLUMNS, values)), ensure_ascii=draw(st.booleans())))
            else:
                lines.append({"broken": '{"text": "unterminated', "list": "[1, 2]", "number": "42"}[kind])
        text = "\n".join(lines)
    else:
        buf = io.StringIO()
        # CRLF, as spreadsheets write: the writer then quotes cells holding a bare "\r", which a reader (rightly)
        # takes for a line break when unquoted.
        writer = csv.writer(buf, delimiter="," if fmt == ".csv" else "\t", lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)  # rows may have more or fewer fields than the header: reported per line
        text, records = buf.getvalue(), len(rows)
    data = text.encode("utf-8", errors="surrogateescape")  # 'BAD\udcff' becomes the invalid byte 0xff
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data  # a BOM
    return fmt, data, records


mappings = st.builds(
    lambda inputs, label, rationale, id_, kind, labels: (inputs, label, rationale, id_, kind, labels),
    st.lists(st.sampled_from(COLUMNS + ["missing"]), min_size=1, max_size=2, unique=True),
    st.one_of(st.none(), st.sampled_from(["label", "missing"])),
    st.one_of(st.none(), st.just("why")),
    st.one_of(st.none(), st.just("id")),
    st.one_of(st.none(), st.sampled_from(["classes", "text", "equation"])),
    st.one_of(st.none(), st.just(("yes", "no"))),
)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("fuzz") / "ws")
    yield store
    store.close()


@fuzz(250)
@given(table=tables(), mapping=mappings)
def test_csv_and_jsonl_import_reports_every_row_or_refuses_clearly(fuzz_store, tmp_path_factory, table, mapping):
    fmt, data, records = table
    inputs, label, rationale, id_, kind, labels = mapping
    path = tmp_path_factory.mktemp("files") / f"upload{fmt}"
    path.write_bytes(data)
    name = f"t{next(_names)}"
    try:
        m = ColumnMapping(inputs=tuple(inputs), label=label, rationale=rationale, id=id_, kind=kind, labels=labels)
        result = import_custom(fuzz_store, name, path, m)
    except (ImportDataError, ConfigError) as err:
        assert str(err) and "\n" not in str(err) and "Traceback" not in str(err)
        assert not fuzz_store.has_task(name)  # a refused file leaves nothing behind
        return
    imported = sum(result["examples"].values())
    assert imported >= 1 and imported + result["rejected"] == records  # every row is imported or reported
    assert len(result["errors"]) == min(result["rejected"], MAX_REPORTED)
    for e in result["errors"]:
        assert isinstance(e["line"], int) and e["line"] >= 1 and e["reason"]
    examples = fuzz_store.examples(name)
    assert len(examples) == imported and len({e.id for e in examples}) == imported
    if labels and result["answer_kind"] == "classes":
        assert all(e.label in labels for e in examples if e.label is not None)
    assert all("\udcff" not in e.input for e in examples)  # undecodable bytes never reach the store


def test_jsonl_rows_may_hold_unicode_line_separators(tmp_path, store):
    rows = [{"text": "one\u2028row\x85still\x0cone", "label": "a"}, {"text": "two", "label": "b"}]
    path = tmp_path / "seps.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    result = import_custom(store, "seps", path, ColumnMapping(inputs=("text",), label="label"))
    assert result["rejected"] == 0 and sum(result["examples"].values()) == 2
    assert store.example("seps", "line-1").input == rows[0]["text"]
    assert store.example("seps", "line-2").label == "b"  # line numbers count real lines only


def test_a_huge_field_with_a_bom_and_a_stray_byte_in_one_file(tmp_path, store):
    big = "x" * 3_000_000  # beyond any default field limit
    path = tmp_path / "big.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\n" + big.encode() + b",yes\nbad\xfe,no\nfine,yes\n")
    result = import_custom(store, "big", path, ColumnMapping(inputs=("text",), label="label"))
    assert result["rejected"] == 1 and result["errors"][0]["line"] == 3
    assert len(store.example("big", "line-2").input) == len(big)


# -- the paper importer on malformed folders -----------------------------------------------------------------
ROW_LINES = {
    "svamp": ['{"input": "Tom has 3 apples. How many?", "label": "( 3 + 0 )"}', '{"Body": "b", "Question": "q"}'],
    "cqa": ['{"question": "Q?", "choices": ["a", "b", "c", "d", "e"], "answer": "a"}',
            '{"question": "Q?", "choices": ["a"], "answer": "a"}', '{"question": "Q?", "choices": 5}'],
    "anli1": ['{"premise": "p", "hypothesis": "h", "label": 1}', '{"premise": "p", "hypothesis": "h", "label": 7}',
              '{"premise": "p", "label": "neutral"}'],
}
BAD_LINES = ["", "{not json", "[1, 2]", '"a string"', "null", '{"label": {"nested": 1}}', "\udcff\udcfe"]
LLM_FILES = ['["The answer is (3 + 0).", null]', '["x"]', "[]", "{}", "[1, 2]", "not json", '"text"', "\udcff"]


@st.composite
def release_folders(draw):
    dataset = draw(st.sampled_from(sorted(ROW_LINES)))
    files = {}
    for split in draw(st.lists(st.sampled_from(["train", "valid", "test"]), unique=True, max_size=3)):
        lines = draw(st.lists(st.sampled_from(ROW_LINES[dataset] + BAD_LINES), max_size=4))
        files[f"{dataset}_{split}.json"] = "\n".join(lines)
    for split, i in draw(st.lists(st.tuples(st.sampled_from(["train", "test", "valid"]), st.integers(0, 2)),
                                  unique=True, max_size=3)):
        files[f"llm/{split}_CoT_{i}.json"] = draw(st.sampled_from(LLM_FILES))
    return dataset, files, draw(st.booleans())


@fuzz(200)
@given(folder=release_folders())
def test_paper_import_of_a_malformed_folder_is_a_clear_error(fuzz_store, tmp_path_factory, folder):
    dataset, files, bom = folder
    root = tmp_path_factory.mktemp("release")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogateescape"))
    name = f"p{next(_names)}"
    try:
        result = import_paper(fuzz_store, root, dataset, name=name)
    except ImportDataError as err:
        assert str(err) and "Traceback" not in str(err)
        assert not fuzz_store.has_task(name)
        return
    assert sum(result["examples"].values()) == len(fuzz_store.examples(name)) > 0


# -- training configs ----------------------------------------------------------------------------------------
FIELDS = sorted(TrainConfig.__dataclass_fields__)
values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=10), st.sampled_from(["dss", "kd", "tiny", "builtin", "gold", "auto", "../x"]),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@fuzz(500)
@given(data=st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)), values, max_size=8),
       with_task=st.booleans())
def test_train_config_from_any_dict_is_a_config_or_a_config_error(data, with_task):
    if with_task:
        data = {"task": "wordproblems", **data}
    try:
        cfg = TrainConfig.from_dict(data)
    except ConfigError as err:
        assert str(err)
        return
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # what validates round-trips through the run folder
    for name in ("fraction", "alpha", "learning_rate", "warmup", "weight_decay", "kd_temperature", "kd_mix"):
        assert isinstance(getattr(cfg, name), (int, float)) and math.isfinite(getattr(cfg, name)), name
    for name in ("steps", "batch_size", "seed", "save_every", "eval_limit", "max_input_len", "max_target_len"):
        assert type(getattr(cfg, name)) is int, name
    assert isinstance(cfg.task, str) and isinstance(cfg.student, str)


@pytest.mark.parametrize("data", [[], "task", None, 3, ["task"]])
def test_train_config_from_a_non_mapping_is_a_config_error(data):
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(data)


# -- teacher specs -------------------------------------------------------------------------------------------
spec_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, sep, t, q: f"{k}{sep}{t}{q}",
              st.sampled_from(["builtin", "released", "hf", "openai", "run", "fake", "nope", "", " hf "]),
              st.sampled_from([":", "", "::"]),
              st.one_of(st.text(max_size=15), st.sampled_from(["palm-540b", "m@http://127.0.0.1:1/v1", "m@ftp://h",
                                                               "/no/such/model", "../../etc", "m@"])),
              st.one_of(st.just(""), st.text(max_size=15).map(lambda q: "?" + q),
                        st.sampled_from(["?error_rate=2", "?error_rate=nan", "?seed=x", "?a=1&a=2", "?=", "?&&",
                                         "?temperature=-1", "?n=3", "?concurrency=0", "?api_key=sk-1", "?timeout=inf",
                                         "?mode=edit", "?top_p=nan", "?max_tokens=1e3"]))),
)


@fuzz(500)
@given(spec=spec_text)
def test_teacher_specs_give_a_teacher_or_a_teacher_error(spec):
    try:
        kind, target, options = parse_spec(spec)
    except TeacherError as err:
        assert str(err)
        return
    assert isinstance(kind, str) and isinstance(target, str) and isinstance(options, dict)
    try:
        teacher = get_teacher(spec)
    except (TeacherError, UnknownNameError, ConfigError) as err:
        assert str(err)
        return
    assert teacher.kind == kind and isinstance(teacher.id, str)
    assert "sk-" not in teacher.id  # no secret in the stored identity
    teacher.close()


# -- CLI argument lists --------------------------------------------------------------------------------------
def _verb_actions() -> dict[str, list]:
    """Each verb's argparse actions (but --workspace, which the test pins to its own folder)."""
    from workbench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {verb: [a for a in p._actions if "--workspace" not in a.option_strings and a.dest != "help"]
            for verb, p in sub.choices.items()}


VERB_ACTIONS = _verb_actions()
SERVERS = {"serve"}  # runs until stopped by design (the app); tested below with a port that is taken


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli")
    (home / "ok.csv").write_text("text,label\nis 2 > 1?,yes\nis 1 > 2?,no\nis 3 > 1?,yes\n", encoding="utf-8")
    (home / "bad.jsonl").write_bytes(b'{"text": "a"}\n\xff\xfe\n[1]\n')
    return home


def _argv(draw, home: Path) -> list[str]:
    """A well-formed-looking command line (positionals, required flags, some optional ones) with values from a
    pool of good and bad ones, sometimes with a stray token: most cases reach the verb's handler."""
    verb = draw(st.sampled_from(sorted(set(VERB_ACTIONS) - SERVERS)))
    pool = st.one_of(
        st.sampled_from(["wordproblems", "quantnli", "builtin", "nope:x", "released:palm-540b", "hf:/no/such",
                         "standard", "dss", "kd", "tiny", "0", "-1", "3", "1e30", "nan", "true", "maybe", "../x",
                         "a/b", "", "text", "label", "classes", "yes,no", str(home / "ok.csv"),
                         str(home / "bad.jsonl"), str(home / "none.csv"), str(home / "out.jsonl"),
                         str(home / "out.txt"), str(home), "run:nope", "svamp", "99999"]),
        st.text(max_size=8).filter(lambda t: not t.startswith("-")),  # no abbreviation can reach --workspace
    )
    good = {"task": ["wordproblems", "quantnli"], "teacher": ["builtin"], "name": ["t1", "t2"],
            "file": [str(home / "ok.csv")], "input": ["text"], "label": ["label"], "out": [str(home / "o.jsonl")],
            "dir": [str(home)], "split": ["train", "test"], "limit": ["2"], "labels": ["yes,no"],
            "model": ["/no/such/model", "run:nope"]}  # no pool value is a loadable model: serve-model never listens

    def value(action) -> str:
        if action.choices and draw(st.booleans()):
            return draw(st.sampled_from(action.choices))
        if action.dest in good and draw(st.booleans()):
            return draw(st.sampled_from(good[action.dest]))
        if action.type in (int, float) and draw(st.booleans()):
            return draw(st.sampled_from(["0", "1", "2", "-1", "0.5", "1e30", "nan", "inf"]))
        return draw(pool)

    argv = [verb]
    optional = sum(bool(a.option_strings) and not a.required for a in VERB_ACTIONS[verb])
    for action in VERB_ACTIONS[verb]:
        if not action.option_strings:  # a positional
            argv.append(value(action))
            continue
        if not action.required and draw(st.integers(0, max(2, optional // 2))) != 0:  # ~2 optional flags
            continue
        argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs != 0:
            argv.append(value(action))
    if draw(st.integers(0, 9)) == 0:  # now and then a stray token, a bad flag or a cry for help
        argv.insert(draw(st.integers(1, len(argv))), draw(st.one_of(pool, st.sampled_from(["--nope", "--help"]))))
    return argv


@fuzz(300)
@given(data=st.data())
def test_cli_arguments_exit_0_or_2_never_a_traceback(cli_home, monkeypatch, data):
    from workbench.cli import main

    monkeypatch.chdir(cli_home)  # any relative path a fuzzed argument names stays in the test's folder
    argv = _argv(data.draw, cli_home)
    verb = argv[0]
    # Keep real work tiny: `generate` never asks for more than 3 answers; `train` never finds its task (so it never
    # trains) and `serve-model` never finds a model (so it never listens); the last occurrence of a flag wins.
    extra = {"generate": ["--limit", "3"], "train": ["--task", "no-such-task"],
             "serve-model": ["--port", "1"]}.get(verb, [])
    full = ["--workspace", str(cli_home / "ws"), *argv, *extra]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(full)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        event(f"{verb}: argparse exit {exc.code}")
        assert exc.code in (0, 2), (full, err.getvalue())
        return
    event(f"{verb}: exit {code}")
    assert code in (0, 2), (full, err.getvalue())
    if code == 2:
        lines = err.getvalue().strip().split("\n")  # not splitlines(): a fuzzed name may hold U+0085
        assert lines and lines[-1].startswith(f"workbench {verb}: error: "), (full, err.getvalue())
    assert "Traceback" not in err.getvalue()


def test_domain_errors_are_workbench_errors():
    # The properties above accept only these; keep them in the one errors module (STYLE.md 8).
    for cls in (ConfigError, ImportDataError, TeacherError, UnknownNameError):
        assert issubclass(cls, WorkbenchError)


def test_serve_on_a_taken_port_is_a_clear_error(tmp_path, capsys):
    import socket

    from workbench.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--workspace", str(tmp_path / "ws"), "serve", "--port", str(port)])
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


# -- issue 16: lone surrogates and other encodings in uploads -------------------------------------------------------
NASTY = ["\ud800", "\udfff", "caf\udce9", "\udcff\udcfe", "\ud83d\ude00", "ok", "", "é", "\x00"]
nasty_text = st.one_of(st.sampled_from(NASTY), st.lists(st.sampled_from(NASTY + ["a", " ", ","]), max_size=4).map("".join))


@st.composite
def nasty_files(draw):
    """A JSONL file whose keys and values may hold lone surrogates (as JSON escapes, the way a file would), or a
    CSV whose header and cells may hold bytes that are not UTF-8, in UTF-8, UTF-16 or UTF-32."""
    if draw(st.booleans()):
        lines = []
        for _ in range(draw(st.integers(1, 6))):
            keys = draw(st.lists(st.one_of(st.sampled_from(["text", "label"]), nasty_text), min_size=1, max_size=3))
            lines.append(json.dumps({k: draw(nasty_text) for k in keys}))  # ensure_ascii: "\ud800" stays an escape
        return ".jsonl", "\n".join(lines).encode("ascii"), len(lines)
    header = draw(st.lists(st.one_of(st.sampled_from(["text", "label"]), nasty_text.filter(lambda t: "," not in t)),
                           min_size=1, max_size=3))
    rows = draw(st.lists(st.lists(nasty_text, min_size=len(header), max_size=len(header)), max_size=5))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([header, *rows])
    text = buf.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "utf-16-le", "utf-32"]))
    if encoding == "utf-8":  # \udce9 is the stray byte 0xe9; \ud800 the invalid three bytes ED A0 80
        data = b"".join(ch.encode("utf-8", "surrogateescape" if "\udc80" <= ch <= "\udcff" else "surrogatepass")
                        for ch in text)
    else:
        data = text.encode(encoding, "surrogatepass")
    return ".csv", data, len(rows)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@fuzz(150)
@given(file=nasty_files())
def test_uploads_with_surrogates_or_other_encodings_are_rejected_clearly(fuzz_store, tmp_path_factory, file):
    fmt, data, records = file
    path = tmp_path_factory.mktemp("nasty") / f"upload{fmt}"
    path.write_bytes(data)
    name = f"n{next(_names)}"
    uploads = fuzz_store.workspace / "uploads"
    before = set(uploads.iterdir()) if uploads.is_dir() else set()
    try:
        result = import_custom(fuzz_store, name, path, ColumnMapping(inputs=("text",)))
    except (ImportDataError, ConfigError) as err:
        assert _encodable(str(err)) and "\n" not in str(err), repr(str(err))
        assert not fuzz_store.has_task(name)
        assert (set(uploads.iterdir()) if uploads.is_dir() else set()) == before  # no copy left behind
        return
    assert sum(result["examples"].values()) + result["rejected"] == records
    assert all(_encodable(e["reason"]) for e in result["errors"])
    for ex in fuzz_store.examples(name):
        assert _encodable(ex.input) and _encodable(json.dumps(ex.fields, ensure_ascii=False))


# -- issue 16: odd replies from an OpenAI-compatible endpoint --------------------------------------------------------
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False), st.text(max_size=8),
              st.sampled_from(["", "The answer is (1 + 2).", "\ud800"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["choices", "message", "content", "text", "role", "index", "foo"]), inner,
                        max_size=4)),
    max_leaves=12)
replies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda c: json.dumps({"choices": c}).encode(), json_values),
    st.builds(lambda m: json.dumps({"choices": [{"message": m, "text": m}]}).encode(), json_values),
    st.sampled_from([b"", b"not json", b'{"choices": [{"text": "', b"\xff\xfe", b"[]", b"null"]),
)


@pytest.fixture(scope="module")
def odd_endpoint():
    from test_hostile import RawEndpoint

    with RawEndpoint(lambda i, body, headers: (200, b"{}")) as ep:
        yield ep


@fuzz(80)
@given(reply=replies, mode=st.sampled_from(["chat", "completions"]))
def test_any_reply_from_an_endpoint_is_an_answer_or_a_per_row_error(odd_endpoint, reply, mode):
    from workbench.core.store_records import Example
    from workbench.rationales.teachers.base import TeacherRequest
    from workbench.rationales.teachers.openai_compat import MAX_ANSWER_CHARS

    odd_endpoint.reply = lambda i, body, headers: (200, reply)
    teacher = get_teacher(f"openai:m@{odd_endpoint.url}?mode={mode}&max_retries=0&timeout=5")
    out = teacher.answer([TeacherRequest(Example("e", "train", "x", None), "Q: x\nA:")])
    assert len(out) == 1
    if out[0].error is None:
        assert isinstance(out[0].raw, str) and len(out[0].raw) <= MAX_ANSWER_CHARS
    else:
        assert out[0].raw is None and _encodable(out[0].error) and len(out[0].error) < 400
    teacher.close()


@fuzz(300)
@given(before=st.text(max_size=400), after=st.text(max_size=100), cut=st.integers(0, 420))
def test_the_key_never_survives_in_part_wherever_it_sits(before, after, cut):
    from workbench.rationales.teachers.openai_compat import MAX_DETAIL_CHARS, _detail

    key = "sk-Zq9XvT3mPw8KyR2nB7"
    text = before[:cut] + f"Bearer {key}" + after
    detail = _detail(RuntimeError(text), (key,))
    assert len(detail) <= MAX_DETAIL_CHARS and _encodable(detail)
    assert not any(key[i:i + 5] in detail for i in range(3, len(key) - 4))


# -- issue 16: special files in a paper release folder ---------------------------------------------------------------
SPECIAL_KINDS = ["regular", "regular", "dangling", "directory", "fifo", "devzero", "link-to-regular"]


@st.composite
def special_folders(draw):
    entries = {}
    for rel in draw(st.lists(st.sampled_from(["svamp_train.json", "svamp_test.json", "llm/train_CoT_0.json",
                                              "llm/train_CoT_1.json", "llm/test_CoT_0.json"]), unique=True,
                             min_size=1, max_size=4)):
        entries[rel] = draw(st.sampled_from(SPECIAL_KINDS))
    return entries


def _make_special(root: Path, path: Path, kind: str, text: str) -> None:
    if kind == "regular":
        path.write_text(text)
    elif kind == "dangling":
        path.symlink_to(root / "gone")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # nobody writes to it: reading would wait for ever
    elif kind == "devzero":
        path.symlink_to("/dev/zero")  # reading would fill the memory
    else:
        (root / f"{path.name}.real").write_text(text)
        path.symlink_to(root / f"{path.name}.real")


@fuzz(60)
@given(entries=special_folders())
@pytest.mark.timeout(120)
def test_paper_import_never_reads_what_is_not_a_regular_file(fuzz_store, tmp_path_factory, entries):
    root = tmp_path_factory.mktemp("special")
    (root / "llm").mkdir()
    (root / "plain.json").write_text('["The answer is (3 + 0)."]')
    for rel, kind in entries.items():
        _make_special(root, root / rel, kind, '["The answer is (3 + 0)."]' if "llm" in rel else
                      '{"input": "Tom has 3. How many?", "label": "( 3 + 0 )"}')
    name = f"s{next(_names)}"
    try:
        result = import_paper(fuzz_store, root, "svamp", name=name)
    except ImportDataError as err:
        assert _encodable(str(err)) and "Traceback" not in str(err)
        assert not fuzz_store.has_task(name)
        return
    assert sum(result["examples"].values()) > 0
    assert all(kind in ("regular", "link-to-regular") for kind in entries.values())
