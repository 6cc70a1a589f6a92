"""The README's commands work as written: every command block a user would copy runs here, in a temporary
workspace, so the README cannot drift from the code (litgpt's test_readme.py, STYLE 10).

Every command of every ```bash block is accounted for in :data:`HOW`: run as written, run shortened (the README's
command with flags appended, because as written it trains for minutes; argparse lets the last flag win, so every
flag the README shows is still parsed and used), or checked without training (parsed into the config it would
run, with the recipe it would use); the ``make`` lines are set-up, checked with ``make -n``. A command the README
gains and this file does not know fails :func:`test_every_readme_command_is_accounted_for`. The ```python block
runs too, with ``store`` from the walkthrough.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest

from workbench.cli import build_parser
from workbench.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAPER_DATA = ROOT.parent / "shared" / "paper-data"
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)

# Appended to the README's 600-step trainings (minutes on a CPU) so that they take seconds: two steps of batch 8,
# no evaluation during training, four test answers of at most 24 tokens (a student two steps old never stops
# early). The README's own flags still parse and apply.
SHORT_TRAIN = ["--steps", "2", "--batch-size", "8", "--eval-every", "0", "--test-limit", "4", "--max-target-len", "24"]

SMOL_FULL = "workbench train --task wordproblems --method dss --student smollm2-135m --teacher builtin --json"
SMOL_LORA = "workbench train --task wordproblems --method dss --student smollm2-135m --teacher builtin --lora-rank 8"
SETUP, RUN, SHORTENED, CHECKED, DISTRIBUTED = "setup", "run", "shortened", "checked", "distributed"
# README command → how this file runs it. RUN: as written. SHORTENED: with SHORT_TRAIN (or --estimate) appended.
# CHECKED: parsed and resolved into the run it would start, not trained (minutes of SmolLM2 on a CPU;
# tests/test_pretrained.py trains the same student for real, shorter). DISTRIBUTED: the workbench part parsed;
# tests/test_distributed.py runs torchrun itself.
HOW = {
    "make run": SETUP, "make test": SETUP, "make install": SETUP, ". .venv/bin/activate": SETUP,
    "workbench tasks": RUN,
    "workbench generate --task wordproblems --teacher builtin --limit 500 --json": RUN,
    "workbench export --task wordproblems --teacher builtin --out trainingset.jsonl": RUN,
    "workbench import-paper ../shared/paper-data --task svamp --json": RUN,
    "workbench task-add reviews reviews.csv --input text --label sentiment --rationale why --json": RUN,
    "workbench generate --task wordproblems --teacher builtin": RUN,
    "workbench train --task wordproblems --method dss --student tiny --teacher builtin --steps 600 --json": SHORTENED,
    "workbench train --task wordproblems --method standard --student tiny --steps 600 --json": SHORTENED,
    "workbench compare --run RUN_NAME --limit 20 --json": RUN,
    "torchrun --nproc_per_node 8 -m workbench train --task T --method dss --student base --teacher SPEC "
    "--run-name R": DISTRIBUTED,
    "torchrun --nnodes 2 --node_rank $RANK --master_addr $HOST --master_port 29500 --nproc_per_node 8 -m workbench "
    "train ... --run-name R": DISTRIBUTED,
    "accelerate launch --num_processes 8 -m workbench train ... --run-name R": DISTRIBUTED,
    "workbench models": RUN,
    SMOL_FULL: CHECKED,
    SMOL_LORA: CHECKED,
    "workbench generate --task wordproblems --teacher hf:smollm2-135m --limit 20": SHORTENED,
    "workbench sweep --task wordproblems-hard --teacher builtin --rows 16,64,256 --seeds 0,1 --students "
    "tiny,smollm2-135m --epochs 3 --estimate": RUN,
    "workbench sweep --task wordproblems-hard --teacher builtin --rows 16,64,256 --seeds 0,1 --name demo "
    "--background": RUN,
    "workbench sweep --resume demo": SHORTENED,
    "workbench sweeps": RUN,
}


def blocks(language: str) -> list[str]:
    return [textwrap.dedent(m.group(3)) for m in FENCE.finditer(README) if m.group(2) == language]


def commands(block: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    return [words for line in block.replace("\\\n", " ").splitlines() if (words := shlex.split(line, comments=True))]


def readme_commands() -> list[str]:
    return [" ".join(words) for block in blocks("bash") for words in commands(block)]


def test_readme_opens_with_the_two_commands():
    first_block = blocks("bash")[0]
    assert [" ".join(c) for c in commands(first_block)] == ["make run", "make test"]
    assert README.index("```bash") < 200  # it opens the README


def test_every_readme_command_is_accounted_for():
    found = readme_commands()
    unknown = [c for c in found if c not in HOW]
    assert not unknown, f"new README commands: say in HOW how this file runs them: {unknown}"
    assert sorted(set(found)) == sorted(HOW), f"HOW names commands the README no longer has: {set(HOW) - set(found)}"


def test_make_targets_exist_and_ci_calls_make_test():
    for target in sorted({c.split()[1] for c, how in HOW.items() if how == SETUP and c.startswith("make ")}):
        out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def _reviews_csv(path: Path) -> None:
    """The file the README's task-add reads (the README shows its columns, not its rows)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "sentiment", "why"])
        for i, (word, label) in enumerate([("great", "positive"), ("broken", "negative")] * 20):
            writer.writerow([f"The kettle number {i} is {word}.", label, f"It calls the kettle {word}."])


class Walkthrough:
    """Runs README commands in one workspace, in the README's order, as a user would: through the CLI's ``main``
    in this process, which saves an interpreter start a command (tests/test_cli_imports.py runs the installed
    ``workbench`` script itself)."""

    def __init__(self, capsys):
        self.capsys = capsys
        self.ran: list[str] = []

    def __call__(self, command: str, *extra: str) -> dict | None:
        assert command in HOW, f"not a README command: {command}"
        words = shlex.split(command)
        assert words[0] == "workbench"
        code = cli_main(words[1:] + list(extra))
        out, err = self.capsys.readouterr()
        assert code == 0, f"{command} {' '.join(extra)}: exit {code}: {err[-2000:]}"
        self.ran.append(command)
        lines = out.strip().splitlines()
        return json.loads(lines[-1]) if "--json" in words + list(extra) and lines else None

    def check(self, command: str):
        """The config a ``workbench train`` command would run, resolved with its student's recipe: parsed and
        validated as the CLI does, without training."""
        from workbench.distill.config import config_from_args

        assert HOW.get(command) == CHECKED
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert args.func.__name__ == "cmd_train"
        self.ran.append(command)
        return config_from_args(args).resolved()


@pytest.mark.timeout(600)
def test_the_readme_walkthrough_runs_in_a_fresh_workspace(tmp_path, monkeypatch, capsys):
    import workbench

    if not (PAPER_DATA / "svamp").is_dir():
        pytest.fail(f"the paper's released data is missing at {PAPER_DATA} (../shared/paper-data)")
    # ../shared/paper-data from the folder the user stands in, as in the README.
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "paper-data").symlink_to(PAPER_DATA)
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("WORKBENCH_HOME", raising=False)  # the default: ./workspace
    _reviews_csv(cwd / "reviews.csv")
    run = Walkthrough(capsys)

    # -- Quick start from the command line --
    run("workbench tasks")
    out = run("workbench generate --task wordproblems --teacher builtin --limit 500 --json")
    assert out["generated"] == 500 and out["parsed"] + out["parse_errors"] == 500
    run("workbench export --task wordproblems --teacher builtin --out trainingset.jsonl")
    assert len((cwd / "trainingset.jsonl").read_text().splitlines()) > 300
    out = run("workbench import-paper ../shared/paper-data --task svamp --json")
    assert out["teacher_accuracy"]["test"] == pytest.approx(0.74)
    out = run("workbench task-add reviews reviews.csv --input text --label sentiment --rationale why --json")
    assert out["task"] == "reviews" and sum(out["examples"].values()) == 40 and out["rejected"] == 0
    assert (cwd / "workspace" / "workbench.sqlite").is_file()  # ./workspace, the default

    # -- Training students: 600 steps are minutes on a CPU; SHORT_TRAIN keeps the run and every flag shown --
    run("workbench generate --task wordproblems --teacher builtin")
    dss = run("workbench train --task wordproblems --method dss --student tiny --teacher builtin --steps 600 --json",
              *SHORT_TRAIN)
    standard = run("workbench train --task wordproblems --method standard --student tiny --steps 600 --json",
                   *SHORT_TRAIN)
    assert dss["steps"] == standard["steps"] == 2 and dss["n_test"] == 4 and dss["teacher_accuracy"] is not None
    config = json.loads((Path(dss["run_dir"]) / "config.json").read_text())["config"]
    assert (config["method"], config["student"], config["teacher"]) == ("dss", "tiny", "builtin")
    command = "workbench compare --run RUN_NAME --limit 20 --json"  # RUN_NAME: the dss run just trained
    code = cli_main(shlex.split(command.replace("RUN_NAME", dss["run"]))[1:])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["rows"] and out["student_accuracy"] is not None and out["teacher_accuracy"] is not None
    run.ran.append(command)

    # -- SmolLM2: the catalog as written; training is minutes of a 135M model, so it is resolved, not run --
    out = run("workbench models", "--json")
    assert any(m["name"] == "smollm2-135m" and m["available"] for m in out["models"]), out
    full, lora = run.check(SMOL_FULL), run.check(SMOL_LORA)
    # The README's recipe for a pretrained student: lr 1e-4, batch 8, 120 steps, evaluated every 40.
    for cfg in (full, lora):
        assert (cfg.learning_rate, cfg.batch_size, cfg.steps, cfg.eval_every) == (1e-4, 8, 120, 40)
    assert (full.lora_rank, lora.lora_rank) == (0, 8)
    # Generating with SmolLM2 is ~10 s an answer here: --dry-run says what the command would send.
    out = run("workbench generate --task wordproblems --teacher hf:smollm2-135m --limit 20", "--dry-run", "--json")
    assert out["requests"] == 20, out

    # -- Sweeps. --estimate calibrates each student it has no measured pace for (a subprocess training SmolLM2 for
    # ~25 s of both cores, cached per machine): a recorded calibration stands in, so the planning and the arithmetic
    # are the command's own --
    from workbench.distill import estimates

    calibrated = []

    def calibration(store_, cfg, *, run=True, progress=None):
        calibrated.append(cfg.student)
        return {"source": "calibrated", "s_per_step": 0.2, "s_per_step_min": 0.2, "load": 1.0, "save": 0.1,
                "s_per_generation": 0.05, "gives_rationales": True}

    monkeypatch.setattr(estimates, "calibration", calibration)
    out = run("workbench sweep --task wordproblems-hard --teacher builtin --rows 16,64,256 --seeds 0,1 --students "
              "tiny,smollm2-135m --epochs 3 --estimate", "--json")
    assert out["cells"] == 2 * 3 * 2 * 2 and out["seconds"] > 0 and set(calibrated) == {"tiny", "smollm2-135m"}
    # As written it starts a background job of 12 runs of the recipe's 1,000 steps: started, then cancelled.
    out = run("workbench sweep --task wordproblems-hard --teacher builtin --rows 16,64,256 --seeds 0,1 --name demo "
              "--background", "--json")
    assert out["sweep"] == "demo" and out["status"] in ("queued", "running")
    from workbench.core.jobs import cancel_job, wait_job
    from workbench.core.store import Store

    store = Store.open(cwd / "workspace")
    cancel_job(store, out["job"])
    assert wait_job(store, out["job"], timeout=120)["status"] in ("cancelled", "interrupted")
    # Resuming would train those 12 runs in the foreground: --estimate reads the saved sweep and plans them.
    out = run("workbench sweep --resume demo", "--estimate", "--json")
    assert out["cells"] == 12
    out = run("workbench sweeps", "--json")
    assert [(s["sweep"], s["total"]) for s in out["sweeps"]] == [("demo", 12)]

    # -- The python block, as written, with the walkthrough's store. workbench.run_sweep would train 8 runs of 800
    # steps: for this block it checks what it was given (the saved sweep) and answers with the sweep's status --
    (block,) = blocks("python")
    from workbench.distill.sweeps import load_sweep, sweep_status

    real_run_sweep = workbench.run_sweep
    handed = []

    def run_sweep(store_, name):
        handed.append(load_sweep(store_, name))
        return sweep_status(store_, name)

    monkeypatch.setattr(workbench, "run_sweep", run_sweep)
    namespace = {"store": store}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    assert real_run_sweep.__module__ == "workbench.distill.sweeps"
    assert [(s.task, s.teacher, s.fractions, s.seeds, s.steps) for s in handed] == [
        ("wordproblems", "builtin", (0.25, 1.0), (0, 1), 800)]
    assert len(namespace["status"]["cells"]) == 2 * 2 * 2  # methods × fractions × seeds, as planned
    store.close()

    assert sorted(set(run.ran)) == sorted(c for c, how in HOW.items() if how in (RUN, SHORTENED, CHECKED))


def test_the_distributed_commands_parse_as_workbench_train():
    """torchrun / accelerate run ``-m workbench train``; tests/test_distributed.py runs torchrun for real. Here:
    the workbench part of each README line parses (``--run-name`` included), ``...`` standing for the flags."""
    parser = build_parser()
    for command, how in HOW.items():
        if how != DISTRIBUTED:
            continue
        words = shlex.split(command)
        argv = words[words.index("workbench") + 1:]
        argv = [w for w in argv if w != "..."] + (["--task", "T"] if "..." in argv else [])
        args = parser.parse_args(argv)
        assert args.command == "train" and args.run == "R"
