"""Names given by users stay inside the workspace (issue 24, §1): one resolved-path check, ``core/paths.inside``,
property-tested with hostile names, and the fronts that read a run, a job or an upload by name go through it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.cli import main as cli
from workbench.core.errors import ConfigError
from workbench.core.paths import inside

FUZZ = settings(max_examples=300, deadline=None, derandomize=os.environ.get("WORKBENCH_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.function_scoped_fixture])
HOSTILE = ["..", "../x", "../../etc/passwd", "a/../../x", "a/../..", "/etc/passwd", "//etc", "a\0b", "\0",
           "a\nb", "x\r", "\u2028", "a\tb", "", " ", ".", "./.", "a\\..\\..\\x", "\ud800", "x" * 300,
           "\u202eevil"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_with_one_line(tmp_path, name):
    with pytest.raises(ConfigError) as err:
        inside(tmp_path / "runs", name, "run")
    message = str(err.value)
    assert "\n" not in message and "\0" not in message and message.startswith("run")


@pytest.mark.parametrize("name", ["r1", "wordproblems-dss-tiny-20250101-120000", "a/b", "été", "x.y", "..x",
                                  "x..", "a/./b"])
def test_plain_names_are_kept(tmp_path, name):
    assert inside(tmp_path, name, "run") == tmp_path / name


@FUZZ
@given(st.lists(st.sampled_from(["..", ".", "a", "b", "/", "\0", "\n", "~", "\\", "é", " ", "runs", "evil"]),
                max_size=8).map("".join))
def test_any_name_resolves_inside_the_root_or_is_refused(tmp_path, name):
    root = tmp_path / "ws" / "runs"
    (root / "a").mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir(exist_ok=True)
    if not (root / "evil").is_symlink():
        (root / "evil").symlink_to(outside)
    try:
        path = inside(root, name, "run")
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    real = path.resolve()
    assert real != root.resolve() and real.is_relative_to(root.resolve())


def test_a_symlink_to_elsewhere_is_refused_and_one_inside_is_kept(tmp_path):
    root = tmp_path / "runs"
    (root / "kept").mkdir(parents=True)
    (root / "alias").symlink_to(root / "kept")
    (root / "escape").symlink_to(tmp_path)
    (root / "up").symlink_to("..")
    (tmp_path / "elsewhere").mkdir()
    assert inside(root, "alias", "run") == root / "alias"
    for name in ("escape", "up", "up/runs", "escape/elsewhere"):
        with pytest.raises(ConfigError, match="outside"):
            inside(root, name, "run")
    real_ws = tmp_path / "real"
    (real_ws / "runs" / "r").mkdir(parents=True)
    (tmp_path / "linked").symlink_to(real_ws)  # a workspace that is itself a link is fine
    assert inside(tmp_path / "linked" / "runs", "r", "run") == tmp_path / "linked" / "runs" / "r"


def _fake_run(folder: Path) -> None:
    """A folder that looks like a finished run (config, model config, training rows)."""
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text("{}")
    (folder / "config.json").write_text(json.dumps({"config": {"method": "dss", "task": "wordproblems"},
                                                    "task": {"name": "wordproblems"}}))
    (folder / "trainingset.jsonl").write_text("")


@pytest.mark.parametrize("argv", [
    ["eval", "--run", "{name}"], ["compare", "--run", "{name}"], ["train", "--resume", "{name}"],
    ["serve-model", "run:{name}", "--port", "18999"],
])
@pytest.mark.parametrize("name", ["../../outside", "linked"])
def test_fronts_never_read_a_run_outside_the_workspace(tmp_path, capsys, argv, name):
    """``serve-model run:../../x``, eval, compare and resume of a run folder that is a symlink to elsewhere: refused
    before anything is loaded, with one line."""
    ws = tmp_path / "ws"
    (ws / "runs").mkdir(parents=True)
    _fake_run(tmp_path / "outside")
    (ws / "runs" / "linked").symlink_to(tmp_path / "outside")
    code = cli([*[a.format(name=name) for a in argv], "--workspace", str(ws)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "outside" in err or "inside" in err


def test_job_ids_stay_in_the_jobs_folder(store):
    from workbench.core.jobs import job_dir, read_log

    assert job_dir(store, "generate-1") == store.workspace / "jobs" / "generate-1"
    for job_id in ("../../x", "/tmp/x", "a\nb"):
        with pytest.raises(ConfigError):
            read_log(store, job_id)


def test_an_upload_copy_stays_in_the_uploads_folder(store, tmp_path):
    from workbench.imports.custom import copy_upload

    source = tmp_path / ".." / "x" / "..csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("text,label\na,b\n")
    copy = copy_upload(store, source)
    assert copy.resolve().parent == (store.workspace / "uploads").resolve()
