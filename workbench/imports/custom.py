"""Custom tasks from a user's CSV or JSON Lines file and a column mapping.

Every row with a problem (missing value, malformed JSON line, wrong number of CSV fields, duplicate id, label
outside the given label space, bytes that are not UTF-8, empty input) is reported by line number and reason and
left out; the other rows are imported. A file that cannot be read at all (empty, unknown format, a mapped column
that no row has) is an :class:`ImportDataError` naming what to fix.

* Several input columns are joined as ``col: value`` lines; one input column is used as is.
* A blank label means an unlabeled row (allowed: teachers can still answer it).
* Without a split column, rows get a seeded, deterministic 80/10/10 train/valid/test split.
* A rationale column becomes generations of the teacher ``released:file``, so a file's rationales train exactly
  like a teacher's (``--teacher released:file``).
* The file is copied into ``<workspace>/uploads/`` under a safe name and the task remembers it.

>>> with open("data.csv", "w") as f:
...     print("question,answer,why", file=f)
...     for n in range(40):
...         print(f"Is {n} even?,{'yes' if n % 2 == 0 else 'no'},{n} ends in {n % 10}.", file=f)
>>> mapping = ColumnMapping(inputs=("question",), label="answer", rationale="why")
>>> report = import_custom(store, "mytask", "data.csv", mapping)
>>> report["rejected"], report["answer_kind"], report["labels"], report["examples"], report["teacher"]
(0, 'classes', ['no', 'yes'], {'test': 4, 'train': 32, 'valid': 4}, 'released:file')
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.core.errors import ConfigError, ImportDataError
from workbench.core.paths import inside
from workbench.core.store import Example, Generation, Store, write_error
from workbench.core.surrogates import has_surrogates, printable
from workbench.data.metrics import EquationError, evaluate_equation
from workbench.data.prompts import PromptTemplate
from workbench.data.tasks import ANSWER_KINDS, Task, check_task_name, save_task
from workbench.imports.files import MAX_FILE_BYTES, check_upload_size, read_regular, upload_limit

FILE_TEACHER = "released:file"
SPLIT_ALIASES = {"validation": "valid", "val": "valid", "dev": "valid", "eval": "valid"}
TEMPLATE_FOR_KIND = {"classes": "generic-class", "text": "generic-text", "equation": "generic-equation"}
PARSER_FOR_KIND = {"classes": "class", "text": "text", "equation": "equation"}
MAX_CLASSES = 20  # at most this many distinct labels (and at most half the rows) → inferred as classes
FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None, ".json": None}
MAX_REPORTED = 1000  # errors kept in the result and the task's spec; `rejected` always counts them all

# Big text fields (documents, long rationales) exceed csv's 128 KiB default; the real limit is memory.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class ColumnMapping:
    """Which file columns feed the task. ``kind=None`` infers the answer kind from the labels."""

    inputs: tuple[str, ...]
    label: str | None = None
    rationale: str | None = None
    split: str | None = None
    id: str | None = None
    kind: str | None = None
    labels: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(c.strip() for c in self.inputs if c and c.strip()))
        if not self.inputs:
            raise ConfigError("map at least one input column (--input COL)")
        if self.kind is not None and self.kind not in ANSWER_KINDS:
            raise ConfigError(f"answer kind must be one of {', '.join(ANSWER_KINDS)}, not {self.kind!r}")
        if self.labels is not None:
            labels = tuple(dict.fromkeys(x.strip() for x in self.labels if x.strip()))
            if not labels:
                raise ConfigError("the label space (--labels) is empty")
            object.__setattr__(self, "labels", labels)
        if (self.labels or self.kind == "classes") and not self.label:
            raise ConfigError("a label space needs a label column (--label COL)")
        if self.labels and self.kind not in (None, "classes"):
            raise ConfigError(f"--labels gives a label space, which only a classes task has (not {self.kind})")

    def columns(self) -> list[str]:
        return [*self.inputs, *(c for c in (self.label, self.rationale, self.split, self.id) if c)]


@dataclass
class Row:
    line: int
    values: dict[str, str | None]


@dataclass
class Rejected:
    line: int
    reason: str


# -- reading files ------------------------------------------------------------------------------------------
def read_table(path: Path, limit: int = MAX_FILE_BYTES) -> tuple[list[str], list[Row], list[Rejected]]:
    """Columns, rows (values as text, None when absent) and the lines that could not be read at all (at most
    ``limit`` bytes are read)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ImportDataError(f"{path.name}: use a .csv, .tsv or .jsonl file (not {suffix or 'no extension'})")
    data = read_regular(path, limit)
    encoding = wide_encoding(data)
    if encoding:
        raise ImportDataError(f"{_shown(path.name)} looks like {encoding}, not UTF-8; save it as UTF-8 (in a "
                              "spreadsheet: CSV UTF-8) and add it again")
    # surrogateescape keeps undecodable bytes as markers, so one bad row is reported instead of failing the file.
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if not text.strip():
        raise ImportDataError(f"{_shown(path.name)} is empty; it needs a header row (CSV) or one JSON object a line")
    if FORMATS[suffix] is None:
        return _read_jsonl(text)
    return _read_csv(text, FORMATS[suffix], _shown(path.name))


def wide_encoding(data: bytes) -> str | None:
    """'UTF-16' or 'UTF-32' when the bytes are in one (a byte-order mark, or the zero bytes every other byte of
    UTF-16 text holds); None for UTF-8 and anything else byte-wise.

    >>> wide_encoding("text,label".encode("utf-16")), wide_encoding(b"text,label")
    ('UTF-16', None)
    """
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    head = data[:4096]
    if len(head) >= 8 and head.count(0) * 3 >= len(head):  # text never holds NULs; UTF-16 holds one a character
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if min(even, odd) == 0 or max(even, odd) >= 4 * min(even, odd):
            return "UTF-16"
    return None


def _shown(text: str) -> str:
    """A name as a message shows it: valid UTF-8, undecodable bytes written as escapes."""
    return printable(text)


def _read_csv(text: str, delimiter: str, name: str) -> tuple[list[str], list[Row], list[Rejected]]:
    buf = io.StringIO(text, newline="")
    reader = csv.reader(buf, delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as err:
        raise ImportDataError(f"{name}: cannot read the header row ({err})") from err
    if reader.line_num > 1:
        raise ImportDataError(f"{name}: the header row has an unclosed quote (it runs to line {reader.line_num}); "
                              "close the quote or remove it")
    bad_names = [h for h in header if has_surrogates(h)]
    if bad_names:
        raise ImportDataError(f"{name}: the header row has bytes that are not UTF-8 (column '{printable(bad_names[0])}'"
                              "); save the file as UTF-8")
    dupes = sorted(h for h, n in Counter(header).items() if n > 1)
    if dupes:
        raise ImportDataError(f"{name}: duplicate column name(s) in the header: {', '.join(dupes)}")
    rows, bad = [], []
    line = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            bad.append(Rejected(line, f"unreadable CSV ({err})"))
            line = reader.line_num + 1
            continue
        if fields and len(fields) != len(header):
            bad.append(Rejected(line, _field_count_problem(len(header), fields, line, reader.line_num, buf)))
        elif fields:  # an empty line is no row at all
            rows.append(Row(line, dict(zip(header, fields))))
        line = reader.line_num + 1  # a quoted field may span lines: the next row starts after this one
    return header, rows, bad


def _field_count_problem(expected: int, fields: list[str], first: int, last: int, buf: io.StringIO) -> str:
    """Why a record has the wrong number of fields: an unbalanced quote when it swallowed the lines after it."""
    if last > first:  # a quoted field ran over line ends
        at_end = buf.tell() >= len(buf.getvalue())
        if at_end:
            return f"unclosed quote starting on line {first} (it runs to the end of the file, line {last})"
        return (f"a quote opened on line {first} closes only on line {last}, and the row then has {len(fields)} "
                f"fields, not {expected}; is a quote unbalanced?")
    return f"expected {expected} fields, found {len(fields)}"


def _read_jsonl(text: str) -> tuple[list[str], list[Row], list[Rejected]]:
    columns: dict[str, None] = {}
    rows, bad = [], []
    # Only \n, \r and \r\n end a line: str.splitlines() would also split inside a JSON string at U+2028, U+0085
    # or a form feed, which JSON allows unescaped, turning one good row into two malformed ones.
    for line, raw in enumerate(io.StringIO(text, newline=None), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            bad.append(Rejected(line, f"malformed JSON ({err.msg}, column {err.colno})"))
            continue
        if not isinstance(obj, dict):
            bad.append(Rejected(line, f"expected a JSON object, found {type(obj).__name__}"))
            continue
        broken = next((k for k in obj if has_surrogates(k)), None)
        if broken is not None:  # a key cannot be stored (nor named in a message) as it is
            bad.append(Rejected(line, f"{_unicode_problem(broken)} in the key '{printable(broken)}'"))
            continue
        columns.update(dict.fromkeys(obj))
        rows.append(Row(line, {k: _as_text(v) for k, v in obj.items()}))
    return list(columns), rows, bad


def _as_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- validating rows ----------------------------------------------------------------------------------------
def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _unicode_problem(text: str) -> str:
    """Why text cannot be stored: undecodable bytes (kept as surrogate escapes) or a lone surrogate."""
    if re.search(r"[\udc80-\udcff]", text):
        return "bytes that are not UTF-8 (save the file as UTF-8)"
    return "a lone surrogate (such as \\ud800), which is not valid Unicode text"


def row_problem(row: Row, m: ColumnMapping, seen_ids: dict[str, int]) -> str | None:
    """Why a row cannot be imported, or None."""
    v = row.values
    broken = next((x for x in v.values() if x is not None and has_surrogates(x)), None)
    if broken is not None:
        return _unicode_problem(broken)
    for col in m.inputs:
        if col not in v or v[col] is None:
            return f"missing value for input column {col!r}"
        if not v[col].strip():
            return f"empty input column {col!r}"
    if m.labels and not _blank(v.get(m.label)) and v[m.label].strip() not in m.labels:
        return f"label {v[m.label].strip()!r} is not one of {', '.join(m.labels)}"
    if m.kind == "equation" and not _blank(v.get(m.label)):
        try:
            evaluate_equation(v[m.label])
        except EquationError as err:
            return f"label {v[m.label].strip()[:60]!r} is not an arithmetic expression ({err})"
    if m.split and _blank(v.get(m.split)):
        return f"empty split column {m.split!r}"
    if m.id:
        if _blank(v.get(m.id)):
            return f"empty id column {m.id!r}"
        if v[m.id].strip() in seen_ids:
            return f"duplicate id {v[m.id].strip()!r} (first on line {seen_ids[v[m.id].strip()]})"
    return None


def render_input(values: dict[str, str | None], inputs: tuple[str, ...]) -> str:
    """One column as is; several as ``col: value`` lines.

    >>> render_input({"q": "Why?", "ctx": "Because."}, ("ctx", "q"))
    'ctx: Because.\\nq: Why?'
    """
    if len(inputs) == 1:
        return values[inputs[0]].strip()
    return "\n".join(f"{col}: {values[col].strip()}" for col in inputs)


# Column names suggested for each role, most likely first: a suggestion every front lets the user change.
INPUT_NAMES = ("input", "question", "text", "sentence", "review", "premise", "hypothesis", "prompt", "body")
LABEL_NAMES = ("label", "answer", "gold", "target", "sentiment", "class", "category", "output", "y")
RATIONALE_NAMES = ("rationale", "explanation", "why", "reason", "reasoning")


def suggest_columns(columns: Sequence[str]) -> dict:
    """Which column looks like each role, by its name (case-insensitive): what the app's mapping form starts from.
    Inputs: every input-like column, else the first column; the other roles: the best-named column, or None.

    >>> suggest_columns(["Question", "Answer", "why", "split", "notes"])
    {'inputs': ['Question'], 'label': 'Answer', 'rationale': 'why', 'split': 'split', 'id': None}
    >>> suggest_columns(["a", "b"])["inputs"]
    ['a']
    """

    def best(names: tuple[str, ...]) -> str | None:
        return next((c for name in names for c in columns if c.lower() == name), None)

    inputs = [c for c in columns if c.lower() in INPUT_NAMES] or list(columns[:1])
    return {"inputs": inputs, "label": best(LABEL_NAMES), "rationale": best(RATIONALE_NAMES),
            "split": best(("split",)), "id": best(("id",))}


def suggest_task_name(filename: str) -> str:
    """A task name from an uploaded file's name (letters, digits, ``_.-``; at most 64 characters).

    >>> suggest_task_name("/tmp/gradio/My reviews (2024).csv")
    'My-reviews-2024'
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(filename).stem).strip("-.") or "custom"
    return stem[:64]


def infer_kind(labels: list[str]) -> str:
    """classes for few distinct labels, equation when every label is arithmetic, else text.

    >>> infer_kind(["yes", "no", "yes", "no"]), infer_kind(["(1 + 2)", "3 * 4"]), infer_kind(["a b", "c d"])
    ('classes', 'equation', 'text')
    """
    if not labels:
        return "text"
    distinct = set(labels)
    if len(distinct) <= MAX_CLASSES and len(distinct) <= len(labels) / 2:
        return "classes"
    for label in distinct:
        try:
            evaluate_equation(label)
        except EquationError:
            return "text"
    return "equation"


def assign_splits(n: int, seed: int) -> list[str]:
    """A seeded 80/10/10 split of n rows (exact proportions, deterministic for a given n and seed)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_test = n_valid = round(n * 0.1)
    names = ["train"] * n
    for rank, i in enumerate(order):
        if rank < n_test:
            names[i] = "test"
        elif rank < n_test + n_valid:
            names[i] = "valid"
    return names


# -- the import ---------------------------------------------------------------------------------------------
def safe_upload_name(name: str) -> str:
    """A file name that cannot escape the uploads folder.

    >>> safe_upload_name("../../etc/pass wd.csv")
    'pass_wd.csv'
    """
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-") or "upload"  # not hidden, not an option
    return base[:120]


def copy_upload(store: Store, path: Path) -> Path:
    """Copy the file into ``<workspace>/uploads``; a different file with the same name gets a hash suffix.
    Written through a temporary file: a full disk leaves no copy, not a truncated one."""
    return _copy_upload(store, path)[0]


def _copy_upload(store: Store, path: Path) -> tuple[Path, bool]:
    """:func:`copy_upload`, and whether this call wrote the copy (a failed import then removes it)."""
    folder = store.workspace / "uploads"
    data = read_regular(path)
    target = inside(folder, safe_upload_name(path.name), "upload")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.exists() and read_regular(target) != data:
            digest = hashlib.sha256(data).hexdigest()[:8]
            target = target.with_name(f"{target.stem}-{digest}{target.suffix}")
        if target.exists():
            return target, False
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    except OSError as err:
        raise write_error(err, store.workspace, folder, again="add the task again") from err
    return target, True


def import_custom(store: Store, name: str, path: str | Path, mapping: ColumnMapping, *,
                  max_upload_mb: float | None = None) -> dict:
    """Import a CSV/JSONL file as task ``name``; returns examples per split and the rejected rows. A file over the
    upload limit (``max_upload_mb``, default :func:`~workbench.imports.files.upload_limit`: 50 MB) is refused
    before anything is read or written."""
    name = check_task_name(name)
    path = Path(path).expanduser()
    if not path.is_file():
        raise ImportDataError(f"{_shown(str(path))} is not a file")
    check_upload_size(path, max_upload_mb)
    if store.has_task(name):
        raise ImportDataError(f"task {name!r} already exists in this workspace; pick another name")
    columns, rows, rejected = read_table(path, limit=upload_limit(max_upload_mb))
    missing = [c for c in mapping.columns() if c not in columns]
    if missing:
        shown = ", ".join(columns[:30]) + (f", … ({len(columns)} in all)" if len(columns) > 30 else "")
        wanted = ", ".join(f"'{_shown(c)}'" for c in missing)
        raise ImportDataError(f"{_shown(path.name)} has no column(s) {wanted}; "
                              f"available: {_shown(shown[:2000]) or '(none)'}")
    good: list[Row] = []
    seen_ids: dict[str, int] = {}
    for row in rows:
        problem = row_problem(row, mapping, seen_ids)
        if problem:
            rejected.append(Rejected(row.line, problem))
            continue
        good.append(row)
        if mapping.id:
            seen_ids[row.values[mapping.id].strip()] = row.line
    rejected.sort(key=lambda r: r.line)
    if not good:
        first = "; ".join(f"line {r.line}: {r.reason}" for r in rejected[:3])
        raise ImportDataError(f"{_shown(path.name)}: no row could be imported ({first or 'no rows'})")
    return _store_task(store, name, path, mapping, good, rejected)


def _store_task(store: Store, name: str, path: Path, m: ColumnMapping, good: list[Row],
                rejected: list[Rejected]) -> dict:
    labels = [r.values[m.label].strip() for r in good if m.label and not _blank(r.values.get(m.label))]
    kind = m.kind or ("classes" if m.labels else infer_kind(labels))
    label_space = (m.labels or tuple(sorted(set(labels)))) if kind == "classes" else None
    if kind == "classes" and not label_space:
        raise ImportDataError(f"{path.name}: a classes task needs labels, and column {m.label!r} has none")
    splits = [_split_name(r.values[m.split]) for r in good] if m.split else assign_splits(len(good), m.seed)
    examples = [_example(r, split, m) for r, split in zip(good, splits)]
    upload, copied = _copy_upload(store, path)
    errors = [asdict(r) for r in rejected]
    task = Task(name=name, answer_kind=kind, labels=label_space, template_name=TEMPLATE_FOR_KIND[kind],
                source="custom", spec={"file": str(upload.relative_to(store.workspace)), "original": path.name,
                                       "mapping": asdict(m), "rejected": len(rejected),
                                       "errors": errors[:MAX_REPORTED]})
    template = file_template(kind, upload.name)
    gens = [Generation(name, e.id, FILE_TEACHER, template.hash, r.values[m.rationale], r.values[m.rationale].strip(),
                       e.label, None if e.label is not None else "the file gives no label for this rationale",
                       settings={"file": upload.name})
            for r, e in zip(good, examples) if m.rationale and not _blank(r.values.get(m.rationale))]
    try:
        with store.transaction():  # the task and its rationales appear together or not at all
            counts = save_task(store, task, examples)
            if gens:
                store.add_template(template.name, template.parser_name, template.text, template.hash)
                store.add_generations(gens)
    except BaseException:
        if copied:  # the task is not there, so neither is its copy of the file
            with contextlib.suppress(OSError):
                upload.unlink()
        raise
    return {"task": name, "answer_kind": kind, "labels": list(label_space) if label_space else None,
            "examples": counts, "rejected": len(rejected), "errors": errors[:MAX_REPORTED],
            "unlabeled": sum(e.label is None for e in examples), "generations": len(gens),
            "teacher": FILE_TEACHER if gens else None, "upload": str(upload)}


def _example(row: Row, split: str, m: ColumnMapping) -> Example:
    label = row.values.get(m.label) if m.label else None
    return Example(row.values[m.id].strip() if m.id else f"line-{row.line}", split, render_input(row.values, m.inputs),
                   None if _blank(label) else label.strip(), fields={**row.values, "_line": row.line})


def _split_name(value: str) -> str:
    name = value.strip().lower()
    return SPLIT_ALIASES.get(name, name)


def file_template(kind: str, filename: str) -> PromptTemplate:
    """The named template stored with a file's rationales: no prompt was used, the text says where they came from."""
    text = f"Rationales written in the uploaded file {filename}; no prompt produced them.\n\nQ: {{input}}\nA:"
    return PromptTemplate(name="released-file", text=text, parser_name=PARSER_FOR_KIND[kind])
