"""Corrupt or foreign state (issue 24, 5): a damaged model cache is found and converted again, a models folder
that is a file or cannot be written, a store that is not ours, and names that would break a listing. Each is one
line that says what to do, never a traceback or a quiet "prepared".

Nothing here touches ~/.cache/workbench/models: the cache is a temporary ``WORKBENCH_MODELS`` holding a fake
catalog entry whose "conversion" writes a small safetensors file in milliseconds.

    .venv/bin/python -m pytest -q tests/test_corrupt_state.py
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from workbench.cli import main
from workbench.core.errors import ConfigError, StoreError
from workbench.core.names import check_name
from workbench.core.store import DB_NAME, Store
from workbench.distill.config import TrainConfig
from workbench.models import cache as models_cache
from workbench.models import catalog, convert

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FAKE = "fake-cache-model"


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A temporary models folder and a catalog entry converted from a fake GGUF; ``cache.conversions`` counts."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(catalog, "in_hub_cache", lambda hub_id: False)
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(catalog.GGUFSource, "where", lambda self: str(gguf))
    conversions = []

    def fake_convert(source, out, say):
        say("converting the fake model")
        save_file({"w": torch.arange(4096, dtype=torch.float32)}, str(out / "model.safetensors"))
        (out / "config.json").write_text('{"model_type": "fake"}')
        conversions.append(out)
        return str(gguf)

    monkeypatch.setattr(convert, "convert_gguf", fake_convert)
    entry = catalog.PretrainedModel(FAKE, "nobody/fake", "causal", "a fake", "MIT", 4096,
                                    gguf=catalog.GGUFSource("no_such_pkg", "no-such-pkg", "0", "fake.gguf"))
    catalog.MODELS.register(FAKE, entry)
    yield type("Cache", (), {"folder": tmp_path / "models" / FAKE, "conversions": conversions})
    catalog.MODELS.unregister(FAKE)


def _weights(cache) -> Path:
    return cache.folder / "model.safetensors"


def test_a_conversion_records_the_size_and_sha256_of_every_file(cache):
    folder = convert.prepare(FAKE, progress=lambda m: None)
    files = json.loads((folder / models_cache.MARKER).read_text())["files"]
    assert set(files) == {"model.safetensors", "config.json"}
    assert files["model.safetensors"]["size"] == _weights(cache).stat().st_size
    assert files["model.safetensors"]["sha256"] == models_cache._sha256(_weights(cache))
    assert models_cache.damage(FAKE, hashes=True) is None


DAMAGES = {
    "zero bytes": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "grown": lambda p: p.write_bytes(p.read_bytes() + b"\0" * 10),
    "missing": lambda p: p.unlink(),
}


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_a_damaged_weights_file_is_found_on_load_and_converted_again(cache, how):
    convert.prepare(FAKE, progress=lambda m: None)
    DAMAGES[how](_weights(cache))
    ok, why = catalog.availability(FAKE)
    assert ok and "is damaged (model.safetensors" in why and "converted again on first use" in why
    messages = []
    assert convert.resolve(FAKE, progress=messages.append) == str(cache.folder)  # what loading a model calls
    assert len(cache.conversions) == 2 and "damaged" in messages[0] and "converting it again" in messages[0]
    assert models_cache.damage(FAKE, hashes=True) is None and _weights(cache).stat().st_size > 4096


def test_models_prepare_checks_hashes_and_says_it_converts_again(cache):
    assert _run(["models", "--prepare", FAKE, "--json"])[0] == 0
    data = bytearray(_weights(cache).read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes: only the hash can tell
    _weights(cache).write_bytes(bytes(data))
    assert models_cache.damage(FAKE) is None  # loading checks sizes only (a stat per file)
    code, out, err = _run(["models", "--prepare", FAKE, "--json"])
    assert code == 0 and "damaged (model.safetensors has changed since it was converted" in err
    assert "converting it again" in err and len(cache.conversions) == 2
    assert json.loads(out.strip().splitlines()[-1])["prepared"][FAKE] == str(cache.folder)
    assert models_cache.damage(FAKE, hashes=True) is None


def test_a_copy_converted_before_sizes_were_recorded_is_checked_by_its_headers(cache):
    folder = convert.prepare(FAKE, progress=lambda m: None)
    marker = json.loads((folder / models_cache.MARKER).read_text())
    del marker["files"]  # as ~/.cache/workbench/models/smollm2-135m was written before this change
    (folder / models_cache.MARKER).write_text(json.dumps(marker))
    messages = []
    assert convert.prepare(FAKE, progress=messages.append, verify=True) == folder  # intact: recorded now
    assert "recorded the sizes and sha256" in messages[0] and len(cache.conversions) == 1
    assert "files" in json.loads((folder / models_cache.MARKER).read_text())
    (folder / models_cache.MARKER).write_text(json.dumps(marker))  # without them again, and a cut weights file
    _weights(cache).write_bytes(_weights(cache).read_bytes()[:100])
    assert "model.safetensors is 100 bytes, its header says" in models_cache.damage(FAKE)
    convert.prepare(FAKE, progress=lambda m: None)
    assert len(cache.conversions) == 2


@FUZZ
@given(cut=st.integers(0, 10_000))
def test_a_safetensors_file_cut_anywhere_fails_its_header_check(tmp_path_factory, cut):
    folder = tmp_path_factory.mktemp("legacy")
    save_file({"a": torch.ones(40, 20), "b": torch.zeros(7)}, str(folder / "model.safetensors"))
    (folder / models_cache.MARKER).write_text("{}")
    whole = (folder / "model.safetensors").read_bytes()
    assert models_cache.damage_of(folder) is None
    (folder / "model.safetensors").write_bytes(whole[: cut % len(whole)])
    assert "model.safetensors" in models_cache.damage_of(folder)


# -- the models folder itself ------------------------------------------------------------------------------------
def test_models_folder_that_is_a_file_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("oops")
    monkeypatch.setenv("WORKBENCH_MODELS", str(not_a_folder))
    code, _, err = _run(["models", "--prepare", "smollm2-135m"])  # refused before any conversion could start
    assert code == 2 and err.count("\n") == 1 and f"{not_a_folder} is a file" in err
    code, out, _ = _run(["models", "--json"])
    listed = {m["name"]: m for m in json.loads(out.strip().splitlines()[-1])["models"]}
    assert code == 0 and listed["smollm2-135m"]["available"] is False and "is a file" in listed["smollm2-135m"]["reason"]
    monkeypatch.setenv("WORKBENCH_MODELS", str(not_a_folder / "deeper"))
    assert "is not a folder" in catalog.availability("smollm2-135m")[1]


@pytest.mark.parametrize("where", ["/sys", "/sys/workbench-models", "/proc/workbench/models"])
def test_models_folder_that_cannot_be_written_is_one_line(cache, monkeypatch, where):
    if not Path(where.split("/")[1] and "/" + where.split("/")[1]).is_dir():
        pytest.skip(f"no {where} here")
    monkeypatch.setenv("WORKBENCH_MODELS", where)  # not writable even by root
    code, _, err = _run(["models", "--prepare", FAKE])
    assert code == 2 and err.count("\n") == 1 and "cannot write the models folder" in err, err
    assert "WORKBENCH_MODELS" in err and cache.conversions == []


# -- a store that is not ours -----------------------------------------------------------------------------------
def _foreign_store(folder: Path, *statements: str) -> Path:
    folder.mkdir(parents=True)
    conn = sqlite3.connect(folder / DB_NAME)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return folder / DB_NAME


@pytest.mark.parametrize("statements, says", [
    (["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
      "INSERT INTO meta VALUES ('schema_version', 'abc')"], "its schema_version is 'abc', not a whole number"),
    (["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
      "INSERT INTO meta VALUES ('schema_version', '')"], "its schema_version is '', not a whole number"),
    (["CREATE TABLE runs (name TEXT PRIMARY KEY, task TEXT)"], "table 'runs' lacks columns method, student"),
    (["CREATE TABLE generations (id INTEGER PRIMARY KEY, task TEXT, example_id TEXT, teacher TEXT, "
      "template_hash TEXT, raw TEXT, rationale TEXT, label TEXT, parse_error TEXT, error TEXT, settings TEXT, "
      "seconds REAL, created REAL)"], "table 'generations' lacks column label_dist;"),
])
def test_a_foreign_store_is_one_line_naming_the_file(tmp_path, statements, says):
    path = _foreign_store(tmp_path / "ws", *statements)
    with pytest.raises(StoreError, match=says) as err:
        Store.open(tmp_path / "ws")
    assert str(path) in str(err.value)
    code, _, stderr = _run(["--workspace", str(tmp_path / "ws"), "runs"])
    assert code == 2 and stderr.count("\n") == 1 and str(path) in stderr and says.split(";")[0] in stderr


# -- names people give ------------------------------------------------------------------------------------------
bad_names = st.one_of(
    st.sampled_from(["", "two\nlines", "trailing\n", "tab\there", "a b", ".hidden", "-dash", "../up", "a/b", "a\\b",
                     "nul\0", "caf\u00e9", "\u0663", "x" * 201, "\ud800", "cr\r", "ls\u2028"]),
    st.text(min_size=1, max_size=12).filter(lambda t: any(not (c.isascii() and (c.isalnum() or c in "_.-"))
                                                          for c in t)),
)


@FUZZ
@given(name=bad_names)
def test_names_are_one_line_of_safe_characters_for_runs_tasks_alike(name):
    from workbench.data.tasks import check_task_name

    for make in (lambda: TrainConfig(task="wordproblems", method="standard", run=name),
                 lambda: check_task_name(name), lambda: check_name("sweep", name)):
        with pytest.raises(ConfigError, match=r"name .* must be 1-\d+ letters, digits") as err:
            make()
        assert "\n" not in str(err.value)


def test_a_run_name_with_a_newline_is_refused_by_the_cli(tmp_path):
    code, _, err = _run(["--workspace", str(tmp_path / "ws"), "train", "--task", "wordproblems", "--method",
                         "standard", "--run", "x\ny"])
    assert code == 2 and err.count("\n") == 1 and "run name 'x\\ny' must be" in err
    assert not (tmp_path / "ws" / "runs").exists() or not any((tmp_path / "ws" / "runs").iterdir())
    assert TrainConfig(task="wordproblems", method="standard", run="ok_run-1.2").run == "ok_run-1.2"
