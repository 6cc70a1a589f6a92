"""The README's two commands are the whole set-up: check they are there and that make knows them."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert text.index("```bash") < 200  # it opens the README


def test_make_targets_exist_and_ci_calls_make_test():
    for target in ("run", "test"):
        out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
