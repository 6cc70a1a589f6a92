"""Bad numbers (issue 24, 4): every numeric setting and flag has a stated range (``workbench.core.bounds``), shown
in ``--help`` and checked before anything starts; a value outside it is one line naming the flag and the range,
never a traceback or a hang. The sweep verbs' own flags are the sweep module's (not covered here).

    .venv/bin/python -m pytest -q tests/test_bounds.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import re
import types
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from workbench.cli import build_parser, main
from workbench.core.bounds import SEED, Bounds
from workbench.core.errors import ConfigError, RunError
from workbench.distill.config import TrainConfig

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

EXTREMES = ["-1", "0", "1", "-0", "2", "8", "255", "256", "1024", "1025", "65535", "65536", "4294967295",
            "4294967296", "1e30", "-1e30", "99999999999999999999", "nan", "-nan", "inf", "-inf", "1.5", "0.5",
            "1e-9", "", " 3 ", "0x10", "1_000", "abc"]
values = st.one_of(st.sampled_from(EXTREMES), st.integers(-(2**70), 2**70).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))


def _numeric_flags() -> list[tuple[str, argparse.Action]]:
    """(verb, action) for every flag that takes a number, the sweep verbs' aside."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    found = []
    for verb, parser in sub.choices.items():
        if parser.get_default("func").__module__ == "workbench.cli.sweeps":
            continue
        found += [(verb, a) for a in parser._actions if isinstance(a.type, Bounds) or a.type in (int, float)]
    return found


NUMERIC = _numeric_flags()


def test_every_numeric_flag_has_a_range_stated_in_its_help():
    assert len(NUMERIC) >= 25  # train's settings, the limits, seeds, ports, the model server's knobs
    unbounded = [(verb, a.option_strings[0]) for verb, a in NUMERIC if not isinstance(a.type, Bounds)]
    assert unbounded == []
    for verb, action in NUMERIC:
        assert f"range {action.type.describe()}" in action.help, (verb, action.option_strings)
    unbounded = [f.name for f in fields(TrainConfig)
                 if str(f.type).split(" ")[0] in ("int", "float") and not f.metadata.get("bounds")]
    assert unbounded == []


@pytest.mark.parametrize("argv, says", [
    (["train", "--task", "wordproblems", "--seed", "-1"], "argument --seed: must be in [0, 4294967295], not '-1'"),
    (["train", "--task", "wordproblems", "--seed", "4294967296"], "--seed: must be in [0, 4294967295]"),
    (["train", "--task", "wordproblems", "--student", "smollm2-135m", "--lora-rank", "1000000"],
     "--lora-rank: must be in [0, 256], not '1000000'"),
    (["train", "--task", "wordproblems", "--steps", "1e30"], "--steps: expected a whole number in [1, 1000000]"),
    (["train", "--task", "wordproblems", "--lr", "nan"], "--learning-rate/--lr: must be in (0, 1], not 'nan'"),
    (["train", "--task", "wordproblems", "--batch-size", "0"], "--batch-size: must be in [1, 1024]"),
    (["train", "--task", "wordproblems", "--max-input-len", "100000000"], "--max-input-len: must be in [8, 8192]"),
    (["generate", "--task", "wordproblems", "--teacher", "builtin", "--limit", "-1"], "--limit: must be in [1, "),
    (["eval", "--run", "x", "--limit", "0"], "--limit: must be in [1, 10000000]"),
    (["compare", "--run", "x", "--limit", "inf"], "--limit: expected a whole number in [1, 10000000]"),
    (["task-add", "t", "f.csv", "--input", "text", "--seed", "-5"], "--seed: must be in [0, 4294967295]"),
    (["serve-model", "m", "--latency-ms", "nan"], "--latency-ms: must be in [0, 600000]"),
    (["serve", "--port", "70000"], "--port: must be in [1, 65535]"),
])
def test_a_number_out_of_range_is_one_line_naming_the_flag_and_range(tmp_path, argv, says):
    code, err = _run(["--workspace", str(tmp_path / "ws"), *argv])
    assert code == 2 and err.count("\n") == 1 and says in err, err
    assert err.startswith(f"workbench {argv[0]}: error: ")


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, err.getvalue()


# What each verb needs so that an in-range value reaches its handler and stops there at once, cheaply: no task, no
# run, no model, a plan instead of generation. `serve` would listen: only values out of range are given to it.
CONTEXT = {"train": ["--task", "no-such-task"], "eval": ["--run", "no-such-run"],
           "compare": ["--run", "no-such-run"], "generate": ["--task", "wordproblems", "--teacher", "builtin",
                                                            "--dry-run"],
           "task-add": ["t1", "/no/such.csv", "--input", "text"], "serve-model": ["/no/such/model"]}


@FUZZ
@given(data=st.data())
def test_any_value_of_any_numeric_flag_is_exit_0_or_a_one_line_error(tmp_path, monkeypatch, data):
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # serve-model --threads: not this process's
    verb, action = data.draw(st.sampled_from(NUMERIC), label="flag")
    text = data.draw(values, label="value")
    flag = action.option_strings[0]
    try:
        action.type(text)
        in_range = True
    except argparse.ArgumentTypeError:
        in_range = False
    if in_range and verb not in CONTEXT:
        return  # a server that would start
    event(f"{verb} {flag} {'in' if in_range else 'out of'} range")
    code, err = _run(["--workspace", str(tmp_path / "ws"), verb, f"{flag}={text}", *CONTEXT.get(verb, [])])
    assert "Traceback" not in err and code in (0, 2), (verb, flag, text, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith(f"workbench {verb}: error: "), err
    if not in_range:
        assert code == 2 and flag in err and action.type.describe() in err, (text, err)
    else:
        assert f"{flag}: " not in err, err  # not refused for its range


# -- the config itself: notebooks, YAML files and forms get the same ranges ---------------------------------------
BOUNDED = [(f.name, f.metadata["bounds"]) for f in fields(TrainConfig) if f.metadata.get("bounds")]
numbers = st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 2**32 - 1, 2**32, 10**6, 10**6 + 1, 0.5, 1.0, math.nan, math.inf]))


@FUZZ
@given(field=st.sampled_from(BOUNDED), value=numbers)
def test_train_config_takes_a_value_in_range_and_names_the_field_and_range_otherwise(field, value):
    name, bounds = field
    base = {"task": "wordproblems", "method": "standard", "student": "smollm2-135m"}  # LoRA needs a pretrained one
    if name == "early_stopping_patience":
        base["eval_every"] = 10
    try:
        cfg = TrainConfig(**base, **{name: value})
    except ConfigError as err:
        assert not bounds.contains(value) or "x weight_decay" in str(err), (name, value, err)
        if not bounds.contains(value):
            assert str(err).startswith(f"{name} must be") and bounds.describe() in str(err), err
        return
    assert bounds.contains(value) and getattr(cfg, name) == value


def test_seed_range_is_what_numpy_and_torch_take():
    import numpy as np
    import torch

    for seed in (SEED.low, SEED.high):
        np.random.seed(int(seed))
        torch.manual_seed(int(seed))
    with pytest.raises(ValueError):
        np.random.seed(int(SEED.high) + 1)
    with pytest.raises(ConfigError, match=re.escape("seed must be a whole number in [0, 4294967295], not -1")):
        TrainConfig(task="wordproblems", seed=-1)


# -- weight decay: refused when it can only diverge, and named when a run diverged ---------------------------------
def test_learning_rate_times_weight_decay_of_one_or_more_is_refused_before_a_run():
    with pytest.raises(ConfigError, match=r"learning_rate x weight_decay must be below 1.*0\.5 x 2 = 1"):
        TrainConfig(task="wordproblems", method="standard", learning_rate=0.5, weight_decay=2.0)
    TrainConfig(task="wordproblems", method="standard", learning_rate=1e-3, weight_decay=5.0)  # 0.005: fine
    with pytest.raises(ConfigError, match="x weight_decay"):  # the recipe fills the lr: checked again then
        TrainConfig(task="wordproblems", method="standard", weight_decay=10.0).with_(learning_rate=0.1)


@pytest.mark.parametrize("lr, decay, names", [
    (0.5, 4.0, r"Learning rate x weight decay is 0\.5 x 4 = 2, 1 or more.*weight decay below 2"),
    (1e-3, 5.0, r"The weight decay is 5, above 1.*lower weight decay"),
    (0.5, 0.01, r"lower learning rate \(this one: 0\.5; weight decay 0\.01\)"),
])
def test_a_diverged_run_names_what_was_found(lr, decay, names):
    import torch

    from workbench.distill.runs import check_finite

    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = math.nan
    cfg = types.SimpleNamespace(learning_rate=lr, weight_decay=decay)  # as a run resumed from an old config may be
    with pytest.raises(RunError, match=names):
        check_finite(model, cfg, 7)
