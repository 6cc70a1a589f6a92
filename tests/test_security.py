"""Security (issue 8): a static audit of the package, safe loading of weights, paths that cannot escape the
workspace, and API keys that never reach a run folder or the UI.

Binding 127.0.0.1, basic auth and the exposure warning are in test_ui_handlers.py; `<script>`/`<img onerror>`
payloads are in test_browser.py; the endpoint teacher's key in the store, WAL and job logs in test_teacher_openai.py.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.core.errors import ConfigError, WorkbenchError
from workbench.distill.config import TrainConfig
from workbench.imports.custom import ColumnMapping, copy_upload, import_custom, safe_upload_name

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "workbench").rglob("*.py"), ROOT / "app.py", *(ROOT / "bench").rglob("*.py")])

# pattern → what it means; a hit fails unless the line is on the allow-list below.
FORBIDDEN = {
    r"(?<![\w.])eval\(": "eval() on text (use metrics.evaluate_equation)",
    r"(?<![\w.])exec\(": "exec() of text",
    r"\bimport pickle\b|\bpickle\.|\bcloudpickle\b|\bdill\b|\bjoblib\.load\b": "pickle (use safetensors / JSON)",
    r"\bmarshal\.loads\b|\bshelve\b": "marshal/shelve deserialisation",
    r"torch\.load\((?![^)]*weights_only\s*=\s*True)": "torch.load without weights_only=True",
    r"trust_remote_code\s*[:=]\s*(bool\s*=\s*)?True": "trust_remote_code on by default",
    r"shell\s*=\s*True": "a shell command line (pass an argument list)",
    r"os\.system\(|os\.popen\(": "a shell command line (pass an argument list)",
    r"yaml\.load\((?![^)]*SafeLoader)|yaml\.unsafe_load": "unsafe YAML loading",
    r"__import__\(": "dynamic import of a computed name",
    r"share\s*=\s*True": "a public Gradio share link",
}
ALLOWED: set[tuple[str, str]] = set()  # (relative path, stripped line) pairs reviewed and found harmless


def _hits() -> list[str]:
    found = []
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]  # comments may name what they avoid
            for pattern, why in FORBIDDEN.items():
                if re.search(pattern, code) and (rel, line.strip()) not in ALLOWED:
                    found.append(f"{rel}:{lineno}: {why}: {line.strip()}")
    return found


def test_static_audit_finds_no_eval_exec_pickle_or_shell():
    assert len(SOURCES) > 30
    assert _hits() == []


def test_the_audit_catches_what_it_looks_for():
    # The patterns must fire on the real thing and stay quiet on look-alikes, or the audit above proves nothing.
    bad = ["x = eval(text)", "exec(code)", "import pickle", "pickle.loads(b)", "torch.load(path)",
           "torch.load(p, map_location='cpu')", "trust_remote_code=True", "trust_remote_code: bool = True",
           "subprocess.run(cmd, shell=True)", "os.system('ls')", "yaml.load(f)", "__import__('os')",
           "demo.launch(share=True)"]
    fine = ["model.eval()", "self.model.eval()", "torch.load(p, weights_only=True)", "trust_remote_code=False",
            "evaluate_equation(text)", "yaml.load(f, Loader=yaml.SafeLoader)", "share=False", "execute(x)"]
    assert all(any(re.search(p, b) for p in FORBIDDEN) for b in bad)
    assert not [f for f in fine if any(re.search(p, f) for p in FORBIDDEN)]


def test_trust_remote_code_is_off_unless_asked_for_by_name():
    from workbench.rationales.teachers import get_teacher

    assert TrainConfig(task="t", method="standard").trust_remote_code is False
    assert get_teacher("hf:/some/model").trust_remote_code is False
    assert get_teacher("hf:/some/model?trust_remote_code=1").trust_remote_code is True


class _Payload:
    """Unpickling this runs code: it creates ``marker``. Safe loading must never unpickle it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant_pickle(folder: Path, marker: Path) -> None:
    for f in folder.glob("*.safetensors"):
        f.unlink()
    buf = io.BytesIO()
    pickle.dump(_Payload(marker), buf)
    (folder / "pytorch_model.bin").write_bytes(buf.getvalue())


def test_a_student_checkpoint_with_pickled_weights_never_runs_code(tmp_path):
    from test_students import TEXTS, tiny_t5_folder

    from workbench.distill.students import load_student

    folder = Path(tiny_t5_folder(tmp_path / "student", TEXTS))
    marker = tmp_path / "pwned"
    _plant_pickle(folder, marker)
    with pytest.raises(Exception):  # noqa: B017 - whatever it raises, the pickle's code must not run
        load_student(folder)
    assert not marker.exists(), "loading a student checkpoint unpickled (and ran) its weights file"


def test_a_student_checkpoint_without_safetensors_is_a_clear_error(tmp_path):
    from test_students import TEXTS, tiny_t5_folder

    from workbench.distill.students import load_student

    folder = Path(tiny_t5_folder(tmp_path / "student", TEXTS))
    _plant_pickle(folder, tmp_path / "pwned")
    with pytest.raises(WorkbenchError, match="safetensors"):
        load_student(folder)


def test_a_teacher_checkpoint_with_pickled_weights_never_runs_code(tmp_path):
    from workbench.core.errors import TeacherError
    from workbench.core.store import Example
    from workbench.models.loading import save_random_checkpoint
    from workbench.rationales.teachers.base import TeacherRequest
    from workbench.rationales.teachers.hf import HFTeacher

    folder = Path(save_random_checkpoint(tmp_path / "teacher", "causal"))
    marker = tmp_path / "pwned"
    _plant_pickle(folder, marker)
    with pytest.raises(TeacherError, match="safetensors"):
        HFTeacher(str(folder)).answer([TeacherRequest(Example("e", "train", "x", None), "Q: x\nA:")])
    assert not marker.exists()


# -- paths -----------------------------------------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(name=st.one_of(st.text(max_size=60), st.sampled_from([
    "../../etc/passwd", "..", ".", "...", "/etc/shadow", "C:\\Windows\\x.csv", "..\\..\\x.csv", "a/../../b.csv",
    ".bashrc", "-rf.csv", "name\x00.csv", "\u202egpj.csv", "~/x.csv", "x" * 500 + ".csv", " ", ""])))
def test_upload_names_never_leave_the_uploads_folder(name):
    safe = safe_upload_name(name)
    assert safe and len(safe) <= 120
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", safe), safe  # no separators, not hidden, no dash flag
    uploads = Path("/ws/uploads")
    assert (uploads / safe).resolve().parent == uploads


@pytest.mark.parametrize("hostile", ["..%2F..%2Fetc.csv", "a b;rm -rf ~.csv", ".hidden.csv", "-n.csv",
                                     "ünïcødé.csv", "x" * 200 + ".csv"])
def test_hostile_upload_names_are_copied_inside_the_workspace(tmp_path, store, hostile):
    src = tmp_path / "src"
    src.mkdir()
    path = src / hostile
    path.write_text("text\nhello\n", encoding="utf-8")
    copied = copy_upload(store, path)
    assert copied.parent == store.workspace / "uploads" and copied.read_text() == "text\nhello\n"
    assert not copied.name.startswith((".", "-")) and "/" not in copied.name
    result = import_custom(store, "up", path, ColumnMapping(inputs=("text",)))
    assert Path(result["upload"]).resolve().is_relative_to(store.workspace)


@pytest.mark.parametrize("run", ["../../etc", "..", ".hidden", "a/b", "a\\b", "nul\x00byte", "/abs", ""])
def test_run_names_cannot_escape_the_workspace(tmp_path, capsys, run):
    from workbench.cli import main

    with pytest.raises(ConfigError, match="run name"):
        TrainConfig(task="wordproblems", method="standard", run=run)
    if "\x00" not in run:  # an argv entry cannot hold a NUL byte
        code = main(["--workspace", str(tmp_path / "ws"), "train", "--task", "wordproblems", "--method", "standard",
                     "--run", run])
        assert code == 2 and "run name" in capsys.readouterr().err
    assert not (tmp_path / "etc").exists() and {p.name for p in tmp_path.iterdir()} <= {"ws"}


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc", "..", ".x", "a\\b", "x" * 65, ""])
def test_task_names_cannot_escape_the_workspace(tmp_path, store, capsys, name):
    from workbench.cli import main

    data = tmp_path / "d.csv"
    data.write_text("text\nhello\n")
    code = main(["--workspace", str(store.workspace), "task-add", name, str(data), "--input", "text"])
    assert code == 2 and "task name" in capsys.readouterr().err
    assert not store.has_task(name)


def test_resuming_or_evaluating_a_run_outside_the_workspace_is_refused(tmp_path, store):
    from workbench.distill.runs import resume_run
    from workbench.results.evaluation import evaluate

    outside = tmp_path / "outside"  # looks like a run folder, but it is not one of this workspace's runs
    outside.mkdir()
    cfg = TrainConfig(task="wordproblems", method="standard")
    (outside / "config.json").write_text(json.dumps({"config": cfg.to_dict()}))
    (outside / "trainingset.jsonl").write_text("")
    rel = "../../outside"
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(WorkbenchError):
        resume_run(store, rel)
    with pytest.raises(WorkbenchError):
        evaluate(store, rel)
    assert sorted(p.name for p in outside.iterdir()) == before  # nothing written there


# -- API keys --------------------------------------------------------------------------------------------------
SECRET = "sk-wb-security-SECRET-42"


def test_an_openai_teacher_in_a_run_config_carries_no_key(tmp_path, store, monkeypatch):
    """A run that names an endpoint teacher stores its spec (model and URL), never the key from the environment."""
    from workbench.distill.config import config_to_cli
    from workbench.rationales.teachers import get_teacher

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    spec = "openai:my-model@http://127.0.0.1:9/v1?max_retries=0"
    cfg = TrainConfig(task="wordproblems", method="dss", teacher=spec, run="r")
    teacher = get_teacher(spec)
    texts = [cfg.to_json(), config_to_cli(cfg), teacher.id, json.dumps(teacher.settings), repr(teacher.settings)]
    assert not [t for t in texts if SECRET in t]
    with pytest.raises(WorkbenchError):  # no generations from that teacher yet: refused before any folder exists
        from workbench.distill.runs import train_student

        train_student(store, cfg)
    files = [p for p in store.workspace.rglob("*") if p.is_file()]
    assert not [p for p in files if SECRET.encode() in p.read_bytes()]


def test_the_ui_never_shows_the_key(monkeypatch, store):
    from workbench.ui import train

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    spec = "openai:my-model@http://127.0.0.1:9/v1"
    cli, facts = train.on_form(store, "wordproblems", spec, "tiny", "dss", "gold", "auto", 0.5, 1.0, 40, 16, 0.002, 1,
                               20, "50", 0, "")
    assert SECRET not in cli and SECRET not in facts and "my-model" in cli
